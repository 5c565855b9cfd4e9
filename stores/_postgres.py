"""The PostgreSQL event store: one table, numbered by its identity sequence.

Appends draw numbers from the table's identity sequence as they insert, so
writers on several connections may commit out of order: a number can become
visible after a greater one (``gaps_may_fill``), and a rolled-back append
leaves its numbers unused. A statement-level trigger notifies a channel on
every insert, whoever the writer, and :meth:`PostgresEventStore.wait_for_append`
listens on it over a second connection. A lost connection is reopened with
backoff; every ``psycopg`` error that remains becomes
:class:`engine.EventStoreError`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import starmap
from typing import Any, TypeVar
from urllib.parse import unquote_plus

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from engine import (
    AppendResult,
    ConfigurationError,
    Event,
    EventStoreError,
    InvalidEventError,
    OpenWriter,
    StoredRow,
    decode_event,
    encode_event,
    route_of,
)

from ._append import Numbering, duplicate_event_id
from ._pg_writers import open_writers

logger = logging.getLogger(__name__)

DEFAULT_TABLE = "projectionist_events"
APPLICATION_NAME = "projectionist"
DEFAULT_CONNECT_TIMEOUT_S = 10
DEFAULT_RECONNECT_ATTEMPTS = 8
DEFAULT_RECONNECT_SECONDS = 30.0

_SCHEMES = ("postgresql", "postgres")
_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,47}")
_RUN_SIZE = 10_000
_KEEP_EVENTS = 100_000
_BIGINT_MAX = 2**63 - 1

_Connection = psycopg.Connection[TupleRow]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PostgresTarget:
    """Where an event store lives, read from its URL.

    ``conninfo`` is what psycopg connects with (the ``table`` option removed;
    kept out of ``repr``, as it holds the password), ``shown`` the URL
    without its password, for messages and logs.
    """

    conninfo: str = field(repr=False)
    table: str
    shown: str

    @property
    def channel(self) -> str:
        """The channel the table's trigger notifies on every insert."""
        return f"{self.table}_appended"


def parse_postgres_url(
    url: str, connect_timeout: int = DEFAULT_CONNECT_TIMEOUT_S
) -> PostgresTarget:
    """Read ``postgresql://…`` or ``postgres://…``, with an optional
    ``?table=NAME``; :class:`engine.ConfigurationError` if it is unusable.

    The connection gets ``application_name=projectionist`` and the given
    ``connect_timeout`` unless the URL sets them.
    """
    scheme, separator, _rest = url.partition("://")
    shown = _without_password(url)
    if not separator or scheme.lower() not in _SCHEMES:
        raise ConfigurationError(
            f"{shown!r} is not a PostgreSQL URL; write "
            "postgresql://user@host:port/database"
        )
    base, _mark, query = url.partition("?")
    options = [item for item in query.split("&") if item]
    tables = [_value(item) for item in options if _key(item) == "table"]
    kept = "&".join(item for item in options if _key(item) != "table")
    table = _table_name(tables, shown)
    bare = f"{base}?{kept}" if kept else base
    try:
        given = conninfo_to_dict(bare)
        defaults: dict[str, Any] = {
            "application_name": APPLICATION_NAME,
            "connect_timeout": connect_timeout,
        }
        extra = {key: value for key, value in defaults.items() if key not in given}
        conninfo = make_conninfo(bare, **extra)
    except psycopg.ProgrammingError as error:
        reason = _scrubbed(str(error), url, shown)
        raise ConfigurationError(
            f"{shown!r} is not a PostgreSQL URL psycopg can use: {reason}"
        ) from None
    return PostgresTarget(conninfo, table, shown)


