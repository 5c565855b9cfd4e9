"""Properties of the fold and of sharded, batched, flushed, crashed runs.

Every run here is the dispatcher's loop in one process: ShardCore instances
fed by split_batch over a MemorySnapshotStore. Each must end with exactly
the models of a plain sequential fold.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import (
    Event,
    Flush,
    FlushPolicy,
    ModelRecord,
    Projector,
    ShardCheckpoint,
    ShardCore,
    ShardReply,
    SnapshotStore,
    StoredRow,
    encode_event,
    fold,
    pack,
    parse_json_line,
    payments_registry,
    plan_start,
    route_of,
    shard_of,
    split_batch,
    unpack,
    validate_event,
)
from stores import MemorySnapshotStore, SqliteSnapshotStore

PROPERTY = settings(max_examples=80, deadline=None)
USERS = ("u1", "u2", "u3", "u4", "user-42")
CURRENCIES = ("USD", "EUR", "CZK")
PAYMENT_IDS = ("p1", "p2", "p3")
T0 = datetime(2026, 1, 5, tzinfo=UTC)
REGISTRY = payments_registry()

State = dict[tuple[str, tuple[Any, ...]], Any]


# strategies


def money(*, signed: bool = False) -> st.SearchStrategy[Decimal]:
    """Decimals with 2 to 6 places, positive unless ``signed``."""
    units = st.integers(-(10**9) if signed else 1, 10**9)
    return st.builds(lambda u, p: Decimal(u).scaleb(-p), units, st.integers(2, 6))


@st.composite
def event_bodies(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    kind = draw(
        st.sampled_from(
            [
                "WalletCredited",
                "WalletDeducted",
                "PaymentInitiated",
                "PaymentCompleted",
                "PaymentFailed",
                "AccountOpened",
            ]
        )
    )
    data: dict[str, Any] = {"user_id": draw(st.sampled_from(USERS))}
    if kind in ("WalletCredited", "WalletDeducted"):
        data["currency"] = draw(st.sampled_from(CURRENCIES))
        data["amount"] = draw(money())
        if draw(st.booleans()):
            data["new_balance"] = draw(money(signed=True))
    elif kind == "PaymentInitiated":
        data["payment_id"] = draw(st.sampled_from(PAYMENT_IDS))
        data["currency"] = draw(st.sampled_from(CURRENCIES))
        data["amount"] = draw(money())
    elif kind == "PaymentCompleted":
        data["payment_id"] = draw(st.sampled_from(PAYMENT_IDS))
        if draw(st.booleans()):
            data["currency"] = draw(st.sampled_from(CURRENCIES))
            data["amount"] = draw(money())
    elif kind == "PaymentFailed":
        data["payment_id"] = draw(st.sampled_from(PAYMENT_IDS))
        if draw(st.booleans()):
            data["reason"] = "declined"
    elif draw(st.booleans()):
        del data["user_id"]
    return kind, data


@st.composite
def logs(draw: st.DrawFn, min_size: int = 0, max_size: int = 40) -> list[Event]:
    """A valid log: strictly increasing sequence numbers, possibly with holes."""
    bodies = draw(st.lists(event_bodies(), min_size=min_size, max_size=max_size))
    events, number = [], 0
    for kind, data in bodies:
        number += draw(st.integers(1, 3))
        raw = {
            "sequence_number": number,
            "event_id": f"e-{number}",
            "event_type": kind,
            "created_at": T0 + timedelta(seconds=number),
            "data": data,
        }
        events.append(validate_event(raw))
    return events


# helpers


def rows_of(events: Sequence[Event]) -> list[StoredRow]:
    return [
        StoredRow(e.sequence_number, route_of(e.user_id), encode_event(e))
        for e in events
    ]


def exact(value: Any) -> Any:
    """``value`` with each Decimal shown as its string: 0.10 differs from 0.1."""
    if isinstance(value, Decimal):
        return ("Decimal", str(value))
    if isinstance(value, dict):
        return {key: exact(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [exact(item) for item in value]
    return value


def states_of(projector: Projector) -> State:
    return {
        (name, key): exact(state)
        for name in REGISTRY.names()
        for key, state in projector.states(name)
    }


def states_of_shards(cores: Sequence[ShardCore]) -> State:
    """The models of all shards together; each must live on its user's shard."""
    merged: State = {}
    for core in cores:
        for (name, key), state in states_of(core.projector).items():
            assert shard_of(key[0], core.shard_count) == core.shard
            assert (name, key) not in merged
            merged[(name, key)] = state
    return merged


