"""What the concrete stores offer beyond the engine's protocols.

The engine needs only :class:`engine.EventStore` and
:class:`engine.SnapshotStore`; the command line, the tests and the benchmark
also decode events and empty snapshot stores, so the URL openers return these.
"""

from __future__ import annotations

from typing import Protocol

from engine import Event, EventStore, SnapshotStore


class EventStoreAdapter(EventStore, Protocol):
    """An event store that can also decode what it reads."""

    def read_events_after(self, after: int, limit: int) -> list[Event]:
        """Like :meth:`read_after`, decoded into events."""
        ...


class SnapshotStoreAdapter(SnapshotStore, Protocol):
    """A snapshot store that can also be emptied."""

    def clear(self) -> None:
        """Delete every model, checkpoint and shard owner of this store, and
        nothing else; its next generation is 1 again."""
        ...