class PostgresEventStore:
    """An event log in one PostgreSQL table, created on first use.

    Columns as in the SQLite store: ``sequence_number`` (an identity),
    ``event_id`` (unique), ``event_type``, ``route`` (see
    :func:`engine.route_of`) and the encoded ``payload``. Safe to share
    between threads; reads and appends survive a dropped connection, which
    is reopened with exponential backoff for up to ``reconnect_attempts``
    attempts or ``reconnect_seconds``.
    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: int = DEFAULT_CONNECT_TIMEOUT_S,
        reconnect_attempts: int = DEFAULT_RECONNECT_ATTEMPTS,
        reconnect_seconds: float = DEFAULT_RECONNECT_SECONDS,
    ) -> None:
        self._target = parse_postgres_url(url, connect_timeout)
        self._sql = _Statements(self._target)
        self._attempts = max(1, reconnect_attempts)
        self._patience = reconnect_seconds
        # Re-entrant: the iterable being appended may itself read the log.
        self._lock = threading.RLock()
        self._listen_lock = threading.Lock()
        self._connection: _Connection | None = None
        self._listener: _Connection | None = None
        self._closed = False
        try:
            self._sequence = self._run("open the events table", self._prepare)
        except BaseException:
            self.close()
            raise
        logger.info(
            "opened PostgreSQL event store %s, table %s",
            self._target.shown,
            self._target.table,
        )

    @property
    def url(self) -> str:
        """The store's URL without its password."""
        return self._target.shown

    @property
    def table(self) -> str:
        return self._target.table

    @property
    def channel(self) -> str:
        """The channel notified on every insert into the table."""
        return self._target.channel

    @property
    def gaps_may_fill(self) -> bool:
        """Writers on other connections may commit a smaller number later."""
        return True

    def append(self, events: Iterable[Event]) -> AppendResult:
        """Append ``events`` in one transaction, all or none.

        Events numbered 0 take numbers from the table's identity sequence;
        others must be greater than every number stored or drawn before (the
        table is locked for the check). ``events`` is consumed lazily, in
        runs of up to 10,000 inserted by one statement each. After a lost
        connection the append is repeated, unless it had committed already:
        then the stored numbers are returned.
        """
        batches = _Batches(events)
        return self._run("append events", partial(self._append_once, batches))

    def read_after(self, after: int, limit: int) -> list[StoredRow]:
        """Up to ``limit`` rows numbered above ``after``, in order."""
        if limit <= 0:
            return []
        rows = self._run("read events", partial(self._read, after, limit))
        return list(starmap(StoredRow, rows))

    def read_events_after(self, after: int, limit: int) -> list[Event]:
        """Like :meth:`read_after`, decoded into events."""
        rows = self.read_after(after, limit)
        return [decode_event(row.sequence_number, row.payload) for row in rows]

    def head(self) -> int:
        """The greatest visible sequence number, or 0 for an empty log."""
        return self._run("read the head", self._head)

    def open_writers(self) -> list[OpenWriter]:
        """The other sessions that hold a write lock on the table or its
        identity sequence now: an insert holds one from before it draws its
        numbers until its transaction ends, and so does a ``nextval``
        reserving a number ahead of its insert."""
        return self._run("look for open writers", self._open_writers)

    def listen(self) -> None:
        """Start listening on the table's channel, on a second connection;
        every append committed from now on wakes :meth:`wait_for_append`."""
        with self._listen_lock:
            self._check_open()
            if self._listener is None or self._listener.closed:
                self._open_listener()

    def wait_for_append(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for an append committed since
        :meth:`listen` or the previous wait; ``True`` when woken.

        Without a prior :meth:`listen`, it starts listening and returns
        ``True`` at once. A lost listening connection is reopened, and the
        wait returns ``True``: appends may have gone unnoticed meanwhile.
        """
        with self._listen_lock:
            self._check_open()
            if self._listener is None:
                self._open_listener()
                return True
            try:
                return _woken(self._listener, timeout)
            except psycopg.OperationalError as error:
                logger.warning(
                    "lost the listening connection to %s, reconnecting: %s",
                    self._target.shown,
                    _describe(error),
                )
                self._open_listener()
                return True
            except psycopg.Error as error:
                raise self._failure("wait for appends", error) from error

    def drop(self) -> None:
        """Delete the table, its events, its trigger and notify function (a
        benchmark's or a test's own log); the store stays open."""
        self._run("drop the events table", self._drop)

    def _drop(self, connection: _Connection) -> None:
        with connection.transaction():
            connection.execute(
                sql.SQL("DROP TABLE IF EXISTS {}").format(
                    sql.Identifier(self._target.table)
                )
            )
            connection.execute(
                sql.SQL("DROP FUNCTION IF EXISTS {}()").format(
                    sql.Identifier(_trigger_name(self._target))
                )
            )

    def close(self) -> None:
        """Close both connections; the store cannot be used afterwards."""
        with self._lock:
            self._closed = True
            self._drop_connection()
        with self._listen_lock:
            self._close_listener()

    def _run(self, action: str, work: Callable[[_Connection], T]) -> T:
        try:
            result: T = self._retrying(action)(self._attempt, work)
        except psycopg.Error as error:
            raise self._failure(action, error) from error
        return result

    def _retrying(self, action: str) -> Retrying:
        """Attempts after a lost connection, with exponential backoff and
        jitter, until the attempts or the seconds run out."""
        return Retrying(
            retry=retry_if_exception_type(psycopg.OperationalError),
            stop=stop_after_attempt(self._attempts) | stop_after_delay(self._patience),
            wait=wait_exponential_jitter(multiplier=0.05, max=2.0, jitter=0.05),
            before_sleep=partial(_log_retry, action, self._target.shown),
            reraise=True,
        )

    def _attempt(self, work: Callable[[_Connection], T]) -> T:
        with self._lock:
            connection = self._connected()
            try:
                return work(connection)
            except psycopg.OperationalError:
                self._drop_connection()
                raise

    def _connected(self) -> _Connection:
        self._check_open()
        if self._connection is None or self._connection.closed:
            self._drop_connection()
            self._connection = self._connect()
        return self._connection

    def _connect(self) -> _Connection:
        return psycopg.connect(self._target.conninfo, autocommit=True)

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _check_open(self) -> None:
        if self._closed:
            raise EventStoreError(
                f"the PostgreSQL event store {self._target.shown} is closed"
            )

    def _failure(self, action: str, error: psycopg.Error) -> EventStoreError:
        return EventStoreError(
            f"could not {action} in PostgreSQL {self._target.shown} "
            f"(table {self._target.table}): {_describe(error)}"
        )

    def _prepare(self, connection: _Connection) -> str:
        # Creating needs rights a reader may lack, so look before creating.
        if not _table_is_ready(connection, self._target):
            with connection.transaction():
                _create_table(connection, self._target)
        found = connection.execute(
            "SELECT pg_get_serial_sequence(%s, 'sequence_number')",
            [self._target.table],
        ).fetchone()
        if found is None or found[0] is None:
            raise EventStoreError(
                f"table {self._target.table} in {self._target.shown} has no "
                "identity column sequence_number: it is not a Projectionist "
                "event table"
            )
        return str(found[0])

    def _read(self, after: int, limit: int, connection: _Connection) -> list[Any]:
        return connection.execute(
            self._sql.read, [after, limit], binary=True
        ).fetchall()

    def _head(self, connection: _Connection) -> int:
        row = connection.execute(self._sql.head).fetchone()
        return int(row[0]) if row else 0

    def _open_writers(self, connection: _Connection) -> list[OpenWriter]:
        return open_writers(connection, self._target.table, self._sequence)

    def _append_once(self, batches: _Batches, connection: _Connection) -> AppendResult:
        if batches.outcome is not None:
            stored = self._stored(batches.outcome, connection)
            if stored is not None:
                return stored
            batches.outcome = None
        runs = batches.replay(self._target.shown)
        connection.autocommit = False
        try:
            outcome = _Append(connection, self._sql, self._sequence).insert(runs)
            try:
                connection.commit()
            except psycopg.OperationalError:
                # The commit may or may not have reached the server.
                batches.outcome = outcome
                raise
        except BaseException:
            _roll_back(connection)
            raise
        finally:
            _restore_autocommit(connection)
        return outcome.result

    def _stored(
        self, outcome: _Outcome, connection: _Connection
    ) -> AppendResult | None:
        # After a commit whose reply was lost: stored whole, or not at all.
        ids = [outcome.first_id, outcome.last_id]
        found: dict[str, int] = dict(
            connection.execute(self._sql.find, [ids]).fetchall()
        )
        if outcome.first_id not in found:
            return None
        if outcome.last_id not in found:
            raise EventStoreError(
                f"an append to {self._target.shown} is only partly stored: "
                f"event_id {outcome.first_id!r} is, {outcome.last_id!r} is not"
            )
        logger.warning(
            "an append of %s events had committed before its connection to %s "
            "was lost; not appending it again",
            outcome.result.count,
            self._target.shown,
        )
        return AppendResult(
            outcome.result.count, found[outcome.first_id], found[outcome.last_id]
        )

    def _open_listener(self) -> None:
        self._close_listener()
        try:
            self._listener = self._retrying("listen")(self._connect_listener)
        except psycopg.Error as error:
            raise self._failure("listen for appends", error) from error

    def _connect_listener(self) -> _Connection:
        connection = self._connect()
        try:
            connection.execute(self._sql.listen)
        except BaseException:
            connection.close()
            raise
        return connection

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()


class _Statements:
    """The SQL of one events table."""

    def __init__(self, target: PostgresTarget) -> None:
        table = sql.Identifier(target.table)
        self.read = sql.SQL(
            "SELECT sequence_number, route, payload FROM {}"
            " WHERE sequence_number > %s ORDER BY sequence_number LIMIT %s"
        ).format(table)
        self.head = sql.SQL("SELECT COALESCE(MAX(sequence_number), 0) FROM {}").format(
            table
        )
        self.find = sql.SQL(
            "SELECT event_id, sequence_number FROM {} WHERE event_id = ANY(%s)"
        ).format(table)
        self.lock = sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(table)
        self.drawn_head = sql.SQL(
            "SELECT GREATEST(MAX(sequence_number),"
            " pg_sequence_last_value(%s::regclass), 0) FROM {}"
        ).format(table)
        self.listen = sql.SQL("LISTEN {}").format(sql.Identifier(target.channel))
        self.insert_drawn = _insert(table, "nextval(%(sequence)s::regclass)")
        self.insert_numbered = _insert(table, "u.wanted")


def _insert(table: sql.Identifier, number: str) -> sql.Composed:
    # One statement per run: number the rows in order, insert those whose
    # event_id is new, and report each row's number and whether it went in.
    # The arrays travel in binary, several times faster to send than text.
    return sql.SQL(
        "WITH input AS MATERIALIZED ("
        " SELECT " + number + " AS sequence_number, u.event_id, u.event_type,"
        " u.route, u.payload, u.position"
        " FROM unnest(%(numbers)b::bigint[], %(event_ids)b::text[],"
        " %(event_types)b::text[], %(routes)b::bigint[], %(payloads)b::bytea[])"
        " WITH ORDINALITY AS u(wanted, event_id, event_type, route, payload, position)"
        " ORDER BY u.position"
        "), inserted AS ("
        " INSERT INTO {} (sequence_number, event_id, event_type, route, payload)"
        " SELECT sequence_number, event_id, event_type, route, payload"
        " FROM input ORDER BY position"
        " ON CONFLICT (event_id) DO NOTHING RETURNING sequence_number"
        ")"
        " SELECT input.sequence_number, inserted.sequence_number IS NOT NULL"
        " FROM input LEFT JOIN inserted USING (sequence_number)"
        " ORDER BY input.position"
    ).format(table)


def _table_is_ready(connection: _Connection, target: PostgresTarget) -> bool:
    row = connection.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_trigger"
        " WHERE tgrelid = to_regclass(%s) AND tgname = %s)",
        [target.table, _trigger_name(target)],
    ).fetchone()
    return bool(row and row[0])


def _create_table(connection: _Connection, target: PostgresTarget) -> None:
    """Create the table, its notify function and trigger, inside the caller's
    transaction; an advisory lock makes openers take turns."""
    table = sql.Identifier(target.table)
    notify = sql.Identifier(_trigger_name(target))
    connection.execute(
        "SELECT pg_advisory_xact_lock(hashtext(%s))",
        [f"projectionist schema {target.table}"],
    )
    connection.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} ("
            " sequence_number BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
            " event_id TEXT UNIQUE NOT NULL,"
            " event_type TEXT NOT NULL,"
            " route BIGINT NOT NULL,"
            " payload BYTEA NOT NULL)"
        ).format(table)
    )
    if _table_is_ready(connection, target):
        return
    connection.execute(
        sql.SQL(
            "CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN PERFORM pg_notify({}, ''); RETURN NULL; END $$"
        ).format(notify, sql.Literal(target.channel))
    )
    connection.execute(
        sql.SQL(
            "CREATE TRIGGER {} AFTER INSERT ON {}"
            " FOR EACH STATEMENT EXECUTE FUNCTION {}()"
        ).format(notify, table, notify)
    )
    logger.info("set up the events table %s and its notify trigger", target.table)


def _trigger_name(target: PostgresTarget) -> str:
    return f"{target.table}_notify"


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What an append wrote before its commit: enough to find it again."""

    result: AppendResult
    first_id: str
    last_id: str


class _Run:
    """Consecutive events of one append, either all numbered by the store
    (``drawn``) or all carrying their own numbers, encoded for one insert."""

    __slots__ = ("_ids", "drawn", "event_types", "events", "payloads", "routes")

    def __init__(self, drawn: bool) -> None:
        self.drawn = drawn
        self.events: list[Event] = []
        self.event_types: list[str] = []
        self.routes: list[int] = []
        self.payloads: list[bytes] = []
        self._ids: dict[str, None] = {}

    @property
    def event_ids(self) -> list[str]:
        return list(self._ids)

    def add(self, event: Event, position: int) -> None:
        _check_storable(event)
        if event.event_id in self._ids:
            error = duplicate_event_id(event.event_id, event.sequence_number)
            raise error if not self.drawn else error.located(_position(position))
        self._ids[event.event_id] = None
        self.events.append(event)
        self.event_types.append(event.event_type)
        self.routes.append(route_of(event.user_id))
        self.payloads.append(encode_event(event))

    def __len__(self) -> int:
        return len(self.events)


def _runs(events: Iterable[Event]) -> Iterator[_Run]:
    run: _Run | None = None
    for position, event in enumerate(events, 1):
        drawn = event.sequence_number == 0
        if run is not None and (run.drawn != drawn or len(run) >= _RUN_SIZE):
            yield run
            run = None
        if run is None:
            run = _Run(drawn)
        run.add(event, position)
    if run is not None:
        yield run


def _check_storable(event: Event) -> None:
    if event.sequence_number > _BIGINT_MAX:
        raise InvalidEventError(
            f"is above {_BIGINT_MAX}, the greatest number PostgreSQL stores",
            where=f"sequence number {event.sequence_number}",
            field="sequence_number",
        )
    for name, text in (("event_id", event.event_id), ("event_type", event.event_type)):
        if "\x00" in text:
            raise InvalidEventError(
                "contains a NUL character, which PostgreSQL text cannot hold",
                where=_where(event),
                field=name,
            )


def _where(event: Event) -> str:
    if event.sequence_number:
        return f"sequence number {event.sequence_number}"
    return f"event_id {event.event_id!r}"


def _position(position: int) -> str:
    return f"event {position} of the append"


class _Batches:
    """The runs of one append, kept while they are few, so that an attempt
    cut off by a lost connection can be made again from the start."""

    def __init__(self, events: Iterable[Event]) -> None:
        self._source = _runs(events)
        self._kept: list[_Run] | None = []
        self._kept_events = 0
        self.outcome: _Outcome | None = None

    def replay(self, shown: str) -> Iterator[_Run]:
        """Every run from the first; :class:`engine.EventStoreError` when the
        early ones are no longer kept."""
        if self._kept is None:
            raise EventStoreError(
                f"the connection to PostgreSQL {shown} was lost during an "
                f"append of more than {_KEEP_EVENTS} events; nothing was "
                "written, append them again"
            )
        return self._iterate(list(self._kept))

    def _iterate(self, kept: list[_Run]) -> Iterator[_Run]:
        yield from kept
        for run in self._source:
            self._keep(run)
            yield run

    def _keep(self, run: _Run) -> None:
        if self._kept is None:
            return
        self._kept_events += len(run)
        if self._kept_events > _KEEP_EVENTS:
            self._kept = None
        else:
            self._kept.append(run)


class _Append:
    """One attempt at an append, inside the caller's transaction.

    The table is locked (against other inserts, not reads) from the first
    run of explicit numbers on, so that checking them against the greatest
    number stored or drawn cannot race another writer. The identity
    sequence is moved past them before numbers are drawn again or the
    transaction commits.
    """

    def __init__(self, connection: _Connection, statements: _Statements, sequence: str):
        self._connection = connection
        self._sql = statements
        self._sequence = sequence
        self._locked = False
        self._numbered_up_to = 0
        self._count = 0
        self._first = 0
        self._last = 0
        self._first_id = ""
        self._last_id = ""

    def insert(self, runs: Iterable[_Run]) -> _Outcome:
        """Insert every run; what was written, for the caller to commit."""
        for run in runs:
            numbers = self._insert_drawn(run) if run.drawn else self._insert_own(run)
            if not self._count:
                self._first, self._first_id = numbers[0], run.events[0].event_id
            self._count += len(numbers)
            self._last, self._last_id = numbers[-1], run.events[-1].event_id
        self._advance_sequence()
        result = AppendResult(self._count, self._first, self._last)
        return _Outcome(result, self._first_id, self._last_id)

    def _insert_drawn(self, run: _Run) -> list[int]:
        self._advance_sequence()
        return self._execute(self._sql.insert_drawn, run, [None] * len(run))

    def _insert_own(self, run: _Run) -> list[int]:
        if not self._locked:
            self._connection.execute(self._sql.lock)
            self._locked = True
        row = self._connection.execute(
            self._sql.drawn_head, [self._sequence]
        ).fetchone()
        numbering = Numbering(int(row[0]) if row else 0)
        wanted = [numbering.number(event) for event in run.events]
        numbers = self._execute(self._sql.insert_numbered, run, wanted)
        self._numbered_up_to = numbers[-1]
        return numbers

    def _execute(
        self, statement: sql.Composed, run: _Run, wanted: Sequence[int | None]
    ) -> list[int]:
        event_ids = run.event_ids
        rows = self._connection.execute(
            statement,
            {
                "sequence": self._sequence,
                "numbers": wanted,
                "event_ids": event_ids,
                "event_types": run.event_types,
                "routes": run.routes,
                "payloads": run.payloads,
            },
        ).fetchall()
        for event_id, (number, inserted) in zip(event_ids, rows, strict=True):
            if not inserted:
                raise duplicate_event_id(event_id, number)
        return [number for number, _inserted in rows]

    def _advance_sequence(self) -> None:
        if self._numbered_up_to:
            self._connection.execute(
                "SELECT setval(%s::regclass, %s)",
                [self._sequence, self._numbered_up_to],
            )
            self._numbered_up_to = 0


def _woken(connection: _Connection, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for one notification, then take every
    one already arrived, so that the next wait reports only later appends."""
    deadline = time.monotonic() + timeout
    remaining = max(timeout, 0.0)
    while not list(connection.notifies(timeout=remaining, stop_after=1)):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
    list(connection.notifies(timeout=0.0))
    return True


def _roll_back(connection: _Connection) -> None:
    if connection.closed:
        return
    try:
        connection.rollback()
    except psycopg.Error as error:
        logger.warning("rollback failed: %s", _describe(error))


def _restore_autocommit(connection: _Connection) -> None:
    if connection.closed:
        return
    if connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        connection.autocommit = True


def _log_retry(action: str, shown: str, state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    logger.warning(
        "could not %s in PostgreSQL %s (attempt %s), reconnecting: %s",
        action,
        shown,
        state.attempt_number,
        _describe(error),
    )


def _describe(error: BaseException | None) -> str:
    """The error on one line (libpq adds hints on lines of their own)."""
    return " ".join(str(error).split()) or type(error).__name__


def _key(option: str) -> str:
    return unquote_plus(option.partition("=")[0])


def _value(option: str) -> str:
    return unquote_plus(option.partition("=")[2])


def _table_name(tables: list[str], shown: str) -> str:
    if not tables:
        return DEFAULT_TABLE
    if len(tables) > 1:
        raise ConfigurationError(f"{shown!r} names more than one table")
    table = tables[0]
    if not _TABLE_NAME.fullmatch(table):
        raise ConfigurationError(
            f"table name {table!r} in {shown!r} is not usable: use lower-case "
            "letters, digits and underscores, starting with a letter or an "
            "underscore, at most 48 characters"
        )
    return table


def _scrubbed(message: str, url: str, shown: str) -> str:
    """``message`` on one line, with ``url`` and any password in it hidden."""
    for secret in _passwords(url):
        message = message.replace(secret, "***")
    return " ".join(message.replace(url, shown).split())


def _passwords(url: str) -> list[str]:
    # The user part's password as written, and any password=… option.
    rest = url.partition("://")[2]
    user_info = rest.rpartition("@")[0] if "@" in rest else ""
    found = [user_info.partition(":")[2]] if ":" in user_info else []
    query = url.partition("?")[2]
    found += [_value(item) for item in query.split("&") if _key(item) == "password"]
    return sorted((secret for secret in found if secret), key=len, reverse=True)


def _without_password(url: str) -> str:
    """``url`` with any password removed, from the user part and the query."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    authority_end = min(
        (index for index in (rest.find("/"), rest.find("?")) if index >= 0),
        default=len(rest),
    )
    authority, tail = rest[:authority_end], rest[authority_end:]
    if "@" in authority:
        user_info, host = authority.rsplit("@", 1)
        user = user_info.partition(":")[0]
        authority = f"{user}@{host}" if user else host
    path, mark, query = tail.partition("?")
    kept = [item for item in query.split("&") if item and _key(item) != "password"]
    shown_query = f"?{'&'.join(kept)}" if mark and kept else ""
    return f"{scheme}://{authority}{path}{shown_query}"