def stored_states(store: SnapshotStore) -> State:
    return {
        (name, tuple(key)): exact(state)
        for name in REGISTRY.names()
        for key, state in store.iter_models(name)
    }


def new_core(
    store: SnapshotStore, shard: int, count: int, every_events: int = 10**9
) -> ShardCore:
    # A clock that never moves: only the event count can make a flush due.
    policy = FlushPolicy(every_events, 10**9, clock=lambda: 0.0)
    return ShardCore(shard, count, REGISTRY, store, policy)


def deliver(
    cores: Sequence[ShardCore], rows: Sequence[StoredRow], after: int
) -> list[ShardReply]:
    batches = split_batch(rows, after, len(cores))
    return [core.apply(batch) for core, batch in zip(cores, batches, strict=True)]


def chunks(
    rows: Sequence[StoredRow], data: st.DataObject, largest: int = 12
) -> Iterator[list[StoredRow]]:
    at = 0
    while at < len(rows):
        size = data.draw(st.integers(1, largest), label="batch size")
        yield list(rows[at : at + size])
        at += size


def flush_some(cores: Sequence[ShardCore], data: st.DataObject) -> None:
    shards = st.integers(0, len(cores) - 1)
    chosen = data.draw(st.lists(shards, max_size=2, unique=True), label="flushed")
    for shard in chosen:
        cores[shard].flush()


def flush_limits() -> st.SearchStrategy[int]:
    """How many pending events make a shard flush by itself: often never."""
    return st.integers(1, 30) | st.just(10**9)


def head_of(events: Sequence[Event]) -> int:
    return events[-1].sequence_number if events else 0


# (a) any shard count, batching and flushing gives the fold


@PROPERTY
@given(events=logs(), count=st.integers(1, 8), data=st.data())
def test_any_sharded_batched_run_ends_with_exactly_the_models_of_the_fold(
    events: list[Event], count: int, data: st.DataObject
) -> None:
    store = MemorySnapshotStore()
    every = data.draw(flush_limits(), label="flush every")
    cores = [new_core(store, shard, count, every) for shard in range(count)]

    sent = 0
    for chunk in chunks(rows_of(events), data):
        replies = deliver(cores, chunk, sent)
        assert not any(reply.gap for reply in replies)
        sent = chunk[-1].sequence_number
        flush_some(cores, data)
    for core in cores:
        core.flush()

    expected = states_of(fold(REGISTRY, events))
    assert states_of_shards(cores) == expected
    assert stored_states(store) == expected
    reloaded = [new_core(store, shard, count) for shard in range(count)]
    assert states_of_shards(reloaded) == expected
    assert {core.durable for core in reloaded} <= {head_of(events)}


# (b) redelivery changes nothing


@PROPERTY
@given(events=logs(min_size=1), data=st.data())
def test_applying_any_applied_stretch_again_changes_no_model(
    events: list[Event], data: st.DataObject
) -> None:
    projector = fold(REGISTRY, events)
    projector.mark_clean()
    before = states_of(projector)
    start = data.draw(st.integers(0, len(events) - 1), label="from")
    end = data.draw(st.integers(start + 1, len(events)), label="to")

    projector.apply_all(events[start:end])

    assert states_of(projector) == before
    assert projector.dirty_count == 0


