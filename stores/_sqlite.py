"""SQLite stores: one file each, in WAL mode, safe for several processes.

Writes run in ``BEGIN IMMEDIATE`` transactions, so writers queue behind one
another (for up to the busy timeout) and a reader never sees half of one.
Every ``sqlite3`` error is translated in :meth:`_Database.translated`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import starmap
from pathlib import Path
from typing import Any

from engine import (
    AppendResult,
    Event,
    EventStoreError,
    Flush,
    OpenWriter,
    Owner,
    ShardCheckpoint,
    SnapshotStoreError,
    StoredRow,
    decode_event,
    encode_event,
    pack_key,
    route_of,
    unpack,
    unpack_key,
)

from ._append import Numbering, duplicate_event_id
from ._snapshots import check_claim, check_owner, encode_record, layout
from ._watch import HeadPoll

logger = logging.getLogger(__name__)

DEFAULT_BUSY_TIMEOUT_MS = 10_000
_PAGE = 5_000

_EVENTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    sequence_number INTEGER PRIMARY KEY,
    event_id TEXT UNIQUE NOT NULL,
    event_type TEXT NOT NULL,
    route INTEGER NOT NULL,
    payload BLOB NOT NULL
);
"""

_SNAPSHOTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    projection TEXT NOT NULL,
    key BLOB NOT NULL,
    route INTEGER NOT NULL,
    state BLOB NOT NULL,
    PRIMARY KEY (projection, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    shard INTEGER PRIMARY KEY,
    shard_count INTEGER NOT NULL,
    sequence_number INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS owners (
    shard INTEGER PRIMARY KEY,
    epoch INTEGER NOT NULL
);
"""


class _Database:
    """One SQLite file: its connection, a lock around it, and the one place
    where ``sqlite3`` errors become ``error_type``."""

    def __init__(
        self,
        path: str | Path,
        schema: str,
        error_type: type[EventStoreError | SnapshotStoreError],
        busy_timeout_ms: int,
    ) -> None:
        self.path = str(path)
        self._error_type = error_type
        self._lock = threading.RLock()
        with self.translated("open the database"):
            self._connection = sqlite3.connect(
                self.path,
                timeout=busy_timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                self._prepare(schema, busy_timeout_ms)
            except sqlite3.Error:
                self._connection.close()
                raise
        logger.info("opened SQLite database %s", self.path)

    def _prepare(self, schema: str, busy_timeout_ms: int) -> None:
        # WAL lets readers in other processes go on while one process writes.
        self._connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        self._connection.execute("PRAGMA journal_mode = WAL")
        self._connection.executescript(schema)

    @contextmanager
    def translated(self, action: str) -> Iterator[None]:
        """Turn any ``sqlite3`` error raised inside into ``error_type``."""
        try:
            yield
        except sqlite3.Error as error:
            raise self._error_type(
                f"could not {action} in SQLite file {self.path!r}: {error}"
            ) from error

    @contextmanager
    def transaction(self, action: str) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed if the block ends normally, rolled
        back (and the error re-raised) if anything in it raises."""
        with self._lock, self.translated(action):
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
                self._connection.execute("COMMIT")
            except BaseException:
                self._roll_back()
                raise

    def _roll_back(self) -> None:
        # SQLite may already have rolled back on its own (a full disk, say).
        if not self._connection.in_transaction:
            return
        try:
            self._connection.execute("ROLLBACK")
        except sqlite3.Error as error:
            logger.warning("rollback failed in %s: %s", self.path, error)

    def query(self, action: str, sql: str, parameters: Iterable[Any] = ()) -> list[Any]:
        """All rows of one read."""
        with self._lock, self.translated(action):
            return self._connection.execute(sql, tuple(parameters)).fetchall()

    def close(self) -> None:
        with self._lock, self.translated("close the database"):
            self._connection.close()


class SqliteEventStore:
    """An event log in one SQLite file, created with its schema on first use.

    Each event is stored with its route (see :func:`engine.route_of`) beside
    its encoded payload, so rows can be sent to shards without decoding.
    Appends commit whole, in number order, so a reader never sees a gap that
    a later commit fills.
    """

    def __init__(
        self, path: str | Path, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS
    ) -> None:
        self._database = _Database(
            path, _EVENTS_SCHEMA, EventStoreError, busy_timeout_ms
        )
        self._poll = HeadPoll(self.head)

    @property
    def path(self) -> str:
        return self._database.path

    def append(self, events: Iterable[Event]) -> AppendResult:
        """Append ``events`` in one transaction, all or none.

        ``events`` is consumed lazily, so a large file streams through. An
        event that breaks the numbering rules or repeats an ``event_id``
        raises :class:`engine.InvalidEventError`; that, or any error raised
        while iterating ``events``, rolls the whole append back.
        """
        with self._database.transaction("append events") as connection:
            numbering = Numbering(_head(connection))
            rows = _EventRows(events, numbering)
            try:
                connection.executemany(
                    "INSERT INTO events VALUES (?, ?, ?, ?, ?)", rows
                )
            except sqlite3.IntegrityError as error:
                if "event_id" not in str(error):
                    raise
                raise duplicate_event_id(rows.event_id, numbering.last) from None
        return numbering.result()

    def read_after(self, after: int, limit: int) -> list[StoredRow]:
        """Up to ``limit`` rows numbered above ``after``, in order."""
        rows = self._database.query(
            "read events",
            "SELECT sequence_number, route, payload FROM events"
            " WHERE sequence_number > ? ORDER BY sequence_number LIMIT ?",
            (after, max(limit, 0)),
        )
        return list(starmap(StoredRow, rows))

    def read_events_after(self, after: int, limit: int) -> list[Event]:
        """Like :meth:`read_after`, decoded into events."""
        rows = self.read_after(after, limit)
        return [decode_event(row.sequence_number, row.payload) for row in rows]

    def head(self) -> int:
        """The greatest stored sequence number, or 0 for an empty log."""
        rows = self._database.query(
            "read the head", "SELECT MAX(sequence_number) FROM events"
        )
        return int(rows[0][0] or 0)

    @property
    def gaps_may_fill(self) -> bool:
        """SQLite runs one writer at a time and numbers above the head: a
        number below a visible one never appears later."""
        return False

    def open_writers(self) -> list[OpenWriter]:
        """Gaps never fill here, so no writer matters to a reader."""
        return []

    def listen(self) -> None:
        """Report appends from now on."""
        self._poll.listen()

    def wait_for_append(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the head to move (a short poll:
        SQLite cannot notify another process)."""
        return self._poll.wait(timeout)

    def close(self) -> None:
        self._database.close()


def _head(connection: sqlite3.Connection) -> int:
    row = connection.execute("SELECT MAX(sequence_number) FROM events").fetchone()
    return int(row[0] or 0)


class _EventRows:
    """The rows to insert, made one at a time as SQLite asks for them.

    Remembers the ``event_id`` of the last row made: the one SQLite was
    inserting when it reports a constraint.
    """

    def __init__(self, events: Iterable[Event], numbering: Numbering) -> None:
        self._events = iter(events)
        self._numbering = numbering
        self.event_id = ""

    def __iter__(self) -> Iterator[tuple[int, str, str, int, bytes]]:
        number = self._numbering.number
        for event in self._events:
            self.event_id = event.event_id
            yield (
                number(event),
                event.event_id,
                event.event_type,
                route_of(event.user_id),
                encode_event(event),
            )


class SqliteSnapshotStore:
    """Read models, checkpoints and shard owners in one SQLite file.

    A flush is one transaction: the owner check, the models, then the
    checkpoint. The generation is the one row of ``generation`` (none before
    the first :meth:`begin_generation`); each claimed shard's epoch is a row
    of ``owners``.
    """

    def __init__(
        self, path: str | Path, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS
    ) -> None:
        self._database = _Database(
            path, _SNAPSHOTS_SCHEMA, SnapshotStoreError, busy_timeout_ms
        )

    @property
    def path(self) -> str:
        return self._database.path

    def write_flush(self, flush: Flush) -> None:
        """Write the models and the checkpoint in one transaction, if
        ``flush.owner`` is unset or still the shard's current owner.

        Every state is encoded before the transaction begins, so a state the
        codec refuses (a float) raises ``TypeError`` with nothing written, and
        the write lock is held only for the writes. A fenced-out owner raises
        :class:`engine.OwnershipLost`, and the transaction is rolled back.
        """
        records = [encode_record(model) for model in flush.models]
        checkpoint = flush.checkpoint
        with self._database.transaction("write a flush") as connection:
            if flush.owner is not None:
                current = _current_owner(connection, checkpoint.shard)
                check_owner(checkpoint.shard, current, flush.owner)
            connection.executemany(
                "INSERT OR REPLACE INTO models VALUES (?, ?, ?, ?)", records
            )
            connection.execute(
                "INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?)",
                (checkpoint.shard, checkpoint.shard_count, checkpoint.sequence_number),
            )

    def begin_generation(self) -> int:
        """Start the next generation (1 for a new file) and return it."""
        with self._database.transaction("begin a generation") as connection:
            connection.execute(
                "INSERT INTO generation VALUES (1, 1)"
                " ON CONFLICT (id) DO UPDATE SET value = value + 1"
            )
            return _current_generation(connection)

    def claim_shard(self, generation: int, shard: int) -> Owner:
        """Give ``shard`` its next epoch (1 for its first claim) within
        ``generation``, which must be the current one, in one transaction."""
        with self._database.transaction("claim a shard") as connection:
            check_claim(shard, _current_generation(connection), generation)
            connection.execute(
                "INSERT INTO owners VALUES (?, 1)"
                " ON CONFLICT (shard) DO UPDATE SET epoch = epoch + 1",
                (shard,),
            )
            epoch = _epoch(connection, shard)
        return Owner(generation, epoch)

    def read_checkpoints(self) -> list[ShardCheckpoint]:
        """Every stored shard checkpoint, in shard order."""
        rows = self._database.query(
            "read checkpoints",
            "SELECT shard, shard_count, sequence_number FROM checkpoints"
            " ORDER BY shard",
        )
        return list(starmap(ShardCheckpoint, rows))

    def reset_layout(self, shard_count: int, sequence_number: int) -> None:
        """Replace all checkpoints by a new layout in one transaction."""
        checkpoints = layout(shard_count, sequence_number)
        with self._database.transaction("reset the layout") as connection:
            connection.execute("DELETE FROM checkpoints")
            connection.executemany(
                "INSERT INTO checkpoints VALUES (?, ?, ?)",
                [(c.shard, c.shard_count, c.sequence_number) for c in checkpoints],
            )

    def load_models(
        self, shard: int, shard_count: int
    ) -> Iterator[tuple[str, tuple[Any, ...], dict[str, Any]]]:
        """Yield ``(projection, key, state)`` for the models of ``shard``.

        Reads page by page in key order, holding no lock between pages.
        """
        after: tuple[str, bytes] = ("", b"")
        while True:
            rows = self._database.query(
                "load models",
                "SELECT projection, key, state FROM models"
                " WHERE (projection, key) > (?, ?) AND route % ? = ?"
                " ORDER BY projection, key LIMIT ?",
                (*after, shard_count, shard, _PAGE),
            )
            for projection, key, state in rows:
                yield projection, unpack_key(key), unpack(state)
            if len(rows) < _PAGE:
                return
            after = rows[-1][0], rows[-1][1]

    def get_model(self, projection: str, key: tuple[Any, ...]) -> dict[str, Any] | None:
        """The state of one model, or ``None`` when there is none."""
        rows = self._database.query(
            "read a model",
            "SELECT state FROM models WHERE projection = ? AND key = ?",
            (projection, pack_key(key)),
        )
        return unpack(rows[0][0]) if rows else None

    def iter_models(
        self, projection: str
    ) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
        """Yield ``(key, state)`` for every model of ``projection``, page by
        page in key order."""
        after = b""
        while True:
            rows = self._database.query(
                "read models",
                "SELECT key, state FROM models WHERE projection = ? AND key > ?"
                " ORDER BY key LIMIT ?",
                (projection, after, _PAGE),
            )
            for key, state in rows:
                yield unpack_key(key), unpack(state)
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

    def ping(self) -> None:
        """Raise :class:`engine.SnapshotStoreError` when the file is unusable."""
        self._database.query("reach the store", "SELECT COUNT(*) FROM checkpoints")

    def clear(self) -> None:
        """Delete every model, checkpoint and owner in this file; generations
        start over."""
        with self._database.transaction("clear the store") as connection:
            for table in ("models", "checkpoints", "generation", "owners"):
                connection.execute(f"DELETE FROM {table}")

    def close(self) -> None:
        self._database.close()


def _current_generation(connection: sqlite3.Connection) -> int:
    row = connection.execute("SELECT value FROM generation").fetchone()
    return int(row[0]) if row else 0


def _epoch(connection: sqlite3.Connection, shard: int) -> int:
    row = connection.execute(
        "SELECT epoch FROM owners WHERE shard = ?", (shard,)
    ).fetchone()
    return int(row[0]) if row else 0


def _current_owner(connection: sqlite3.Connection, shard: int) -> Owner:
    return Owner(_current_generation(connection), _epoch(connection, shard))
