"""The small protocols every event store and snapshot store implements.

``stores/`` holds the implementations; one contract test suite runs against
each. Both protocols speak in sequence numbers: the global, strictly
increasing position of an event in the log, starting at 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from ._events import Event


@dataclass(frozen=True, slots=True)
class StoredRow:
    """One event as stored: its position, its route and its encoded payload."""

    sequence_number: int
    route: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What one atomic append wrote: how many events, and their positions."""

    count: int
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class OpenWriter:
    """A writer's transaction that is open now: for how long it has been
    open, and whether it is running a statement at the moment."""

    open_for: timedelta
    busy: bool


class EventStore(Protocol):
    """An ordered, append-only log of events."""

    def append(self, events: Iterable[Event]) -> AppendResult:
        """Append ``events`` in one transaction: all of them or none.

        An event whose ``sequence_number`` is 0 gets the next number; any
        other must be greater than every number already stored or appended
        before it, else :class:`InvalidEventError` names it. If iterating
        ``events`` raises, nothing is written and the error propagates.
        """
        ...

    def read_after(self, after: int, limit: int) -> list[StoredRow]:
        """Up to ``limit`` rows with sequence numbers greater than ``after``,
        in order. Pass the last number you have applied, not the next one."""
        ...

    def head(self) -> int:
        """The greatest stored sequence number, or 0 for an empty log."""
        ...

    @property
    def gaps_may_fill(self) -> bool:
        """Whether a missing sequence number below a visible one may still
        appear later (a writer's transaction not yet committed). ``False``
        for stores whose writers commit in sequence order."""
        ...

    def open_writers(self) -> list[OpenWriter] | None:
        """The transactions open now that may still commit events (they
        hold a write lock on the log or its number sequence), or ``None``
        when the store cannot tell. Empty for stores whose gaps never fill.

        A number missing below one that a read before this call saw can
        only be filled by a writer that is listed here and has been open
        since before that number was first seen missing."""
        ...

    def listen(self) -> None:
        """Start noting appends, so that :meth:`wait_for_append` reports any
        append committed after this call, even one made before it waits."""
        ...

    def wait_for_append(self, timeout: float) -> bool:
        """Block until an append may have committed since :meth:`listen` or
        the previous wait, or until ``timeout`` seconds have passed; ``True``
        when woken early. A store without a wake-up polls briefly; a spurious
        ``True`` is allowed, a missed append is not (the caller re-reads)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ShardCheckpoint:
    """How far one shard of a layout of ``shard_count`` shards has applied."""

    shard: int
    shard_count: int
    sequence_number: int


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """One read model in a flush: its projection, full key and state."""

    projection: str
    key: tuple[Any, ...]
    state: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Owner:
    """Who may write a shard: an engine ``generation`` and, within it, the
    ``epoch`` of one shard incarnation. Both only ever grow."""

    generation: int
    epoch: int


@dataclass(frozen=True, slots=True)
class Flush:
    """The dirty models of one shard and the checkpoint that covers them.

    With an ``owner``, the store writes nothing unless that owner is still
    the shard's current one (see :meth:`SnapshotStore.claim_shard`).
    """

    checkpoint: ShardCheckpoint
    models: tuple[ModelRecord, ...]
    owner: Owner | None = None


class SnapshotStore(Protocol):
    """Durable read models and shard checkpoints.

    Every model's key starts with its ``user_id``; a store finds a shard's
    models by routing that id.
    """

    def write_flush(self, flush: Flush) -> None:
        """Write the models and the checkpoint in one atomic step.

        Returns only when the store confirmed every write; otherwise raises
        :class:`SnapshotStoreError` and the checkpoint is unchanged. Values
        are absolute, so repeating a flush is safe. When ``flush.owner`` is
        no longer the shard's current owner, nothing is written and
        :class:`OwnershipLost` is raised (never retried). A state the codec
        refuses (a float) raises ``TypeError`` before anything is written.
        """
        ...

    def begin_generation(self) -> int:
        """Atomically start a new engine generation and return its number
        (1 for a fresh store). Every owner of an earlier generation is fenced
        out from then on: its flushes and claims raise
        :class:`OwnershipLost`."""
        ...

    def claim_shard(self, generation: int, shard: int) -> Owner:
        """Atomically make a new incarnation the owner of ``shard`` within
        ``generation`` (the epoch grows by one) and return it; the shard's
        previous owner is fenced out. Raises :class:`OwnershipLost` when a
        newer generation has begun."""
        ...

    def read_checkpoints(self) -> list[ShardCheckpoint]:
        """Every stored shard checkpoint, in shard order."""
        ...

    def reset_layout(self, shard_count: int, sequence_number: int) -> None:
        """Atomically replace all checkpoints by ``shard_count`` shards, each
        at ``sequence_number``. Models are kept."""
        ...

    def load_models(
        self, shard: int, shard_count: int
    ) -> Iterator[tuple[str, tuple[Any, ...], dict[str, Any]]]:
        """Yield ``(projection, key, state)`` for every model whose user is
        routed to ``shard`` out of ``shard_count``."""
        ...

    def get_model(self, projection: str, key: tuple[Any, ...]) -> dict[str, Any] | None:
        """The state of one model, or ``None`` when there is none."""
        ...

    def iter_models(
        self, projection: str
    ) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
        """Yield ``(key, state)`` for every model of ``projection``."""
        ...

    def ping(self) -> None:
        """Raise :class:`SnapshotStoreError` when the store is unreachable."""
        ...

    def close(self) -> None: ...