@PROPERTY
@given(events=logs(min_size=1), count=st.integers(1, 8), data=st.data())
def test_redelivering_any_applied_batch_to_the_shards_changes_nothing(
    events: list[Event], count: int, data: st.DataObject
) -> None:
    store = MemorySnapshotStore()
    cores = [new_core(store, shard, count) for shard in range(count)]
    rows = rows_of(events)
    sent = 0
    for chunk in chunks(rows, data):
        deliver(cores, chunk, sent)
        sent = chunk[-1].sequence_number
        flush_some(cores, data)
    before = (
        states_of_shards(cores),
        [core.reply() for core in cores],
        [core.projector.dirty_count for core in cores],
        stored_states(store),
        store.read_checkpoints(),
    )
    start = data.draw(st.integers(0, len(rows) - 1), label="from")
    end = data.draw(st.integers(start + 1, len(rows)), label="to")
    after = rows[start - 1].sequence_number if start else 0

    replies = deliver(cores, rows[start:end], after)

    assert replies == before[1]
    assert (
        states_of_shards(cores),
        [core.reply() for core in cores],
        [core.projector.dirty_count for core in cores],
        stored_states(store),
        store.read_checkpoints(),
    ) == before


# (c) crash anywhere, then resume, equals one run


def assert_durable_state_is_the_fold_up_to_its_checkpoint(
    store: SnapshotStore, events: Sequence[Event], count: int
) -> None:
    """What a shard stored is exactly the fold of its events up to its
    checkpoint: never an event beyond it, never one missing below it."""
    checkpoints = {c.shard: c for c in store.read_checkpoints()}
    for shard in range(count):
        stored = {
            (name, tuple(key)): exact(state)
            for name, key, state in store.load_models(shard, count)
        }
        checkpoint = checkpoints.get(shard)
        upto = checkpoint.sequence_number if checkpoint else 0
        covered = [
            e
            for e in events
            if e.sequence_number <= upto and shard_of(e.user_id, count) == shard
        ]
        assert stored == states_of(fold(REGISTRY, covered))


@PROPERTY
@given(events=logs(), count=st.integers(1, 8), data=st.data())
def test_crashing_any_shard_anywhere_and_resuming_equals_one_run(
    events: list[Event], count: int, data: st.DataObject
) -> None:
    store = MemorySnapshotStore()
    every = data.draw(flush_limits(), label="flush every")
    cores = [new_core(store, shard, count, every) for shard in range(count)]
    rows = rows_of(events)
    crashes_left = 6

    # The dispatcher's loop: send, resend from a gap, flush all at the head.
    sent, steps = 0, 0
    while True:
        steps += 1
        assert steps < 500, "the run does not converge"
        victim = data.draw(st.none() | st.integers(0, count - 1), label="crash")
        if victim is not None and crashes_left:
            crashes_left -= 1
            cores[victim] = new_core(store, victim, count, every)
            assert cores[victim].applied == cores[victim].durable
        size = data.draw(st.integers(1, 12), label="batch size")
        chunk = [row for row in rows if row.sequence_number > sent][:size]
        if chunk:
            replies = deliver(cores, chunk, sent)
            sent = chunk[-1].sequence_number
            gaps = [reply.applied for reply in replies if reply.gap]
            if gaps:
                sent = min(gaps)
            flush_some(cores, data)
        else:
            lowest = min(core.flush().applied for core in cores)
            if lowest < sent:
                sent = lowest
                continue
            break
        assert_durable_state_is_the_fold_up_to_its_checkpoint(store, events, count)

    expected = states_of(fold(REGISTRY, events))
    assert states_of_shards(cores) == expected
    assert stored_states(store) == expected
    assert all(core.durable == head_of(events) for core in cores)


# (d) decimals survive every boundary exactly


finite_decimals = st.decimals(allow_nan=False, allow_infinity=False)


@PROPERTY
@given(value=finite_decimals)
def test_any_finite_decimal_survives_the_codec_exactly(value: Decimal) -> None:
    back = unpack(pack({"amount": value, "history": [value]}))

    assert str(back["amount"]) == str(value)
    assert [str(item) for item in back["history"]] == [str(value)]


