"""Crash safety as a state machine, in one process and without Ray.

The machine drives real ``ShardCore`` instances over a
``MemorySnapshotStore`` and a ``MemoryEventStore`` through a small
dispatcher that plays ``actors/_dispatcher.py``'s part exactly: read the
rows after the lowest position, ``split_batch`` them, send each shard its
part, settle the oldest batch, and on a gap drain and rewind to the position
the shard reported. Calls to a shard wait in a first-in-first-out queue, as
Ray queues the calls of one caller to one actor, so shards run ahead of or
behind one another.

Between the steps hypothesis appends events, kills shards (a new core with a
fresh owner, loaded from the store; Ray runs the calls still queued for it
again), kills the dispatcher (its queued calls become orphans that may still
run, in any order, or never), makes the store refuse the next flushes, makes
a handler fail on its first attempt at an event (a user projection beside
the payments pack), redelivers old batches, lets stale owners try to write,
flushes, and changes the shard count the way ``Projectionist._spawn`` does.

After every step: each durable model equals the sequential fold of the log
at its own ``last_event_version`` (nothing lost, nothing counted twice); its
version is at most the checkpoint of the shard that owns it now (or, after a
change of layout, the highest checkpoint of an older layout); each stored
checkpoint covers only events whose models are durable; and each core's
durable position is the stored one. Once caught up and flushed, the durable
models equal the fold of the whole log exactly.
"""

from __future__ import annotations

import types
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import tenacity.nap
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import engine._shard
from engine import (
    PAYMENT_COMPLETED,
    PAYMENT_FAILED,
    PAYMENT_INITIATED,
    WALLET_CREDITED,
    WALLET_DEDUCTED,
    Event,
    Flush,
    FlushPolicy,
    OwnershipLost,
    Projection,
    Projector,
    Registry,
    ShardBatch,
    ShardCore,
    ShardReply,
    SnapshotStoreError,
    pack,
    payments_registry,
    plan_start,
    shard_of,
    split_batch,
    unpack,
)
from stores import MemoryEventStore, MemorySnapshotStore

USERS = ("u1", "u2", "u3", "user-42")
CURRENCIES = ("USD", "EUR")
PAYMENT_IDS = ("p1", "p2", "p3")
UNHANDLED = "WalletFrozen"
EVENT_TYPES = (
    WALLET_CREDITED,
    WALLET_DEDUCTED,
    PAYMENT_INITIATED,
    PAYMENT_COMPLETED,
    PAYMENT_FAILED,
    UNHANDLED,
)
T0 = datetime(2026, 1, 5, tzinfo=UTC)
BATCH_SIZE = 4
MAX_IN_FLIGHT = 3
FLUSH_EVERY_EVENTS = 5
FLUSH_EVERY_MS = 1_000
MAX_RETRIES = 2
MAX_UNFLUSHED = 8
HISTORY = 24
STALE_CHOICES = 4
CATCH_UP_STEPS = 1_000
MOVES = st.lists(st.integers(0, 4), max_size=10)
WIRE_MOVES = ("send", "settle", "run ahead", "orphan runs")

Key = tuple[str, tuple[Any, ...]]


@dataclass(slots=True)
class EventsSeen:
    """How many events of one user a projection has applied."""

    user_id: str
    events: int = 0
    last_event_version: int = 0


class InjectedFailure(RuntimeError):
    """A handler's failure on the first attempt at one event."""


class FirstAttempts:
    """Arms the next ``armed`` events the shards apply to fail once each, on
    their first attempt only, as a transient fault in a handler would."""

    def __init__(self) -> None:
        self.armed = 0
        self.failed: set[int] = set()

    def attempt(self, number: int) -> None:
        if self.armed and number not in self.failed:
            self.armed -= 1
            self.failed.add(number)
            raise InjectedFailure(f"first attempt at sequence number {number}")


