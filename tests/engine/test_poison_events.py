"""Poison events: retried, then the user is quarantined and its events
parked, while every other user keeps flowing; retry and skip release it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from engine import (
    WALLET_CREDITED,
    Event,
    FlushPolicy,
    Projection,
    ProjectionFailed,
    ShardCore,
    StoredRow,
    encode_event,
    fold,
    parked,
    payments_registry,
    release_user,
    route_of,
    split_batch,
)
from stores import MemorySnapshotStore

MOMENT = datetime(2026, 1, 5, tzinfo=UTC)
BROKEN = {"users": {"bad"}}


@dataclass(slots=True)
class Touches:
    user_id: str
    count: int = 0
    last_event_version: int = 0


def _touch(model: Touches | None, event: Event) -> Touches:
    model = model or Touches(event.data["user_id"])
    model.count += 1
    if event.data["user_id"] in BROKEN["users"]:
        raise RuntimeError("this user breaks the handler")
    return model


TOUCHES = Projection(
    name="touches",
    model=Touches,
    key_fields=("user_id",),
    key=lambda event: (),
    handlers={WALLET_CREDITED: _touch},
)


def registry():  # type: ignore[no-untyped-def]
    found = payments_registry()
    found.register(TOUCHES)
    return found


def credit(number: int, user: str) -> Event:
    data = {"user_id": user, "currency": "USD", "amount": Decimal("1.00")}
    return Event(number, f"e-{number}", WALLET_CREDITED, MOMENT, data)


def deliver(core: ShardCore, events: list[Event]) -> None:
    """Play the dispatcher: send from the shard's position until caught up."""
    rows = [
        StoredRow(e.sequence_number, route_of(e.user_id), encode_event(e))
        for e in events
    ]
    for _ in range(20):
        after = core.applied
        pending = [row for row in rows if row.sequence_number > after]
        if not pending:
            return
        core.apply(split_batch(pending, after, 1)[0])
    raise AssertionError("the shard never caught up")


@pytest.fixture(autouse=True)
def broken_user() -> None:
    BROKEN["users"] = {"bad"}


def shard(store: MemorySnapshotStore) -> ShardCore:
    policy = FlushPolicy(every_events=10**9, every_ms=10**9)
    return ShardCore(0, 1, registry(), store, policy, max_retries=2)


def log() -> list[Event]:
    users = ["good", "bad", "good", "other", "bad", "good"]
    return [credit(n, user) for n, user in enumerate(users, start=1)]


def test_a_failing_user_is_parked_while_the_others_flow() -> None:
    store = MemorySnapshotStore()
    core = shard(store)

    deliver(core, log())
    core.flush()

    letters = parked([state for _, state in store.iter_models("dead_letters")])
    assert [(s["user_id"], s["sequence_number"]) for s in letters] == [
        ("bad", 2),
        ("bad", 5),
    ]
    assert store.get_model("touches", ("good",))["count"] == 3
    assert store.get_model("balance", ("other", "USD"))["balance"] == Decimal("1.00")
    assert store.get_model("balance", ("bad", "USD")) is None
    assert store.get_model("quarantine", ("bad",))["active"] is True


def test_a_restarted_shard_keeps_parking_a_quarantined_user() -> None:
    store = MemorySnapshotStore()
    core = shard(store)
    deliver(core, log())
    core.flush()

    restarted = shard(store)
    deliver(restarted, [*log(), credit(7, "bad"), credit(8, "good")])
    restarted.flush()

    letters = parked([state for _, state in store.iter_models("dead_letters")], "bad")
    assert [s["sequence_number"] for s in letters] == [2, 5, 7]
    assert store.get_model("touches", ("good",))["count"] == 4


def test_retry_replays_the_parked_events_in_order_once_the_handler_works() -> None:
    store = MemorySnapshotStore()
    core = shard(store)
    deliver(core, log())
    core.flush()
    BROKEN["users"] = set()

    release = release_user(store, registry(), "bad", replay=True)

    expected = fold(registry(), log())
    assert release.letters == 2
    for name in ("balance", "summary", "touches"):
        for key, state in expected.states(name):
            assert store.get_model(name, key) == state
    assert parked([s for _, s in store.iter_models("dead_letters")]) == []
    assert store.get_model("quarantine", ("bad",))["active"] is False


def test_retry_that_fails_again_writes_nothing() -> None:
    store = MemorySnapshotStore()
    core = shard(store)
    deliver(core, log())
    core.flush()

    with pytest.raises(ProjectionFailed):
        release_user(store, registry(), "bad", replay=True)

    assert len(parked([s for _, s in store.iter_models("dead_letters")])) == 2
    assert store.get_model("quarantine", ("bad",))["active"] is True


def test_skip_lifts_the_quarantine_and_later_events_apply() -> None:
    store = MemorySnapshotStore()
    core = shard(store)
    deliver(core, log())
    core.flush()

    release_user(store, registry(), "bad", replay=False)
    BROKEN["users"] = set()
    restarted = shard(store)
    deliver(restarted, [*log(), credit(7, "bad")])
    restarted.flush()

    assert store.get_model("balance", ("bad", "USD"))["balance"] == Decimal("1.00")
    statuses = {
        s["sequence_number"]: s["status"] for _, s in store.iter_models("dead_letters")
    }
    assert statuses == {2: "skipped", 5: "skipped"}
