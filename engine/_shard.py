"""One shard's work, free of Ray: apply batches in order, flush atomically.

The Ray actor in ``actors/`` wraps a :class:`ShardCore`; a restarted actor
builds a new one, which reloads the shard's models and checkpoint, so
recovery is the constructor's job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from ._checkpoint import FlushPolicy
from ._codec import decode_events
from ._errors import ProjectionFailed, SnapshotStoreError
from ._events import Event
from ._fold import Projector
from ._projection import Registry
from ._stores import Flush, Owner, ShardCheckpoint, SnapshotStore, StoredRow

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ShardBatch:
    """The part of one dispatcher batch that belongs to one shard.

    The batch covers sequence numbers ``after + 1 .. upto``; ``payloads`` is
    the concatenation of the encoded events of this shard among them, whose
    numbers are ``sequence_numbers`` (possibly none).
    """

    after: int
    upto: int
    sequence_numbers: Sequence[int]
    payloads: bytes


@dataclass(frozen=True, slots=True)
class ShardReply:
    """A shard's answer: how far it has applied, how far that is durable,
    and whether the batch left a gap (``applied`` then says where to resend
    from)."""

    shard: int
    applied: int
    durable: int
    gap: bool = False


def split_batch(
    rows: Sequence[StoredRow], after: int, shard_count: int
) -> list[ShardBatch]:
    """Split rows read after ``after`` into one batch per shard, without
    decoding them: each row's stored route picks its shard, and each shard's
    payloads keep the rows' order."""
    upto = rows[-1].sequence_number if rows else after
    numbers: list[list[int]] = [[] for _ in range(shard_count)]
    payloads: list[list[bytes]] = [[] for _ in range(shard_count)]
    for row in rows:
        shard = row.route % shard_count
        numbers[shard].append(row.sequence_number)
        payloads[shard].append(row.payload)
    return [
        ShardBatch(after, upto, numbers[i], b"".join(payloads[i]))
        for i in range(shard_count)
    ]


