"""What only the SQLite stores do: translate their errors, and page reads."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

import stores._sqlite
from engine import (
    Event,
    EventStoreError,
    Flush,
    ModelRecord,
    Owner,
    ShardCheckpoint,
    SnapshotStoreError,
    shard_of,
)
from stores import SqliteEventStore, SqliteSnapshotStore


def _subclasses(root: type[Exception]) -> list[type[Exception]]:
    found = [root]
    for child in root.__subclasses__():
        found.extend(_subclasses(child))
    return found


@pytest.mark.parametrize("error_type", _subclasses(sqlite3.Error))
def test_every_sqlite_error_becomes_the_store_error(
    tmp_path: Path, error_type: type[Exception]
) -> None:
    events = SqliteEventStore(tmp_path / "events.db")
    snapshots = SqliteSnapshotStore(tmp_path / "models.db")

    with pytest.raises(EventStoreError), events._database.translated("test"):
        raise error_type("injected")
    with pytest.raises(SnapshotStoreError), snapshots._database.translated("test"):
        raise error_type("injected")


def test_a_file_in_a_missing_directory_raises_an_error_naming_it(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "no-such-dir" / "events.db"

    with pytest.raises(EventStoreError, match="no-such-dir"):
        SqliteEventStore(missing)
    with pytest.raises(SnapshotStoreError, match="no-such-dir"):
        SqliteSnapshotStore(missing)


def test_a_file_that_is_not_a_database_raises_an_error_naming_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are notes, not a database" * 100)

    with pytest.raises(EventStoreError, match=r"notes\.db.*not a database"):
        SqliteEventStore(path)


def test_a_closed_store_raises_store_errors(tmp_path: Path) -> None:
    events = SqliteEventStore(tmp_path / "events.db")
    snapshots = SqliteSnapshotStore(tmp_path / "models.db")
    events.close()
    snapshots.close()
    event = Event(0, "e-1", "WalletCredited", datetime(2026, 1, 5, tzinfo=UTC), {})

    with pytest.raises(EventStoreError, match="closed"):
        events.append([event])
    with pytest.raises(EventStoreError):
        events.head()
    with pytest.raises(SnapshotStoreError):
        snapshots.ping()


def test_models_are_loaded_whole_across_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stores._sqlite, "_PAGE", 3)
    store = SqliteSnapshotStore(tmp_path / "models.db")
    users = [f"user-{index}" for index in range(20)]
    models = tuple(ModelRecord("balance", (user, "USD"), {"n": 1}) for user in users)
    store.write_flush(Flush(ShardCheckpoint(0, 1, 20), models))

    loaded = {key[0] for _name, key, _state in store.load_models(1, 2)}
    listed = [key[0] for key, _state in store.iter_models("balance")]

    assert loaded == {user for user in users if shard_of(user, 2) == 1}
    assert sorted(listed) == sorted(users)
    assert len(listed) == len(users)
    store.close()


def test_snapshot_tables_are_created_on_first_use(tmp_path: Path) -> None:
    path = tmp_path / "models.db"
    SqliteSnapshotStore(path).close()

    with sqlite3.connect(path) as connection:
        tables = {
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master")
            if not row[0].startswith("sqlite_")
        }
        mode = connection.execute("PRAGMA journal_mode").fetchone()[0]

    assert tables == {"models", "checkpoints", "generation", "owners"}
    assert mode == "wal"


def test_a_file_from_before_fencing_gains_its_tables_and_keeps_its_models(
    tmp_path: Path,
) -> None:
    path = tmp_path / "models.db"
    store = SqliteSnapshotStore(path)
    store.write_flush(Flush(ShardCheckpoint(0, 1, 4), (ModelRecord("n", ("u1",), {}),)))
    store.close()
    with sqlite3.connect(path) as connection:
        connection.executescript("DROP TABLE generation; DROP TABLE owners;")

    reopened = SqliteSnapshotStore(path)
    owner = reopened.claim_shard(reopened.begin_generation(), 0)

    assert owner == Owner(1, 1)
    assert reopened.read_checkpoints() == [ShardCheckpoint(0, 1, 4)]
    assert reopened.get_model("n", ("u1",)) == {}
    reopened.close()