def events_seen(faults: FirstAttempts | None) -> Projection:
    """A user projection beside the payments pack, counting every event of a
    user; its handler fails as ``faults`` says (never for the reference)."""

    def count(model: EventsSeen | None, event: Event) -> EventsSeen:
        if faults is not None:
            faults.attempt(event.sequence_number)
        model = model or EventsSeen(event.data["user_id"])
        model.events += 1
        return model

    return Projection(
        name="events_seen",
        model=EventsSeen,
        key_fields=("user_id",),
        key=lambda event: (),
        handlers=dict.fromkeys(
            (WALLET_CREDITED, WALLET_DEDUCTED, PAYMENT_INITIATED), count
        ),
    )


def registry_with(faults: FirstAttempts | None) -> Registry:
    registry = payments_registry()
    registry.register(events_seen(faults))
    return registry


REGISTRY = registry_with(None)


@pytest.fixture(autouse=True)
def retries_do_not_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flush retries and failed events back off with real sleeps; here they
    retry at once."""
    asleep = types.SimpleNamespace(sleep=_no_sleep)
    monkeypatch.setattr(tenacity.nap, "time", asleep)
    monkeypatch.setattr(engine._shard, "time", asleep)


def _no_sleep(seconds: float) -> None:
    return None


class Clock:
    """The flush policy's clock; only the machine moves it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class RefusingStore(MemorySnapshotStore):
    """The reference memory store, made to refuse its next ``failures``
    flushes the way an unreachable server does: nothing written."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    def write_flush(self, flush: Flush) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise SnapshotStoreError("injected: the snapshot store refused a flush")
        super().write_flush(flush)


@dataclass(eq=False)
class Call:
    """One ``apply`` call sent to a shard, and its reply once it ran."""

    shard: int
    batch: ShardBatch
    reply: ShardReply | None = None


@dataclass
class Wire:
    """The calls waiting for each shard, in the order they were sent."""

    queues: list[deque[Call]]
    orphans: list[deque[Call]]
    delivered: deque[Call] = field(default_factory=lambda: deque(maxlen=HISTORY))

    @classmethod
    def of(cls, shard_count: int) -> Wire:
        return cls(
            [deque() for _ in range(shard_count)],
            [deque() for _ in range(shard_count)],
        )

    def send(self, shard: int, batch: ShardBatch) -> Call:
        call = Call(shard, batch)
        self.queues[shard].append(call)
        return call

    def deliver(self, shard: int, cores: list[ShardCore]) -> Call | None:
        queue = self.queues[shard]
        if not queue:
            return None
        call = queue.popleft()
        call.reply = cores[shard].apply(call.batch)
        self.delivered.append(call)
        return call

    def deliver_through(self, call: Call, cores: list[ShardCore]) -> ShardReply:
        """Wait for ``call`` as ``ray.get`` does: the calls before it run
        first."""
        while call.reply is None:
            self.deliver(call.shard, cores)
        return call.reply

    def orphan_all(self) -> None:
        """The caller died: what it queued may still run, or never."""
        for queue, orphans in zip(self.queues, self.orphans, strict=True):
            orphans.extend(queue)
            queue.clear()

    def deliver_orphan(self, shard: int, cores: list[ShardCore]) -> None:
        if self.orphans[shard]:
            call = self.orphans[shard].popleft()
            cores[shard].apply(call.batch)

    def requeue_last_delivered(self, shard: int, pending: set[Call]) -> bool:
        """The shard died after running a call whose reply its caller has not
        read yet: Ray runs that call again on the restarted shard."""
        for call in reversed(self.delivered):
            if call.shard == shard and call in pending and call.reply is not None:
                call.reply = None
                self.queues[shard].appendleft(call)
                return True
        return False


class Dispatcher:
    """``actors/_dispatcher.py``'s loop, its Ray calls replaced by the wire."""

    def __init__(self, log: MemoryEventStore, cores: list[ShardCore], wire: Wire):
        self.log = log
        self.cores = cores
        self.wire = wire
        self.replies: dict[int, ShardReply] = {}
        self._record([core.reply() for core in cores])
        self.sent = min(reply.applied for reply in self.replies.values())
        self.in_flight: deque[tuple[int, list[Call]]] = deque()
        self.caught_up = False

    def step(self) -> bool:
        """One pass of ``Dispatcher.run(live=False)``; false once it would
        return."""
        at_head = self.fill()
        if self.in_flight:
            self.settle(self.in_flight.popleft())
            return True
        if at_head and not self.caught_up:
            self.flush_all()
            return True
        return False

    def fill(self) -> bool:
        while len(self.in_flight) < MAX_IN_FLIGHT:
            if self.send_one():
                return True
        return False

    def send_one(self) -> bool:
        """Send one batch; true when the head was reached instead."""
        rows = self.log.read_after(self.sent, BATCH_SIZE)
        if not rows:
            return True
        self.caught_up = False
        batches = split_batch(rows, self.sent, len(self.cores))
        calls = [self.wire.send(i, batch) for i, batch in enumerate(batches)]
        self.in_flight.append((batches[0].upto, calls))
        self.sent = batches[0].upto
        return len(rows) < BATCH_SIZE

    def settle(self, batch: tuple[int, list[Call]]) -> None:
        replies = [self.wire.deliver_through(call, self.cores) for call in batch[1]]
        self._record(replies)
        gaps = [reply.applied for reply in replies if reply.gap]
        if gaps:
            self.drain()
            self.sent = min(self.sent, *gaps)

    def drain(self) -> None:
        while self.in_flight:
            calls = self.in_flight.popleft()[1]
            self._record([self.wire.deliver_through(c, self.cores) for c in calls])

    def flush_all(self) -> None:
        self._record([core.flush() for core in self.cores])
        lowest = min(reply.applied for reply in self.replies.values())
        if lowest < self.sent:
            self.sent = lowest
            return
        self.caught_up = True

    def idle(self) -> None:
        """``_idle``: every shard ticks once its queued calls have run."""
        for shard, core in enumerate(self.cores):
            while self.wire.queues[shard]:
                self.wire.deliver(shard, self.cores)
            self._record([core.tick()])

    def pending_calls(self) -> set[Call]:
        return {call for _, calls in self.in_flight for call in calls}

    def _record(self, replies: list[ShardReply]) -> None:
        for reply in replies:
            self.replies[reply.shard] = reply


