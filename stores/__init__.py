"""Store adapters: event stores and snapshot stores behind the engine's
protocols, and the URL openers that pick one.

Event stores: ``memory://``, ``sqlite:///path.db``,
``postgresql://user@host:port/database`` (with an optional ``?table=NAME``).
Snapshot stores:
``memory://``, ``sqlite:///path.db``, ``redis://host:port/db`` and
``rediss://…`` (with an optional ``?prefix=NAME`` for the key prefix).

A log written by the ``eventsourcing`` library is read through
``eventsourcing+sqlite:///path.db`` or ``eventsourcing+postgresql://…``; its
adapter, :class:`EventsourcingEventStore`, is imported on first use, since
that library is an optional extra.
"""

from typing import Any

from ._adapters import EventStoreAdapter, SnapshotStoreAdapter
from ._memory import MemoryEventStore, MemorySnapshotStore
from ._postgres import PostgresEventStore
from ._redis import DEFAULT_PREFIX, RedisSnapshotStore
from ._sqlite import SqliteEventStore, SqliteSnapshotStore
from ._urls import open_event_store, open_snapshot_store
from ._watch import HeadPoll

__all__ = [
    "DEFAULT_PREFIX",
    "EventStoreAdapter",
    "HeadPoll",
    "MemoryEventStore",
    "MemorySnapshotStore",
    "PostgresEventStore",
    "RedisSnapshotStore",
    "SnapshotStoreAdapter",
    "SqliteEventStore",
    "SqliteSnapshotStore",
    "open_event_store",
    "open_snapshot_store",
]

_EVENTSOURCING = frozenset(
    {"EventsourcingEventStore", "TopicMapping", "open_eventsourcing_store"}
)


def __getattr__(name: str) -> Any:
    """The eventsourcing log adapter, imported on first use; without the
    eventsourcing library that raises :class:`engine.ConfigurationError`."""
    if name in _EVENTSOURCING:
        from . import _eventsourcing

        return getattr(_eventsourcing, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
