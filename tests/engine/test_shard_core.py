"""split_batch and ShardCore: per-shard order, repeats, gaps, flushes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from engine import (
    Event,
    FlushPolicy,
    ShardBatch,
    ShardCheckpoint,
    ShardCore,
    SnapshotStoreError,
    StoredRow,
    decode_events,
    encode_event,
    payments_registry,
    route_of,
    shard_of,
    split_batch,
)
from stores import MemorySnapshotStore

MOMENT = datetime(2026, 1, 5, tzinfo=UTC)
USERS = ["u1", "u2", "u3", "user-42", "a", "b", "c", "d"]


def credit(number: int, user: str, amount: str = "1.00") -> Event:
    data = {"user_id": user, "currency": "USD", "amount": Decimal(amount)}
    return Event(number, f"e-{number}", "WalletCredited", MOMENT, data)


def rows(events: list[Event]) -> list[StoredRow]:
    return [
        StoredRow(e.sequence_number, route_of(e.user_id), encode_event(e))
        for e in events
    ]


def core(store: MemorySnapshotStore, shard: int = 0, count: int = 1) -> ShardCore:
    policy = FlushPolicy(every_events=10**9, every_ms=10**9)
    return ShardCore(shard, count, payments_registry(), store, policy)


def test_split_batch_gives_each_shard_its_rows_in_their_order() -> None:
    events = [credit(n, USERS[(n * 7) % len(USERS)]) for n in range(1, 41)]

    batches = split_batch(rows(events), 0, 3)

    assert len(batches) == 3
    for shard, batch in enumerate(batches):
        mine = [e for e in events if shard_of(e.user_id, 3) == shard]
        assert (batch.after, batch.upto) == (0, 40)
        assert list(batch.sequence_numbers) == [e.sequence_number for e in mine]
        assert list(decode_events(batch.sequence_numbers, batch.payloads)) == mine


def test_split_batch_of_no_rows_covers_nothing() -> None:
    batches = split_batch([], 17, 2)

    assert [(b.after, b.upto, list(b.sequence_numbers)) for b in batches] == [
        (17, 17, []),
        (17, 17, []),
    ]


def test_split_batch_gives_an_empty_batch_to_a_shard_with_no_rows() -> None:
    batches = split_batch(rows([credit(5, "u1"), credit(9, "u1")]), 4, 8)

    empty = [b for i, b in enumerate(batches) if i != shard_of("u1", 8)]
    assert all(b.payloads == b"" and not b.sequence_numbers for b in empty)
    assert all((b.after, b.upto) == (4, 9) for b in batches)


def test_a_batch_already_applied_changes_nothing() -> None:
    shard = core(MemorySnapshotStore())
    batch = split_batch(rows([credit(1, "u1"), credit(2, "u1")]), 0, 1)[0]
    shard.apply(batch)

    reply = shard.apply(batch)

    assert (reply.applied, reply.gap) == (2, False)
    assert shard.projector.models["balance"][("u1", "USD")].balance == Decimal("2.00")


def test_a_batch_that_overlaps_what_was_applied_applies_only_the_new_part() -> None:
    shard = core(MemorySnapshotStore())
    events = [credit(n, "u1") for n in (1, 2, 3)]
    shard.apply(split_batch(rows(events[:2]), 0, 1)[0])

    shard.apply(split_batch(rows(events), 0, 1)[0])

    model = shard.projector.models["balance"][("u1", "USD")]
    assert (model.balance, model.transaction_count) == (Decimal("3.00"), 3)


def test_a_batch_starting_past_what_was_applied_is_refused_as_a_gap() -> None:
    shard = core(MemorySnapshotStore())

    reply = shard.apply(split_batch(rows([credit(5, "u1")]), 4, 1)[0])

    assert (reply.applied, reply.durable, reply.gap) == (0, 0, True)
    assert shard.projector.models["balance"] == {}


def test_a_flush_writes_the_models_and_the_checkpoint_together() -> None:
    store = MemorySnapshotStore()
    shard = core(store)
    shard.apply(split_batch(rows([credit(1, "u1", "2.50")]), 0, 1)[0])
    assert store.read_checkpoints() == []

    reply = shard.flush()

    assert (reply.applied, reply.durable) == (1, 1)
    assert store.read_checkpoints() == [ShardCheckpoint(0, 1, 1)]
    assert store.get_model("balance", ("u1", "USD"))["balance"] == Decimal("2.50")


def test_a_new_core_resumes_from_the_flushed_models_and_checkpoint() -> None:
    store = MemorySnapshotStore()
    first = core(store)
    first.apply(split_batch(rows([credit(1, "u1"), credit(2, "u2")]), 0, 1)[0])
    first.flush()
    first.apply(split_batch(rows([credit(3, "u1")]), 2, 1)[0])

    second = core(store)

    assert (second.applied, second.durable) == (2, 2)
    assert second.projector.models["balance"][("u1", "USD")].balance == Decimal("1.00")


def test_a_core_flushes_by_itself_once_enough_events_are_pending() -> None:
    store = MemorySnapshotStore()
    policy = FlushPolicy(every_events=2, every_ms=10**9)
    shard = ShardCore(0, 1, payments_registry(), store, policy)

    shard.apply(ShardBatch(0, 1, [1], encode_event(credit(1, "u1"))))
    assert store.read_checkpoints() == []
    shard.apply(ShardBatch(1, 2, [2], encode_event(credit(2, "u1"))))

    assert store.read_checkpoints() == [ShardCheckpoint(0, 1, 2)]


def test_a_core_refuses_a_checkpoint_written_by_another_layout() -> None:
    store = MemorySnapshotStore()
    store.reset_layout(4, 10)

    with pytest.raises(SnapshotStoreError, match="4 shards"):
        core(store, shard=0, count=2)