class Reference:
    """The sequential fold of the log, with every state each model had."""

    def __init__(self) -> None:
        self.projector = Projector(REGISTRY)
        self.folded = 0
        self.states: dict[Key, dict[int, dict[str, Any]]] = {}

    def catch_up(self, log: MemoryEventStore) -> None:
        for event in log.read_events_after(self.folded, 10**9):
            self.projector.apply(event)
            for record in self.projector.dirty_records():
                key = (record.projection, record.key)
                version = event.sequence_number
                self.states.setdefault(key, {})[version] = unpack(pack(record.state))
            self.projector.mark_clean()
            self.folded = event.sequence_number

    def at(self, key: Key, version: int) -> dict[str, Any] | None:
        return self.states.get(key, {}).get(version)

    def version_at(self, key: Key, position: int) -> int:
        """The version the model had once the log was applied up to
        ``position``; 0 if it did not exist yet."""
        return max((v for v in self.states[key] if v <= position), default=0)

    def final(self) -> dict[Key, dict[str, Any]]:
        return {key: states[max(states)] for key, states in self.states.items()}


@st.composite
def event_specs(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(EVENT_TYPES))
    data: dict[str, Any] = {"user_id": draw(st.sampled_from(USERS))}
    amount = Decimal(draw(st.integers(1, 100_000))).scaleb(-2)
    if kind in (WALLET_CREDITED, WALLET_DEDUCTED, PAYMENT_INITIATED):
        data["currency"] = draw(st.sampled_from(CURRENCIES))
        data["amount"] = amount
    if kind in (WALLET_CREDITED, WALLET_DEDUCTED) and draw(st.booleans()):
        data["new_balance"] = Decimal(draw(st.integers(-(10**6), 10**6))).scaleb(-2)
    if kind in (PAYMENT_INITIATED, PAYMENT_COMPLETED, PAYMENT_FAILED):
        data["payment_id"] = draw(st.sampled_from(PAYMENT_IDS))
    if kind == PAYMENT_COMPLETED and draw(st.booleans()):
        data["currency"] = draw(st.sampled_from(CURRENCIES))
        data["amount"] = amount
    return {"event_type": kind, "data": data}


