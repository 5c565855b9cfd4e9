"""A shard whose snapshot store fails: it retries, applies on in memory up to
a bound, then holds back, and never counts a flush it did not make."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from engine import (
    Event,
    Flush,
    FlushPolicy,
    ShardCore,
    SnapshotStoreError,
    StoredRow,
    encode_event,
    payments_registry,
    route_of,
    split_batch,
)
from stores import MemorySnapshotStore

MOMENT = datetime(2026, 1, 5, tzinfo=UTC)


class FailingStore(MemorySnapshotStore):
    """A memory store whose next ``failures`` flushes raise."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.attempts = 0

    def write_flush(self, flush: Flush) -> None:
        self.attempts += 1
        if self.failures > 0:
            self.failures -= 1
            raise SnapshotStoreError("connection refused")
        super().write_flush(flush)


def credits(first: int, last: int) -> list[StoredRow]:
    events = [
        Event(n, f"e-{n}", "WalletCredited", MOMENT, _data())
        for n in range(first, last + 1)
    ]
    return [
        StoredRow(e.sequence_number, route_of(e.user_id), encode_event(e))
        for e in events
    ]


def _data() -> dict[str, object]:
    return {"user_id": "u1", "currency": "USD", "amount": Decimal("1.00")}


def shard(store: FailingStore, max_unflushed: int, patience: float = 5.0) -> ShardCore:
    return ShardCore(
        0,
        1,
        payments_registry(),
        store,
        FlushPolicy(every_events=2, every_ms=10**9),
        max_retries=2,
        max_unflushed=max_unflushed,
        patience_seconds=patience,
    )


def test_a_failing_flush_keeps_applying_and_reports_nothing_durable() -> None:
    store = FailingStore(failures=2)
    core = shard(store, max_unflushed=100)

    reply = core.apply(split_batch(credits(1, 3), 0, 1)[0])

    assert (reply.applied, reply.durable) == (3, 0)
    assert store.read_checkpoints() == []
    assert store.get_model("balance", ("u1", "USD")) is None


def test_the_next_flush_after_an_outage_writes_everything_applied() -> None:
    store = FailingStore(failures=2)
    core = shard(store, max_unflushed=100)
    core.apply(split_batch(credits(1, 3), 0, 1)[0])

    reply = core.flush()

    assert (reply.applied, reply.durable) == (3, 3)
    state = store.get_model("balance", ("u1", "USD"))
    assert state is not None
    assert state["balance"] == Decimal("3.00")
    assert state["last_event_version"] == 3


def test_past_the_bound_the_shard_holds_back_until_the_store_returns() -> None:
    store = FailingStore(failures=5)
    core = shard(store, max_unflushed=3)

    reply = core.apply(split_batch(credits(1, 4), 0, 1)[0])

    assert (reply.applied, reply.durable) == (4, 4)
    assert store.attempts == 6


def test_a_store_that_never_returns_fails_the_blocked_flush() -> None:
    store = FailingStore(failures=10**6)
    core = shard(store, max_unflushed=1, patience=0.3)

    with pytest.raises(SnapshotStoreError):
        core.apply(split_batch(credits(1, 2), 0, 1)[0])

    assert core.durable == 0
    assert store.read_checkpoints() == []
