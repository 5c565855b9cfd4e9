"""Checkpoint rules: where each shard resumes, and when it flushes.

A shard's checkpoint is the greatest sequence number ``c`` such that every
event up to ``c`` routed to it has been applied *and* made durable with the
models it touched. Resume from the checkpoint itself: the first event to
read is ``c + 1``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ._stores import ShardCheckpoint


@dataclass(frozen=True)
class StartPlan:
    """Where each of ``shard_count`` shards resumes.

    ``relayout`` is true when the stored checkpoints were written by another
    shard count: the caller must then store the new layout (every shard at
    ``positions[0]``) atomically before any shard starts.
    """

    positions: tuple[int, ...]
    relayout: bool

    @property
    def lowest(self) -> int:
        return min(self.positions)


def plan_start(stored: Sequence[ShardCheckpoint], shard_count: int) -> StartPlan:
    """Decide where ``shard_count`` shards resume from ``stored`` checkpoints.

    With the same layout, each shard resumes at its own checkpoint (0 when it
    never flushed). With another layout, users move between shards, so every
    shard resumes at the lowest checkpoint of the old layout; models already
    ahead of it skip what they have seen by their ``last_event_version``.
    """
    if not stored:
        return StartPlan((0,) * shard_count, relayout=False)
    if all(c.shard_count == shard_count for c in stored):
        own = {c.shard: c.sequence_number for c in stored}
        return StartPlan(
            tuple(own.get(i, 0) for i in range(shard_count)), relayout=False
        )
    return StartPlan((_lowest_of_old_layout(stored),) * shard_count, relayout=True)


def _lowest_of_old_layout(stored: Sequence[ShardCheckpoint]) -> int:
    # A shard of the old layout that never flushed resumes from the start.
    counts = {c.shard_count for c in stored}
    expected = {(count, i) for count in counts for i in range(count)}
    present = {(c.shard_count, c.shard) for c in stored}
    if expected - present:
        return 0
    return min(c.sequence_number for c in stored)


@dataclass
class FlushPolicy:
    """Flush after ``every_events`` applied events or ``every_ms`` since the
    last flush, whichever comes first.

    The time limit stretches to ``FLUSH_SHARE`` times the last flush's own
    duration, so a shard catching up spends most of its time applying, not
    rewriting models it will change again. The clock is injectable.
    """

    every_events: int
    every_ms: int
    clock: Callable[[], float] = time.monotonic

    FLUSH_SHARE = 4

    def __post_init__(self) -> None:
        self._since = self.clock()
        self._last_took = 0.0

    def due(self, pending_events: int) -> bool:
        if pending_events <= 0:
            return False
        if pending_events >= self.every_events:
            return True
        waited = self.clock() - self._since
        return waited >= max(self.every_ms / 1000, self.FLUSH_SHARE * self._last_took)

    def flushed(self, started: float | None = None) -> None:
        """Record a flush that began at ``started`` (by this clock) and ended
        now."""
        now = self.clock()
        self._last_took = 0.0 if started is None else max(0.0, now - started)
        self._since = now