class ShardCore:
    """The models of one shard and the rules for applying and flushing them.

    With an ``owner`` (claimed from the store before the core is built),
    every flush is fenced: once a newer owner claims the shard, the next
    flush raises :class:`OwnershipLost` and writes nothing.
    """

    def __init__(
        self,
        shard: int,
        shard_count: int,
        registry: Registry,
        store: SnapshotStore,
        policy: FlushPolicy,
        max_retries: int = 5,
        max_unflushed: int = 1_000_000,
        patience_seconds: float = 300.0,
        owner: Owner | None = None,
    ) -> None:
        self.owner = owner
        self.shard = shard
        self.shard_count = shard_count
        self.store = store
        self.policy = policy
        self.max_retries = max_retries
        self.max_unflushed = max_unflushed
        self.patience_seconds = patience_seconds
        self.projector = Projector(registry)
        self.durable = self._load()
        self.applied = self.durable
        self.pending = 0
        self._failures: dict[int, int] = {}
        self._poisoned: dict[int, str] = {}

    def _load(self) -> int:
        # Models first, then the checkpoint: a checkpoint never runs ahead of
        # the models it covers, because both were written in one flush.
        for projection, key, state in self.store.load_models(
            self.shard, self.shard_count
        ):
            self.projector.load(projection, key, state)
        for checkpoint in self.store.read_checkpoints():
            if checkpoint.shard == self.shard:
                if checkpoint.shard_count != self.shard_count:
                    raise SnapshotStoreError(
                        f"shard {self.shard}: stored layout has "
                        f"{checkpoint.shard_count} shards, not {self.shard_count}; "
                        "the engine must store the new layout first"
                    )
                return checkpoint.sequence_number
        return 0

    def apply(self, batch: ShardBatch) -> ShardReply:
        """Apply the events of ``batch`` this shard has not yet applied.

        A batch entirely at or below ``applied`` is a repeat and changes
        nothing. A batch starting beyond ``applied`` would skip events: it is
        refused with ``gap=True`` so the dispatcher resends from ``applied``.
        """
        if batch.upto <= self.applied:
            return self.reply()
        if batch.after > self.applied:
            logger.info(
                "shard %s: batch after %s leaves a gap from %s",
                self.shard,
                batch.after,
                self.applied,
            )
            return self.reply(gap=True)
        count = 0
        for event in decode_events(batch.sequence_numbers, batch.payloads):
            if event.sequence_number <= self.applied:
                continue
            try:
                self._apply_one(event)
            except ProjectionFailed as error:
                return self._failed(event, error)
            count += 1
        self.applied = batch.upto
        self.pending += count
        self._flush_when_due(self.pending)
        return self.reply()

    def _apply_one(self, event: Event) -> None:
        reason = self._poisoned.get(event.sequence_number)
        if reason is None:
            self.projector.apply(event)
        else:
            self.projector.park(event, reason)

    def _failed(self, event: Event, error: ProjectionFailed) -> ShardReply:
        # The failed handler may have left a model half changed: go back to
        # the durable snapshot and have the dispatcher resend from there.
        # After ``max_retries`` attempts the event is parked instead.
        number = event.sequence_number
        attempts = self._failures.get(number, 0) + 1
        self._failures[number] = attempts
        if attempts >= max(1, self.max_retries):
            self._poisoned[number] = f"{error} (after {attempts} attempts)"
        logger.warning(
            "shard %s: event %s of user %s failed (attempt %s)",
            self.shard,
            number,
            event.user_id,
            attempts,
        )
        time.sleep(_backoff(attempts))
        self._reload()
        return self.reply(gap=True)

    def _reload(self) -> None:
        self.projector = Projector(self.projector.registry)
        self.durable = self._load()
        self.applied = self.durable
        self.pending = 0

    def tick(self) -> ShardReply:
        """Flush when the time limit has passed; called while idle."""
        if self.applied > self.durable:
            self._flush_when_due(max(self.pending, 1))
        return self.reply()

    def _flush_when_due(self, pending: int) -> None:
        # A store that keeps failing does not stop the shard at once: it
        # goes on applying in memory until ``max_unflushed`` events wait,
        # and only then blocks (back-pressure) until the store is back.
        if not self.policy.due(pending):
            return
        try:
            self._write(patient=False)
        except SnapshotStoreError as error:
            if self.pending < self.max_unflushed:
                self.policy.flushed(None)
                logger.warning(
                    "shard %s: flush failed, %s events wait in memory: %s",
                    self.shard,
                    self.pending,
                    error,
                )
                return
            logger.warning("shard %s: holding back until the store is back", self.shard)
            self._write(patient=True)

    def flush(self) -> ShardReply:
        """Make every applied event durable, retrying for up to
        ``patience_seconds``; raises :class:`SnapshotStoreError` if the store
        stays unreachable. Does nothing when all is durable already."""
        self._write(patient=True)
        return self.reply()

    def _write(self, patient: bool) -> None:
        # Dirty models and the checkpoint that covers them, in one atomic
        # write; on failure nothing is marked durable and all stays dirty.
        if self.applied == self.durable and not self.projector.dirty_count:
            return
        started = self.policy.clock()
        flush = Flush(
            ShardCheckpoint(self.shard, self.shard_count, self.applied),
            self.projector.dirty_records(),
            self.owner,
        )
        for attempt in self._retrying(patient):
            with attempt:
                self.store.write_flush(flush)
        self.projector.mark_clean()
        self.durable = self.applied
        self.pending = 0
        self.policy.flushed(started)
        logger.debug(
            "shard %s flushed %s models up to %s",
            self.shard,
            len(flush.models),
            self.durable,
        )

    def _retrying(self, patient: bool) -> Retrying:
        attempts = stop_after_attempt(max(1, self.max_retries))
        return Retrying(
            retry=retry_if_exception_type(SnapshotStoreError),
            stop=stop_after_delay(self.patience_seconds) if patient else attempts,
            wait=wait_exponential_jitter(multiplier=0.05, max=5.0, jitter=0.1),
            before_sleep=_log_retry,
            reraise=True,
        )

    def reply(self, gap: bool = False) -> ShardReply:
        return ShardReply(self.shard, self.applied, self.durable, gap)


_POISON_WAIT = wait_exponential_jitter(multiplier=0.05, max=2.0, jitter=0.05)


def _backoff(attempts: int) -> float:
    """Seconds to wait before applying a failed event again."""
    state = RetryCallState(Retrying(), None, (), {})
    state.attempt_number = attempts
    return _POISON_WAIT(state)


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    logger.warning("flush attempt %s failed, retrying: %s", state.attempt_number, error)
