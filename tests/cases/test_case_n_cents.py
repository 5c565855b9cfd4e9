"""Case N: cents that binary floats cannot hold.

0.10 + 0.20 - 0.30 for u1/USD, 94.9899 - 5.0101 for u2/EUR, and 1,000
credits of 0.01 for u3/USD. Expected: u1/USD exactly 0 (not negative),
u2/EUR 89.9798, u3/USD 10.00, and the same after a snapshot round trip.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from actors import Projectionist
from engine import (
    Event,
    FlushPolicy,
    ShardCore,
    SnapshotStore,
    StoredRow,
    encode_event,
    fold,
    payments_registry,
    route_of,
    split_batch,
    validate_event,
)
from stores import MemorySnapshotStore, SqliteSnapshotStore, open_snapshot_store

EXPECTED = {("u1", "USD"): "0.00", ("u2", "EUR"): "89.9798", ("u3", "USD"): "10.00"}
T0 = datetime(2026, 1, 5, tzinfo=UTC)
SHARDS = 3


def n_events() -> list[Event]:
    moves = [
        ("WalletCredited", "u1", "USD", "0.10"),
        ("WalletCredited", "u1", "USD", "0.20"),
        ("WalletDeducted", "u1", "USD", "0.30"),
        ("WalletCredited", "u2", "EUR", "94.9899"),
        ("WalletDeducted", "u2", "EUR", "5.0101"),
        *[("WalletCredited", "u3", "USD", "0.01")] * 1000,
    ]
    return [
        validate_event(
            {
                "sequence_number": n,
                "event_id": f"n-{n}",
                "event_type": kind,
                "created_at": T0 + timedelta(seconds=n),
                "data": {"user_id": user, "currency": currency, "amount": amount},
            }
        )
        for n, (kind, user, currency, amount) in enumerate(moves, start=1)
    ]


def assert_exact(balances: dict[tuple[str, str], Any]) -> None:
    assert {key: str(value) for key, value in balances.items()} == EXPECTED
    assert not balances[("u1", "USD")].is_signed()


def test_n_the_fold_keeps_every_cent() -> None:
    projector = fold(payments_registry(), n_events())

    balances = projector.models["balance"]
    assert_exact({key: balances[key].balance for key in EXPECTED})
    assert balances[("u3", "USD")].transaction_count == 1000
    assert projector.models["summary"][("u3", "USD")].total_credits == Decimal("10.00")


@pytest.fixture(
    params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis)]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SnapshotStore]:
    opened: Any
    if request.param == "memory":
        opened = MemorySnapshotStore()
    elif request.param == "sqlite":
        opened = SqliteSnapshotStore(tmp_path / "models.db")
    else:
        server = request.getfixturevalue("redis_url")
        opened = open_snapshot_store(f"{server}?prefix=case-n-{uuid.uuid4().hex}")
    yield opened
    opened.clear()
    opened.close()


def shards_over(store: SnapshotStore) -> list[ShardCore]:
    policy = FlushPolicy(every_events=97, every_ms=10**9)
    return [
        ShardCore(shard, SHARDS, payments_registry(), store, policy)
        for shard in range(SHARDS)
    ]


def test_n_every_cent_survives_a_snapshot_round_trip(store: SnapshotStore) -> None:
    events = n_events()
    rows = [
        StoredRow(e.sequence_number, route_of(e.user_id), encode_event(e))
        for e in events
    ]
    cores = shards_over(store)
    for start in range(0, len(rows), 250):
        chunk = rows[start : start + 250]
        after = rows[start - 1].sequence_number if start else 0
        for core, batch in zip(cores, split_batch(chunk, after, SHARDS), strict=True):
            core.apply(batch)
    for core in cores:
        core.flush()

    reloaded = shards_over(store)

    from_cores = {
        key: model.balance
        for core in reloaded
        for key, model in core.projector.models["balance"].items()
    }
    assert_exact(from_cores)
    stored = {key: store.get_model("balance", key) for key in EXPECTED}
    assert_exact({key: state["balance"] for key, state in stored.items() if state})


@pytest.mark.ray
@pytest.mark.redis
def test_n_the_engine_on_redis_serves_every_cent_after_a_restart(
    tmp_path: Path, redis_url: str, local_ray: None
) -> None:
    events_url = f"sqlite:///{tmp_path / 'events.db'}"
    store_url = f"{redis_url}?prefix=case-n-{uuid.uuid4().hex}"
    first = Projectionist(events_url, store_url, shards=SHARDS, batch_size=300)
    first.append(n_events())
    first.run_until_caught_up()

    restarted = Projectionist(events_url, store_url)
    restarted.open()
    try:
        assert_exact({key: restarted.get_balance(*key).balance for key in EXPECTED})
        summary = restarted.get_wallet_summary("u2", "EUR")
        assert (str(summary.total_credits), str(summary.total_debits)) == (
            "94.9899",
            "5.0101",
        )
    finally:
        restarted.snapshots.clear()
        restarted.stop()