@PROPERTY
@given(units=st.integers(1, 10**20), places=st.integers(0, 18))
def test_any_valid_amount_written_as_a_json_number_is_read_exactly(
    units: int, places: int
) -> None:
    amount = Decimal(units).scaleb(-places)
    template = (
        '{"event_type": "WalletCredited", "created_at": "2026-01-05",'
        ' "data": {"user_id": "u1", "currency": "USD", "amount": AMOUNT}}'
    )
    text = template.replace("AMOUNT", str(amount))

    event = parse_json_line(text)

    assert str(event.data["amount"]) == str(amount)


@pytest.fixture(scope="module", params=["memory", "sqlite"])
def snapshot_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SnapshotStore]:
    if request.param == "memory":
        yield MemorySnapshotStore()
        return
    folder: Path = tmp_path_factory.mktemp("decimals")
    store = SqliteSnapshotStore(folder / "models.db")
    yield store
    store.close()


@PROPERTY
@given(values=st.lists(finite_decimals, min_size=1, max_size=6))
def test_any_finite_decimal_survives_a_snapshot_store_round_trip(
    snapshot_store: SnapshotStore, values: list[Decimal]
) -> None:
    state = {
        "user_id": "u1",
        "currency": "USD",
        "balance": values[0],
        "history": values,
        "last_event_version": 1,
    }

    snapshot_store.write_flush(
        Flush(ShardCheckpoint(0, 1, 1), (ModelRecord("balance", ("u1", "USD"), state),))
    )

    back = snapshot_store.get_model("balance", ("u1", "USD"))
    assert back is not None
    assert str(back["balance"]) == str(values[0])
    assert [str(item) for item in back["history"]] == [str(v) for v in values]


@PROPERTY
@given(events=logs(), count=st.integers(1, 8), data=st.data())
def test_models_flushed_and_reloaded_keep_every_decimal_exponent(
    events: list[Event], count: int, data: st.DataObject
) -> None:
    store = MemorySnapshotStore()
    cores = [new_core(store, shard, count) for shard in range(count)]
    deliver(cores, rows_of(events), 0)
    for core in cores:
        core.flush()

    reloaded = [new_core(store, shard, count) for shard in range(count)]

    assert states_of_shards(reloaded) == states_of_shards(cores)


# (e) changing the shard count between runs


@st.composite
def shard_counts(draw: st.DrawFn) -> tuple[int, ...]:
    given_counts = st.lists(st.integers(1, 8), min_size=2, max_size=4).map(tuple)
    return draw(st.just((4, 2, 8)) | given_counts)


@PROPERTY
@given(events=logs(), counts=shard_counts(), data=st.data())
def test_changing_the_shard_count_between_runs_keeps_every_model_exact(
    events: list[Event], counts: tuple[int, ...], data: st.DataObject
) -> None:
    store = MemorySnapshotStore()
    rows = rows_of(events)
    cuts = sorted(
        data.draw(
            st.lists(
                st.integers(0, head_of(events)),
                min_size=len(counts) - 1,
                max_size=len(counts) - 1,
            ),
            label="phase ends",
        )
    )
    ends = [*cuts, head_of(events)]

    for phase, (count, end) in enumerate(zip(counts, ends, strict=True)):
        # Resume as the engine does: store a new layout first, if any.
        plan = plan_start(store.read_checkpoints(), count)
        if plan.relayout:
            store.reset_layout(count, plan.lowest)
        cores = [new_core(store, shard, count) for shard in range(count)]
        assert tuple(core.applied for core in cores) == plan.positions

        sent = plan.lowest
        todo = [row for row in rows if sent < row.sequence_number <= end]
        for chunk in chunks(todo, data):
            replies = deliver(cores, chunk, sent)
            assert not any(reply.gap for reply in replies)
            sent = chunk[-1].sequence_number

        # A run that is not the last stops with only some shards flushed.
        if phase < len(counts) - 1:
            flush_some(cores, data)
        else:
            for core in cores:
                core.flush()

    expected = states_of(fold(REGISTRY, events))
    assert states_of_shards(cores) == expected
    assert stored_states(store) == expected
    last = counts[-1]
    reloaded = [new_core(store, shard, last) for shard in range(last)]
    assert states_of_shards(reloaded) == expected
