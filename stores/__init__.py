"""Store adapters: event stores and snapshot stores behind the engine's
protocols, and the URL openers that pick one.

Event stores: ``memory://``, ``sqlite:///path.db``,
``postgresql://user@host:port/database`` (with an optional ``?table=NAME``).
Snapshot stores:
``memory://``, ``sqlite:///path.db``, ``redis://host:port/db`` and
``rediss://…`` (with an optional ``?prefix=NAME`` for the key prefix).
"""

from ._adapters import EventStoreAdapter, SnapshotStoreAdapter
from ._memory import MemoryEventStore, MemorySnapshotStore
from ._postgres import PostgresEventStore
from ._redis import DEFAULT_PREFIX, RedisSnapshotStore
from ._sqlite import SqliteEventStore, SqliteSnapshotStore
from ._urls import open_event_store, open_snapshot_store

__all__ = [
    "DEFAULT_PREFIX",
    "EventStoreAdapter",
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