class CrashSafety(RuleBasedStateMachine):
    """Shards, a dispatcher and a snapshot store that fail at any step."""

    def __init__(self) -> None:
        super().__init__()
        self.log = MemoryEventStore()
        self.store = RefusingStore()
        self.clock = Clock()
        self.reference = Reference()
        self.faults = FirstAttempts()
        self.registry = registry_with(self.faults)
        self.cores: list[ShardCore] = []
        self.stale: list[ShardCore] = []
        self.ceiling = 0
        self.moments = 0

    # the engine

    @initialize(
        shard_count=st.integers(1, 4),
        specs=st.lists(event_specs(), max_size=24),
    )
    def start_engine(self, shard_count: int, specs: list[dict[str, Any]]) -> None:
        if specs:
            self.append(specs, 0)
        self.spawn(shard_count)

    def spawn(self, shard_count: int) -> None:
        """``Projectionist._spawn``: a new generation fences every earlier
        owner; a new layout is stored before any shard loads."""
        self.stale.extend(self.cores)
        generation = self.store.begin_generation()
        stored = self.store.read_checkpoints()
        plan = plan_start(stored, shard_count)
        if plan.relayout:
            highest = max(c.sequence_number for c in stored)
            self.ceiling = max(self.ceiling, highest)
            self.store.reset_layout(shard_count, plan.lowest)
        self.generation = generation
        self.cores = [self.new_core(i, shard_count) for i in range(shard_count)]
        self.wire = Wire.of(shard_count)
        self.dispatcher = Dispatcher(self.log, self.cores, self.wire)

    def new_core(self, shard: int, shard_count: int) -> ShardCore:
        owner = self.store.claim_shard(self.generation, shard)
        policy = FlushPolicy(FLUSH_EVERY_EVENTS, FLUSH_EVERY_MS, clock=self.clock)
        return ShardCore(
            shard,
            shard_count,
            self.registry,
            self.store,
            policy,
            max_retries=MAX_RETRIES,
            max_unflushed=MAX_UNFLUSHED,
            owner=owner,
        )

    @property
    def shard_count(self) -> int:
        return len(self.cores)

    # rules

    @rule(
        specs=st.lists(event_specs(), min_size=1, max_size=4),
        skipped=st.integers(0, 3),
    )
    def append_a_few_events(self, specs: list[dict[str, Any]], skipped: int) -> None:
        self.append(specs, skipped)

    @rule(specs=st.lists(event_specs(), min_size=5, max_size=12))
    def append_a_burst_of_events(self, specs: list[dict[str, Any]]) -> None:
        self.append(specs, 0)

    def append(self, specs: list[dict[str, Any]], skipped: int) -> None:
        """Append in one transaction; ``skipped`` numbers were reserved and
        never committed, so the log has a hole before this append."""
        first = self.log.head() + 1 + skipped
        events = []
        for index, spec in enumerate(specs):
            self.moments += 1
            number = first if index == 0 else 0
            moment = T0 + timedelta(seconds=self.moments)
            event_id = f"e-{uuid.uuid4().hex}"
            events.append(
                Event(number, event_id, spec["event_type"], moment, spec["data"])
            )
        self.log.append(events)
        self.reference.catch_up(self.log)

    @rule(steps=st.integers(1, 12))
    def run_batches(self, steps: int) -> None:
        """Passes of the dispatcher's catch-up loop; it stops at the head."""
        for _ in range(steps):
            if not self.dispatcher.step():
                return

    @rule(move=st.sampled_from(WIRE_MOVES), shard=st.integers(0, 3))
    def the_wire_moves(self, move: str, shard: int) -> None:
        """One thing the asynchronous calls can do: the dispatcher sends a
        batch or settles its oldest one, a shard runs its next queued call
        ahead of the others, or a call from a dead dispatcher runs."""
        shard %= self.shard_count
        if move == "send" and len(self.dispatcher.in_flight) < MAX_IN_FLIGHT:
            self.dispatcher.send_one()
        elif move == "settle" and self.dispatcher.in_flight:
            self.dispatcher.settle(self.dispatcher.in_flight.popleft())
        elif move == "run ahead":
            self.wire.deliver(shard, self.cores)
        elif move == "orphan runs":
            self.wire.deliver_orphan(shard, self.cores)

    @rule()
    def flush_all(self) -> None:
        self.dispatcher.drain()
        self.dispatcher.flush_all()

    @precondition(lambda self: not self.dispatcher.in_flight)
    @rule()
    def time_passes_while_idle(self) -> None:
        self.clock.now += FLUSH_EVERY_MS / 1000
        self.dispatcher.idle()

    @rule(moves=MOVES, shard=st.integers(0, 3), reply_lost=st.booleans())
    def kill_a_shard(self, moves: list[int], shard: int, reply_lost: bool) -> None:
        """SIGKILL one shard in the middle of a run: Ray restarts it, its
        constructor claims the shard and reloads it, and the calls queued for
        it run on the new one; with ``reply_lost`` the last call it ran is
        run again too."""
        self.busy(moves)
        shard %= self.shard_count
        if reply_lost:
            self.wire.requeue_last_delivered(shard, self.dispatcher.pending_calls())
        self.stale.append(self.cores[shard])
        self.cores[shard] = self.new_core(shard, self.shard_count)
        self.wire.orphans[shard].clear()

    @rule(moves=MOVES)
    def kill_the_dispatcher(self, moves: list[int]) -> None:
        """A restarted dispatcher starts again from the shards' positions."""
        self.busy(moves)
        self.wire.orphan_all()
        self.dispatcher = Dispatcher(self.log, self.cores, self.wire)

    @rule(failures=st.integers(1, 6), steps=st.integers(0, 8))
    def the_store_refuses_flushes(self, failures: int, steps: int) -> None:
        """The next ``failures`` flushes fail, the ones the shards make while
        applying (retried ``MAX_RETRIES`` times, then kept in memory up to
        ``MAX_UNFLUSHED`` events) as well as the dispatcher's (retried until
        they succeed)."""
        self.store.failures = failures
        self.run_batches(steps)

    @rule(events=st.integers(1, 3))
    def handlers_fail_once(self, events: int) -> None:
        """The next ``events`` events a shard applies fail on their first
        attempt: the shard drops what it has not flushed, reloads, and asks
        for a resend with a gap reply."""
        self.faults.armed = events

    @rule(pick=st.integers(0, HISTORY - 1))
    def redeliver_a_batch(self, pick: int) -> None:
        """Ray may run a call twice: the second run changes nothing a first
        run already did."""
        if not self.wire.delivered:
            return
        call = self.wire.delivered[pick % len(self.wire.delivered)]
        core = self.cores[call.shard]
        before = (core.applied, core.durable, core.projector.dirty_count)
        reply = core.apply(call.batch)
        if call.batch.upto <= before[0]:
            assert (core.applied, core.durable) == before[:2]
        if not reply.gap:
            assert reply.applied >= before[0]

    @rule(pick=st.integers(0, STALE_CHOICES - 1), replay=st.integers(0, HISTORY - 1))
    def a_stale_owner_tries_to_write(self, pick: int, replay: int) -> None:
        """A killed incarnation that still runs may apply and flush, but the
        store must refuse every write it attempts."""
        if not self.stale:
            return
        recent = self.stale[-STALE_CHOICES:]
        zombie = recent[pick % len(recent)]
        before = self.durable_snapshot()
        self.store.failures = 0
        try:
            if self.wire.delivered and zombie.shard_count == self.shard_count:
                delivered = self.wire.delivered
                call = delivered[replay % len(delivered)]
                if call.shard == zombie.shard:
                    zombie.apply(call.batch)
            zombie.flush()
        except OwnershipLost:
            pass
        assert self.durable_snapshot() == before

    @rule(moves=MOVES, shard_count=st.integers(1, 4))
    def restart_with_shards(self, moves: list[int], shard_count: int) -> None:
        """Kill the whole engine in the middle of a run and start it again,
        possibly with another shard count: a new generation, a new layout if
        the count changed, new cores."""
        self.busy(moves)
        self.spawn(shard_count)

    @rule()
    def catch_up_and_flush(self) -> None:
        self.finish()

    def busy(self, moves: list[int]) -> None:
        """The engine at work: 0 sends a batch if the window has room, ``n``
        runs the next call queued for shard ``n - 1``."""
        for move in moves:
            if not move and len(self.dispatcher.in_flight) < MAX_IN_FLIGHT:
                self.dispatcher.send_one()
            elif move:
                self.wire.deliver((move - 1) % self.shard_count, self.cores)

    # invariants

    @invariant()
    def every_durable_model_is_the_fold_at_its_own_version(self) -> None:
        for key, state in self.durable_models():
            version = state["last_event_version"]
            assert state == self.reference.at(key, version), (key, version)

    @invariant()
    def no_durable_model_is_ahead_of_the_checkpoint_of_its_shard(self) -> None:
        checkpoints = self.stored_checkpoints()
        for (projection, key), state in self.durable_models():
            shard = shard_of(key[0], self.shard_count)
            bound = max(checkpoints.get(shard, 0), self.ceiling)
            version = state["last_event_version"]
            assert version <= bound, (projection, key, version, bound)

    @invariant()
    def every_checkpoint_covers_only_durable_events(self) -> None:
        durable = dict(self.durable_models())
        for checkpoint in self.store.read_checkpoints():
            assert checkpoint.shard_count == self.shard_count
            assert checkpoint.sequence_number <= self.log.head()
            assert checkpoint.sequence_number <= self.cores[checkpoint.shard].applied
            for key in self.reference.states:
                if shard_of(key[1][0], self.shard_count) != checkpoint.shard:
                    continue
                wanted = self.reference.version_at(key, checkpoint.sequence_number)
                found = durable.get(key, {}).get("last_event_version", 0)
                assert found >= wanted, (checkpoint, key, found, wanted)

    @invariant()
    def every_core_reports_what_the_store_holds(self) -> None:
        checkpoints = self.stored_checkpoints()
        for core in self.cores:
            assert core.durable == checkpoints.get(core.shard, 0)
            assert core.applied >= core.durable

    @invariant()
    def every_model_in_memory_is_the_fold_at_its_own_version(self) -> None:
        for core in self.cores:
            for projection in REGISTRY:
                for key, state in core.projector.states(projection.name):
                    version = state["last_event_version"]
                    expected = self.reference.at((projection.name, key), version)
                    assert unpack(pack(state)) == expected, (key, version)

    def teardown(self) -> None:
        if self.cores:
            self.finish()

    # helpers

    def finish(self) -> None:
        """Let the store recover, run the dispatcher until it has caught up
        and flushed, and compare everything with the fold."""
        self.store.failures = 0
        self.faults.armed = 0
        for _ in range(CATCH_UP_STEPS):
            if not self.dispatcher.step():
                break
        assert self.dispatcher.caught_up
        head = self.log.head()
        checkpoints = self.stored_checkpoints()
        assert set(checkpoints) <= set(range(self.shard_count))
        reached = {
            shard: checkpoints.get(shard, 0) for shard in range(self.shard_count)
        }
        assert reached == dict.fromkeys(range(self.shard_count), head)
        assert dict(self.durable_models()) == self.reference.final()

    def durable_models(self) -> Iterator[tuple[Key, dict[str, Any]]]:
        for projection in REGISTRY:
            for key, state in self.store.iter_models(projection.name):
                yield (projection.name, key), state

    def stored_checkpoints(self) -> dict[int, int]:
        return {c.shard: c.sequence_number for c in self.store.read_checkpoints()}

    def durable_snapshot(self) -> tuple[object, ...]:
        models = sorted((pack(list(k)), pack(s)) for k, s in self.durable_models())
        return tuple(self.store.read_checkpoints()), tuple(models)


CrashSafety.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_crashes_restarts_and_store_faults_never_lose_or_double_count_an_event = (
    CrashSafety.TestCase
)
