"""The snapshot store contract, run against every snapshot store."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import (
    Flush,
    ModelRecord,
    Owner,
    OwnershipLost,
    ShardCheckpoint,
    SnapshotStoreError,
    shard_of,
)
from stores import (
    MemorySnapshotStore,
    SnapshotStoreAdapter,
    SqliteSnapshotStore,
    open_snapshot_store,
)

MOMENT = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


@pytest.fixture(
    params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis)]
)
def open_twin(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[[], SnapshotStoreAdapter]:
    """Opens one more store object on the same data: the same object for
    memory, the same file for SQLite, the same prefix for Redis."""
    if request.param == "memory":
        shared = MemorySnapshotStore()
        return lambda: shared
    if request.param == "sqlite":
        path = tmp_path / "models.db"
        return lambda: SqliteSnapshotStore(path)
    server = request.getfixturevalue("redis_url")
    url = f"{server}?prefix=test-{uuid.uuid4().hex}"
    return lambda: open_snapshot_store(url)


@pytest.fixture
def store(
    open_twin: Callable[[], SnapshotStoreAdapter],
) -> Iterator[SnapshotStoreAdapter]:
    opened = open_twin()
    yield opened
    opened.clear()
    opened.close()


def balance(user: str, amount: str = "10.00", version: int = 1) -> ModelRecord:
    state = {
        "user_id": user,
        "currency": "USD",
        "balance": Decimal(amount),
        "last_updated": MOMENT,
        "last_event_version": version,
    }
    return ModelRecord("balance", (user, "USD"), state)


def flush(shard: int, count: int, upto: int, *models: ModelRecord) -> Flush:
    return Flush(ShardCheckpoint(shard, count, upto), models)


def everything(store: SnapshotStoreAdapter) -> tuple[Any, ...]:
    """All models and checkpoints, in a comparable order."""
    models = sorted(
        (name, repr(key), repr(state)) for name, key, state in store.load_models(0, 1)
    )
    return tuple(models), tuple(store.read_checkpoints())


def test_a_new_store_has_no_checkpoints_and_no_models(
    store: SnapshotStoreAdapter,
) -> None:
    store.ping()
    assert store.read_checkpoints() == []
    assert list(store.load_models(0, 1)) == []
    assert list(store.iter_models("balance")) == []


def test_a_flush_writes_its_models_and_its_checkpoint(
    store: SnapshotStoreAdapter,
) -> None:
    store.write_flush(flush(0, 1, 12, balance("u1"), balance("u2", "3.50")))

    assert store.read_checkpoints() == [ShardCheckpoint(0, 1, 12)]
    assert store.get_model("balance", ("u1", "USD")) == balance("u1").state
    assert store.get_model("balance", ("u2", "USD")) == balance("u2", "3.50").state


def test_a_flush_with_no_models_still_advances_the_checkpoint(
    store: SnapshotStoreAdapter,
) -> None:
    store.write_flush(flush(1, 2, 40))

    assert store.read_checkpoints() == [ShardCheckpoint(1, 2, 40)]


def test_an_unknown_model_is_none(store: SnapshotStoreAdapter) -> None:
    store.write_flush(flush(0, 1, 1, balance("u1")))

    assert store.get_model("balance", ("u1", "EUR")) is None
    assert store.get_model("no-such-projection", ("u1", "USD")) is None


def test_load_models_yields_exactly_the_models_routed_to_the_shard(
    store: SnapshotStoreAdapter,
) -> None:
    users = [f"user-{index}" for index in range(40)]
    store.write_flush(flush(0, 1, 40, *(balance(user) for user in users)))

    for shard in range(3):
        loaded = [(name, key) for name, key, _state in store.load_models(shard, 3)]
        expected = {("balance", (u, "USD")) for u in users if shard_of(u, 3) == shard}
        assert sorted(loaded) == sorted(expected)


def test_iter_models_yields_every_model_of_one_projection_only(
    store: SnapshotStoreAdapter,
) -> None:
    status = ModelRecord("payment_status", ("u1",), {"total_payments": 2})
    store.write_flush(flush(0, 1, 3, balance("u1"), balance("u2"), status))

    balances = sorted(key for key, _state in store.iter_models("balance"))
    statuses = list(store.iter_models("payment_status"))

    assert balances == [("u1", "USD"), ("u2", "USD")]
    assert statuses == [(("u1",), {"total_payments": 2})]


def test_checkpoints_are_read_back_in_shard_order(store: SnapshotStoreAdapter) -> None:
    for shard, upto in ((2, 30), (0, 10), (1, 20)):
        store.write_flush(flush(shard, 3, upto))

    assert store.read_checkpoints() == [
        ShardCheckpoint(0, 3, 10),
        ShardCheckpoint(1, 3, 20),
        ShardCheckpoint(2, 3, 30),
    ]


def test_a_later_flush_replaces_models_and_advances_the_checkpoint(
    store: SnapshotStoreAdapter,
) -> None:
    store.write_flush(flush(0, 1, 5, balance("u1", "1.00", 5)))
    store.write_flush(flush(0, 1, 9, balance("u1", "2.00", 9)))

    assert store.get_model("balance", ("u1", "USD")) == balance("u1", "2.00", 9).state
    assert store.read_checkpoints() == [ShardCheckpoint(0, 1, 9)]


def test_repeating_a_flush_changes_nothing(store: SnapshotStoreAdapter) -> None:
    repeated = flush(0, 1, 7, balance("u1"), balance("u2"))
    store.write_flush(repeated)
    once = everything(store)

    store.write_flush(repeated)

    assert everything(store) == once


def test_a_flush_of_many_models_is_written_whole(store: SnapshotStoreAdapter) -> None:
    users = [f"user-{index}" for index in range(1_201)]
    store.write_flush(flush(0, 1, 1_201, *(balance(user) for user in users)))

    assert len(list(store.iter_models("balance"))) == 1_201
    assert store.get_model("balance", ("user-1200", "USD")) is not None


def test_reset_layout_replaces_every_checkpoint_and_keeps_models(
    store: SnapshotStoreAdapter,
) -> None:
    store.write_flush(flush(0, 2, 10, balance("u1")))
    store.write_flush(flush(1, 2, 15, balance("u2")))

    store.reset_layout(3, 10)

    assert store.read_checkpoints() == [
        ShardCheckpoint(0, 3, 10),
        ShardCheckpoint(1, 3, 10),
        ShardCheckpoint(2, 3, 10),
    ]
    assert store.get_model("balance", ("u1", "USD")) == balance("u1").state
    assert store.get_model("balance", ("u2", "USD")) == balance("u2").state


def test_reset_layout_to_fewer_shards_drops_the_others(
    store: SnapshotStoreAdapter,
) -> None:
    for shard in range(4):
        store.write_flush(flush(shard, 4, 8))

    store.reset_layout(1, 8)

    assert store.read_checkpoints() == [ShardCheckpoint(0, 1, 8)]


def test_reset_layout_refuses_a_layout_without_shards(
    store: SnapshotStoreAdapter,
) -> None:
    store.write_flush(flush(0, 1, 3))

    with pytest.raises(ValueError, match="at least one shard"):
        store.reset_layout(0, 3)

    assert store.read_checkpoints() == [ShardCheckpoint(0, 1, 3)]


def test_decimals_and_datetimes_round_trip_exactly(store: SnapshotStoreAdapter) -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    state = {
        "small": Decimal("0.10"),
        "large": Decimal("12345678901234567.89"),
        "negative_zero": Decimal("-0.00"),
        "exponent": Decimal("1E+3"),
        "utc": MOMENT,
        "offset": datetime(2026, 1, 5, 15, 30, 0, 123456, tzinfo=india),
        "missing": None,
        "payments": {"p-1": "pending", "p-2": "completed"},
    }
    store.write_flush(flush(0, 1, 1, ModelRecord("any", ("ü-1", "EUR"), state)))

    loaded = store.get_model("any", ("ü-1", "EUR"))

    assert repr(loaded) == repr(state)


def test_a_state_with_a_float_is_refused_and_nothing_changes(
    store: SnapshotStoreAdapter,
) -> None:
    store.write_flush(flush(0, 1, 1, balance("u1")))
    before = everything(store)
    floating = ModelRecord("balance", ("u2", "USD"), {"balance": 0.1})

    with pytest.raises(TypeError, match="float"):
        store.write_flush(flush(0, 1, 2, balance("u3"), floating))

    assert everything(store) == before


def test_clear_deletes_every_model_and_checkpoint(store: SnapshotStoreAdapter) -> None:
    store.write_flush(flush(0, 1, 4, balance("u1"), balance("u2")))

    store.clear()

    assert store.read_checkpoints() == []
    assert list(store.load_models(0, 1)) == []
    assert store.get_model("balance", ("u1", "USD")) is None


def owned(owner: Owner | None, shard: int, upto: int, *models: ModelRecord) -> Flush:
    return Flush(ShardCheckpoint(shard, 2, upto), models, owner)


def test_generations_are_numbered_from_one(store: SnapshotStoreAdapter) -> None:
    assert store.begin_generation() == 1
    assert store.begin_generation() == 2


def test_each_shard_counts_its_own_epochs_from_one(
    store: SnapshotStoreAdapter,
) -> None:
    generation = store.begin_generation()

    claims = [store.claim_shard(generation, shard) for shard in (0, 0, 1, 0, 1)]

    assert [owner.epoch for owner in claims] == [1, 2, 1, 3, 2]
    assert {owner.generation for owner in claims} == {generation}


def test_epochs_keep_growing_across_generations(store: SnapshotStoreAdapter) -> None:
    store.claim_shard(store.begin_generation(), 0)

    assert store.claim_shard(store.begin_generation(), 0) == Owner(2, 2)


def test_a_flush_of_the_current_owner_is_written(store: SnapshotStoreAdapter) -> None:
    generation = store.begin_generation()
    store.claim_shard(generation, 1)
    owner = store.claim_shard(generation, 1)

    store.write_flush(owned(owner, 1, 8, balance("u1")))

    assert store.read_checkpoints() == [ShardCheckpoint(1, 2, 8)]
    assert store.get_model("balance", ("u1", "USD")) == balance("u1").state


def fenced(shard: int, detail: str) -> pytest.RaisesExc[OwnershipLost]:
    """Expect OwnershipLost for ``shard`` with ``detail``; the caller checks
    that nothing was written."""
    return pytest.raises(OwnershipLost, match=f"shard {shard} .*{re.escape(detail)}")


def test_a_zombie_of_a_restarted_shard_is_fenced_out_and_writes_nothing(
    store: SnapshotStoreAdapter,
) -> None:
    generation = store.begin_generation()
    zombie = store.claim_shard(generation, 1)
    store.write_flush(owned(zombie, 1, 5, balance("u1", "1.00", 5)))
    successor = store.claim_shard(generation, 1)
    before = everything(store)

    with fenced(1, "epoch 2 of generation 1 is current, not epoch 1") as lost:
        store.write_flush(owned(zombie, 1, 9, balance("u1", "2.00", 9), balance("u2")))

    assert everything(store) == before
    assert lost.value.shard == 1
    assert not isinstance(lost.value, SnapshotStoreError)
    store.write_flush(owned(successor, 1, 9, balance("u1", "2.00", 9)))
    assert store.read_checkpoints() == [ShardCheckpoint(1, 2, 9)]


def test_a_flush_of_an_older_generation_is_fenced_out_and_writes_nothing(
    store: SnapshotStoreAdapter,
) -> None:
    old = store.claim_shard(store.begin_generation(), 0)
    store.write_flush(owned(old, 0, 3, balance("u1")))
    store.begin_generation()
    before = everything(store)

    with fenced(0, "generation 2 is current, not 1"):
        store.write_flush(owned(old, 0, 7, balance("u1", "5.00", 7)))

    assert everything(store) == before


def test_a_claim_of_an_older_generation_is_refused_and_changes_nothing(
    store: SnapshotStoreAdapter,
) -> None:
    old = store.begin_generation()
    owner = store.claim_shard(old, 0)
    new = store.begin_generation()

    with fenced(0, "generation 2 is current, not 1"):
        store.claim_shard(old, 0)

    assert store.claim_shard(new, 0) == Owner(new, owner.epoch + 1)


def test_a_claim_of_a_generation_never_begun_is_refused(
    store: SnapshotStoreAdapter,
) -> None:
    store.begin_generation()

    with fenced(3, "generation 2 was never begun"):
        store.claim_shard(2, 3)


def test_a_flush_of_a_shard_nobody_claimed_in_this_generation_is_fenced_out(
    store: SnapshotStoreAdapter,
) -> None:
    generation = store.begin_generation()

    with fenced(0, "epoch 0 of generation 1 is current, not epoch 1"):
        store.write_flush(owned(Owner(generation, 1), 0, 4, balance("u1")))

    assert everything(store) == ((), ())


def test_a_flush_without_an_owner_is_not_checked(store: SnapshotStoreAdapter) -> None:
    generation = store.begin_generation()
    store.claim_shard(generation, 0)
    store.begin_generation()

    store.write_flush(owned(None, 0, 6, balance("u1")))

    assert store.read_checkpoints() == [ShardCheckpoint(0, 2, 6)]


def test_clear_starts_generations_and_epochs_over(store: SnapshotStoreAdapter) -> None:
    old = store.claim_shard(store.begin_generation(), 0)
    store.claim_shard(store.begin_generation(), 0)

    store.clear()

    with fenced(0, "generation 1 was never begun: the store is at generation 0"):
        store.write_flush(owned(old, 0, 2))
    assert store.begin_generation() == 1
    assert store.claim_shard(1, 0) == Owner(1, 1)


def test_concurrent_claimers_never_get_the_same_epoch(
    store: SnapshotStoreAdapter, open_twin: Callable[[], SnapshotStoreAdapter]
) -> None:
    twin = open_twin()
    generation = store.begin_generation()
    claimers, claims = 8, 25
    start = threading.Barrier(claimers)
    epochs: list[int] = []

    def claim(claimer: SnapshotStoreAdapter) -> None:
        start.wait()
        mine = [claimer.claim_shard(generation, 0).epoch for _ in range(claims)]
        epochs.extend(mine)

    threads = [
        threading.Thread(target=claim, args=(twin if n % 2 else store,))
        for n in range(claimers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if twin is not store:
        twin.close()

    assert sorted(epochs) == list(range(1, claimers * claims + 1))


def _fingerprint(value: object) -> object:
    # Equal Decimals may differ in exponent, and equal times in offset.
    if isinstance(value, Decimal):
        return ("decimal", str(value))
    if isinstance(value, datetime):
        return ("time", value.isoformat())
    return (type(value).__name__, value)


_offsets = st.integers(-23 * 60, 23 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
_values = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False),
    st.datetimes(
        min_value=datetime(1900, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=_offsets,
    ),
    st.text(max_size=20),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.none(),
)


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(state=st.dictionaries(st.text(max_size=10), _values, max_size=8))
def test_any_state_survives_a_flush_and_a_load_exactly(
    store: SnapshotStoreAdapter, state: dict[str, Any]
) -> None:
    # The store is shared by the examples; each writes its own key.
    key = (f"user-{uuid.uuid4().hex}", "USD")
    store.write_flush(flush(0, 1, 1, ModelRecord("any", key, state)))

    loaded = store.get_model("any", key)

    assert loaded is not None
    assert list(loaded) == list(state)
    assert [_fingerprint(v) for v in loaded.values()] == [
        _fingerprint(v) for v in state.values()
    ]
