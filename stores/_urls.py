"""Open a store named by a URL, as the command line and settings give it.

``sqlite:///relative.db`` is a path relative to the working directory and
``sqlite:////abs/path.db`` an absolute one; the file is created with its
schema on first use. ``postgresql://user@host:port/database`` (or
``postgres://…``) names a PostgreSQL event store, with ``?table=NAME`` for a
table other than ``projectionist_events``; the table is created on first use.
"""

from __future__ import annotations

from engine import ConfigurationError

from ._adapters import EventStoreAdapter, SnapshotStoreAdapter
from ._memory import MemoryEventStore, MemorySnapshotStore
from ._postgres import PostgresEventStore
from ._redis import RedisSnapshotStore
from ._sqlite import SqliteEventStore, SqliteSnapshotStore

_EVENT_SCHEMES = (
    "memory://, sqlite:///path.db, postgresql://user@host:port/db, "
    "eventsourcing+sqlite:///path.db, eventsourcing+postgresql://user@host:port/db"
)
_SNAPSHOT_SCHEMES = "memory://, sqlite:///path.db, redis://host:port/db, rediss://…"


def open_event_store(url: str) -> EventStoreAdapter:
    """The event store ``url`` names; :class:`engine.ConfigurationError` if
    none can be opened from it."""
    scheme = _scheme(url, _EVENT_SCHEMES)
    if scheme == "memory":
        return MemoryEventStore()
    if scheme == "sqlite":
        return SqliteEventStore(_sqlite_path(url))
    if scheme.startswith("eventsourcing+"):
        return _eventsourcing_log(url)
    if scheme in ("postgresql", "postgres"):
        return PostgresEventStore(url)
    raise ConfigurationError(
        f"unknown event store scheme {scheme!r}; use one of {_EVENT_SCHEMES}"
    )


def _eventsourcing_log(url: str) -> EventStoreAdapter:
    # Imported only here: the eventsourcing library is an optional extra.
    from ._eventsourcing import open_eventsourcing_store

    return open_eventsourcing_store(url)


def open_snapshot_store(url: str) -> SnapshotStoreAdapter:
    """The snapshot store ``url`` names; :class:`engine.ConfigurationError` if
    none can be opened from it."""
    scheme = _scheme(url, _SNAPSHOT_SCHEMES)
    if scheme == "memory":
        return MemorySnapshotStore()
    if scheme == "sqlite":
        return SqliteSnapshotStore(_sqlite_path(url))
    if scheme in ("redis", "rediss"):
        return RedisSnapshotStore.from_url(url)
    raise ConfigurationError(
        f"unknown snapshot store scheme {scheme!r}; use one of {_SNAPSHOT_SCHEMES}"
    )


def _scheme(url: str, supported: str) -> str:
    scheme, separator, _rest = url.partition("://")
    if not separator or not scheme:
        raise ConfigurationError(
            f"{url!r} is not a store URL; use one of {supported} "
            f"(a file is sqlite:///{url})"
        )
    return scheme.lower()


def _sqlite_path(url: str) -> str:
    rest = url.partition("://")[2]
    host, slash, path = rest.partition("/")
    if host or not slash or not path:
        raise ConfigurationError(
            f"{url!r} does not name a SQLite file; write sqlite:///relative.db "
            "or sqlite:////absolute/path.db"
        )
    return path
