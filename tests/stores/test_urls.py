"""Opening stores from URLs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from engine import ConfigurationError
from stores import (
    MemoryEventStore,
    MemorySnapshotStore,
    RedisSnapshotStore,
    SqliteEventStore,
    SqliteSnapshotStore,
    open_event_store,
    open_snapshot_store,
)


def test_memory_urls_open_memory_stores() -> None:
    assert isinstance(open_event_store("memory://"), MemoryEventStore)
    assert isinstance(open_snapshot_store("memory://"), MemorySnapshotStore)


def test_a_relative_sqlite_url_creates_the_file_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    events = open_event_store("sqlite:///events.db")
    snapshots = open_snapshot_store("sqlite:///models.db")

    assert isinstance(events, SqliteEventStore)
    assert isinstance(snapshots, SqliteSnapshotStore)
    assert (tmp_path / "events.db").exists()
    assert (tmp_path / "models.db").exists()
    events.close()
    snapshots.close()


def test_an_absolute_sqlite_url_has_four_slashes(tmp_path: Path) -> None:
    store = open_event_store(f"sqlite:///{tmp_path}/events.db")

    assert isinstance(store, SqliteEventStore)
    assert store.path == f"{tmp_path}/events.db"
    assert (tmp_path / "events.db").exists()
    store.close()


def test_a_redis_url_opens_the_redis_store_lazily_with_its_prefix() -> None:
    store = open_snapshot_store("redis://127.0.0.1:1/3?prefix=bench-7")

    assert isinstance(store, RedisSnapshotStore)
    assert store.prefix == "bench-7"


def test_a_redis_url_without_prefix_uses_the_default_prefix() -> None:
    store = open_snapshot_store("rediss://127.0.0.1:1/0")

    assert isinstance(store, RedisSnapshotStore)
    assert store.prefix == "projectionist"


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_a_postgresql_url_is_read_by_the_postgresql_store(scheme: str) -> None:
    # Refused before any connection is tried: the table name is unusable.
    with pytest.raises(ConfigurationError, match=r"table name 'Bad' .* not usable"):
        open_event_store(f"{scheme}://127.0.0.1:1/events?table=Bad")


@pytest.mark.parametrize(
    ("opener", "url", "message"),
    [
        (open_event_store, "redis://127.0.0.1:1/0", "unknown event store scheme"),
        (open_event_store, "events.db", "sqlite:///events.db"),
        (open_event_store, "sqlite://host/events.db", "does not name a SQLite file"),
        (open_event_store, "sqlite:///", "does not name a SQLite file"),
        (open_snapshot_store, "postgresql://127.0.0.1/x", "unknown snapshot store"),
        (open_snapshot_store, "mongodb://127.0.0.1", "unknown snapshot store"),
        (open_snapshot_store, "redis://127.0.0.1:1/0?prefix=", "empty prefix"),
        (open_snapshot_store, "redis://127.0.0.1:port/0", "invalid Redis URL"),
    ],
)
def test_a_url_that_names_no_store_raises_a_configuration_error(
    opener: Callable[[str], object], url: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        opener(url)
