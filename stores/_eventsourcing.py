"""A read-only event store over a log written by the ``eventsourcing`` library.

Teams that already keep their events with the Python ``eventsourcing``
library (its SQLite or PostgreSQL application recorder) can project that log
as it is. The library's own recorder reads the notifications; each one
becomes exactly one row, numbered by its notification id:

* a topic named in the :class:`TopicMapping` becomes that event type, its
  fields taken from the event's state (renamed where the mapping says so)
  and validated like any imported event; ``event_id`` is
  ``"{originator_id}:{originator_version}"`` and ``created_at`` the event's
  ``timestamp``;
* any other topic becomes an :data:`UNMAPPED` event with no user, which no
  projection handles: no read model changes, but the position moves past it.

States are decoded with the library's ``JSONTranscoder`` and the
transcodings every ``Application`` registers (UUID, Decimal, datetime), and
an optional zlib compressor. Encrypted states and custom transcodings cannot
be read: a mapped event whose state cannot be decoded raises
:class:`engine.InvalidEventError`.

Importing this module without the library raises
:class:`engine.ConfigurationError` saying how to install it.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit
from uuid import UUID

from engine import (
    AppendResult,
    ConfigurationError,
    Event,
    EventStoreError,
    InvalidEventError,
    OpenWriter,
    StoredRow,
    encode_event,
    route_of,
    validate_event,
)

from ._watch import HeadPoll

INSTALL_HINT = "pip install 'projectionist[eventsourcing]'"

try:
    from eventsourcing.persistence import (
        ApplicationRecorder,
        Compressor,
        DatetimeAsISO,
        DecimalAsStr,
        InfrastructureFactory,
        JSONTranscoder,
        Notification,
        PersistenceError,
        Transcoder,
        UUIDAsHex,
    )
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteFactory
    from eventsourcing.utils import Environment
except ImportError as missing:
    raise ConfigurationError(
        "reading a log of the eventsourcing library needs that library "
        f"({missing}); install it with {INSTALL_HINT}"
    ) from missing

logger = logging.getLogger(__name__)

UNMAPPED = "EventsourcingUnmapped"
"""The event type of a notification whose topic the mapping does not name."""

TOPICS_ENVIRONMENT = "PROJECTIONIST_EVENTSOURCING_TOPICS"
"""The environment variable naming the mapping file when a URL has no
``topics`` option."""

DEFAULT_TABLE = "stored_events"
CONNECT_TIMEOUT_SECONDS = 5
COMPRESSORS = {"zlib": "eventsourcing.compressor:ZlibCompressor"}
ORIGINATOR_ID_TYPES = ("uuid", "text")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TIMESTAMP = "timestamp"
_NOT_DATA = frozenset({_TIMESTAMP, "class_version"})
_ORIGINATOR_ID = "originator_id"
_COMMON_OPTIONS = ("topics", "compressor", "originator_id_type", "table")
_SQLITE_OPTIONS = frozenset(_COMMON_OPTIONS)
_POSTGRES_OPTIONS = frozenset((*_COMMON_OPTIONS, "app", "schema"))
_SCHEMES = (
    "eventsourcing+sqlite:///path.db, "
    "eventsourcing+postgresql://user@host:port/db?app=NAME"
)


@dataclass(frozen=True)
class TopicMapping:
    """Which topics become which event types, and which state attributes
    are renamed to which event fields.

    ``fields`` applies to every mapped topic; its source may also be
    ``"originator_id"``, the aggregate's id, which is not in the state.
    """

    topics: Mapping[str, str]
    fields: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_names(self.topics, "topics", "topic", "event type")
        _check_names(self.fields, "fields", "attribute", "field")
        if _TIMESTAMP in self.fields:
            raise ConfigurationError(
                "fields: 'timestamp' is always the event's created_at; "
                "it cannot be renamed"
            )
        targets = list(self.fields.values())
        doubled = sorted({name for name in targets if targets.count(name) > 1})
        if doubled:
            raise ConfigurationError(
                f"fields: more than one attribute is renamed to {doubled[0]!r}"
            )

    @classmethod
    def from_json(cls, raw: object) -> TopicMapping:
        """The mapping in ``{"topics": {...}, "fields": {...}}``."""
        if not isinstance(raw, dict):
            raise ConfigurationError('must be a JSON object with a "topics" object')
        unknown = sorted(set(raw) - {"topics", "fields"})
        if unknown:
            raise ConfigurationError(
                f'unknown key {unknown[0]!r}; only "topics" and "fields" are read'
            )
        if "topics" not in raw:
            raise ConfigurationError('has no "topics" object')
        return cls(raw["topics"], raw.get("fields", {}))

    @classmethod
    def load(cls, path: str | Path) -> TopicMapping:
        """Read a mapping file; :class:`engine.ConfigurationError` names the
        file and what is wrong with it."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            reason = error.strerror or str(error)
            raise ConfigurationError(
                f"cannot read the topic mapping file {str(path)!r}: {reason}"
            ) from None
        try:
            return cls.from_json(json.loads(text))
        except ValueError as error:
            raise ConfigurationError(
                f"topic mapping file {str(path)!r} is not valid JSON: {error}"
            ) from None
        except ConfigurationError as error:
            raise ConfigurationError(
                f"topic mapping file {str(path)!r}: {error}"
            ) from None


def _check_names(names: object, where: str, source: str, target: str) -> None:
    if not isinstance(names, Mapping):
        raise ConfigurationError(f"{where} must be an object of {source}: {target}")
    for key, value in names.items():
        for kind, text in ((source, key), (target, value)):
            if not isinstance(text, str) or not text.strip():
                raise ConfigurationError(
                    f"{where}: every {kind} must be a non-blank string, not {text!r}"
                )


class EventsourcingEventStore:
    """The notifications of an ``eventsourcing`` application recorder as a
    read-only :class:`engine.EventStore`.

    Build one with :meth:`sqlite`, :meth:`postgresql` or
    :func:`open_eventsourcing_store`. Rows are made when read: the route and
    payload of each notification are computed from its state every time.
    """

    def __init__(
        self,
        recorder: ApplicationRecorder,
        mapping: TopicMapping,
        *,
        transcoder: Transcoder,
        compressor: Compressor | None = None,
        gaps_may_fill: bool = False,
        open_writers: Callable[[], list[OpenWriter]] | None = None,
        listen: Callable[[], Any] | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.recorder = recorder
        self.mapping = mapping
        self._transcoder = transcoder
        self._compressor = compressor
        self._gaps_may_fill = gaps_may_fill
        self._open_writers = open_writers
        self._watch: HeadPoll | PostgresWake = (
            HeadPoll(self.head) if listen is None else PostgresWake(listen, self.head)
        )
        self._on_close = on_close

    @classmethod
    def sqlite(
        cls,
        path: str | Path,
        mapping: TopicMapping,
        *,
        table: str = DEFAULT_TABLE,
        originator_id_type: str = "uuid",
        compressor: str | None = None,
    ) -> EventsourcingEventStore:
        """The log in the SQLite file at ``path``, opened read-only."""
        if not _IDENTIFIER.match(table):
            raise ConfigurationError(
                f"table must be a plain SQL name (letters, digits, _), not {table!r}"
            )
        file = Path(path)
        if not file.is_file():
            raise ConfigurationError(
                f"no eventsourcing SQLite log at {str(path)!r}: the file does not exist"
            )
        factory = SQLiteFactory(
            _environment(
                "",
                compressor,
                originator_id_type,
                SQLITE_DBNAME=file.resolve().as_uri() + "?mode=ro",
            )
        )
        recorder = SQLiteApplicationRecorder(factory.datastore, events_table_name=table)
        store = cls.from_factory(factory, recorder, mapping, gaps_may_fill=False)
        store._check_table(f"table {table!r} of SQLite file {str(path)!r}")
        return store

    @classmethod
    def postgresql(
        cls,
        mapping: TopicMapping,
        *,
        dbname: str,
        host: str = "",
        port: int = 5432,
        user: str = "",
        password: str = "",
        app: str = "",
        table: str = "",
        schema: str = "",
        originator_id_type: str = "uuid",
        compressor: str | None = None,
    ) -> EventsourcingEventStore:
        """The log of application ``app`` (table ``{app}_events``, as the
        library names it) or of ``table``, in a PostgreSQL database."""
        from ._eventsourcing_postgres import connect_to_postgres

        address = {
            "dbname": dbname,
            "host": host,
            "port": port,
            "user": user,
            "password": password,
        }
        environment = _environment(
            app,
            compressor,
            originator_id_type,
            POSTGRES_DBNAME=dbname,
            POSTGRES_HOST=host,
            POSTGRES_PORT=str(port),
            POSTGRES_USER=user,
            POSTGRES_PASSWORD=password,
            POSTGRES_SCHEMA=schema,
            POSTGRES_POOL_SIZE="1",
            POSTGRES_MAX_OVERFLOW="2",
            POSTGRES_CONNECT_TIMEOUT=str(CONNECT_TIMEOUT_SECONDS),
        )
        return connect_to_postgres(cls, mapping, environment, address, table)

    @classmethod
    def from_factory(
        cls,
        factory: InfrastructureFactory[Any],
        recorder: ApplicationRecorder,
        mapping: TopicMapping,
        *,
        gaps_may_fill: bool,
        open_writers: Callable[[], list[OpenWriter]] | None = None,
        listen: Callable[[], Any] | None = None,
    ) -> EventsourcingEventStore:
        """A store over ``recorder``, decoding states with the transcoder and
        compressor that the library's ``factory`` is configured with;
        ``open_writers`` lists the writers' transactions open now, and
        ``listen`` opens a connection that is notified of appends."""
        transcoder = factory.transcoder()
        if isinstance(transcoder, JSONTranscoder):
            # The transcodings every eventsourcing Application registers.
            for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
                transcoder.register(transcoding)
        return cls(
            recorder,
            mapping,
            transcoder=transcoder,
            compressor=factory.compressor(),
            gaps_may_fill=gaps_may_fill,
            open_writers=open_writers,
            listen=listen,
            on_close=factory.close,
        )

    def _check_table(self, what: str) -> None:
        try:
            self.head()
        except EventStoreError as error:
            self.close()
            raise ConfigurationError(
                f"cannot read the eventsourcing log in {what}: {error.__cause__}"
            ) from None

    # the EventStore protocol

    def append(self, events: Iterable[Event]) -> AppendResult:
        """Refused: the eventsourcing application writes this log."""
        raise EventStoreError(
            "an eventsourcing log is read-only here: its application writes "
            "it; record events through that application instead"
        )

    def read_after(self, after: int, limit: int) -> list[StoredRow]:
        """Up to ``limit`` rows numbered above ``after``, in order, one per
        notification; raises :class:`engine.InvalidEventError` for a mapped
        event whose state does not validate."""
        rows = []
        for notification in self._select(after, limit):
            event = self._event(notification)
            payload = encode_event(event)
            rows.append(StoredRow(notification.id, route_of(event.user_id), payload))
        return rows

    def read_events_after(self, after: int, limit: int) -> list[Event]:
        """Like :meth:`read_after`, as events."""
        return [self._event(n) for n in self._select(after, limit)]

    def head(self) -> int:
        """The recorder's greatest notification id, or 0 for an empty log."""
        with _translated("read the greatest notification id"):
            return self.recorder.max_notification_id() or 0

    @property
    def gaps_may_fill(self) -> bool:
        """``True`` on PostgreSQL, whose notification ids come from a
        sequence; ``False`` on SQLite, whose writers commit in order."""
        return self._gaps_may_fill

    def open_writers(self) -> list[OpenWriter] | None:
        """The writers' transactions open now that may still commit
        notifications: on PostgreSQL, the sessions holding more than a read
        lock on the events table or its id sequence; on SQLite none, since
        its gaps never fill. ``None`` when a PostgreSQL store cannot tell."""
        if self._open_writers is None:
            return None if self._gaps_may_fill else []
        with _translated("look for open writers"):
            return self._open_writers()

    def listen(self) -> None:
        """Start noting appends (the PostgreSQL recorder's NOTIFY, else the
        head), so that :meth:`wait_for_append` misses none."""
        self._watch.listen()

    def wait_for_append(self, timeout: float) -> bool:
        """Block until an append may have committed since :meth:`listen` or
        the previous wait, or ``timeout`` seconds have passed."""
        return self._watch.wait(timeout)

    def close(self) -> None:
        """Release the recorder's connections."""
        if isinstance(self._watch, PostgresWake):
            self._watch.close()
        if self._on_close is not None:
            self._on_close()
            self._on_close = None

    # notifications into events

    def _select(self, after: int, limit: int) -> list[Notification]:
        if limit <= 0:
            return []
        with _translated("read notifications"):
            # ``start`` is inclusive in every version of the library.
            return list(self.recorder.select_notifications(after + 1, limit))

    def _event(self, notification: Notification) -> Event:
        event_type = self.mapping.topics.get(notification.topic)
        if event_type is None:
            return self._unmapped(notification)
        where = _where(notification)
        try:
            state = self._decode(notification)
            raw = {
                "sequence_number": notification.id,
                "event_id": _event_id(notification),
                "event_type": event_type,
                "created_at": state.get(_TIMESTAMP),
                "data": self._data(notification, state),
            }
            return validate_event(raw)
        except InvalidEventError as error:
            raise error.located(where) from None

    def _unmapped(self, notification: Notification) -> Event:
        return Event(
            notification.id,
            _event_id(notification),
            UNMAPPED,
            self._timestamp_or_epoch(notification),
            {"topic": notification.topic},
        )

    def _timestamp_or_epoch(self, notification: Notification) -> datetime:
        # An unmapped state need not be readable: its time is only shown.
        try:
            moment = self._decode(notification).get(_TIMESTAMP)
        except InvalidEventError:
            return _EPOCH
        if isinstance(moment, datetime) and moment.tzinfo is not None:
            return moment.astimezone(UTC)
        return _EPOCH

    def _decode(self, notification: Notification) -> dict[str, Any]:
        try:
            state = notification.state
            if self._compressor is not None:
                state = self._compressor.decompress(state)
            decoded = self._transcoder.decode(state)
        except Exception as error:
            # Transcoders and compressors raise many kinds of error.
            raise InvalidEventError(
                f"its state could not be decoded: {type(error).__name__}: {error}"
            ) from None
        if not isinstance(decoded, dict):
            raise InvalidEventError("its state is not an object")
        return decoded

    def _data(self, notification: Notification, state: dict[str, Any]) -> Any:
        fields = self.mapping.fields
        data: dict[str, Any] = {}
        if _ORIGINATOR_ID in fields:
            data[fields[_ORIGINATOR_ID]] = str(notification.originator_id)
        for name, value in state.items():
            if name in _NOT_DATA:
                continue
            target = fields.get(name, name)
            if target in data:
                raise InvalidEventError(
                    f"is given twice, once by attribute {name!r}",
                    field=f"data.{target}",
                )
            data[target] = _plain(value, f"data.{target}")
        return data


def _where(notification: Notification) -> str:
    return (
        f"sequence number {notification.id} (eventsourcing notification "
        f"{notification.id}, topic {notification.topic!r})"
    )


def _event_id(notification: Notification) -> str:
    return f"{notification.originator_id}:{notification.originator_version}"


def _plain(value: object, where: str) -> object:
    """``value`` with UUIDs as strings; anything the codec cannot keep
    exactly is refused (floats are left for validation to refuse)."""
    if value is None or isinstance(value, str | int | float | Decimal):
        return value
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidEventError("is a time without a time zone", field=where)
        return value
    if isinstance(value, dict):
        return {key: _plain(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise InvalidEventError(
        f"is a {type(value).__name__}, which cannot be kept exactly", field=where
    )


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """Turn the library's and the databases' errors into EventStoreError."""
    try:
        yield
    except PersistenceError as error:
        raise EventStoreError(
            f"could not {action} of the eventsourcing log: {error}"
        ) from error
    except ValueError as error:
        # The SQLite recorder reads every originator id as a UUID by default.
        raise EventStoreError(
            f"could not {action} of the eventsourcing log: {error}; if its "
            "originator ids are not UUIDs, add originator_id_type=text"
        ) from error


def _environment(
    name: str, compressor: str | None, originator_id_type: str, **settings: str
) -> Environment:
    """The library's own configuration for a recorder that only reads."""
    if originator_id_type not in ORIGINATOR_ID_TYPES:
        raise ConfigurationError(
            f"originator_id_type must be one of {', '.join(ORIGINATOR_ID_TYPES)}, "
            f"not {originator_id_type!r}"
        )
    env = {**settings, "CREATE_TABLE": "no", "ORIGINATOR_ID_TYPE": originator_id_type}
    if compressor is not None:
        if compressor not in COMPRESSORS:
            raise ConfigurationError(
                f"compressor must be one of {', '.join(COMPRESSORS)}, "
                f"not {compressor!r}"
            )
        env["COMPRESSOR_TOPIC"] = COMPRESSORS[compressor]
    return Environment(name=name, env=env)


class PostgresWake:
    """Wakes on the NOTIFY that the library's PostgreSQL recorder sends with
    every insert, and reads the head as each wait ends, so a writer that
    does not notify is still seen.

    ``connect`` opens a connection already listening on the recorder's
    channel; when it cannot, the head is polled instead.
    """

    def __init__(self, connect: Callable[[], Any], head: Callable[[], int]) -> None:
        self._connect = connect
        self._poll = HeadPoll(head)
        self._connection: Any = None

    def listen(self) -> None:
        """Start listening (once) and remember the head."""
        if self._connection is None:
            self._connection = self._connect_listening()
        self._poll.listen()

    def wait(self, timeout: float) -> bool:
        """``True`` when a notification arrived or the head grew."""
        if self._connection is None:
            return self._poll.wait(timeout)
        try:
            woken = any(True for _ in self._connection.notifies(timeout=timeout))
        except Exception as error:
            # A broken connection: poll from now on, and make the caller re-read.
            logger.warning("stopped listening for appends: %s", error)
            self.close()
            return True
        grew = self._poll.wait(0)
        return woken or grew

    def close(self) -> None:
        """Close the listening connection."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _connect_listening(self) -> Any:
        try:
            return self._connect()
        except Exception as error:
            logger.warning("cannot listen for appends (%s); polling instead", error)
            return None


def open_eventsourcing_store(url: str) -> EventsourcingEventStore:
    """The eventsourcing log named by ``url``:

    * ``eventsourcing+sqlite:///relative.db`` or ``…:////absolute.db``;
    * ``eventsourcing+postgresql://user[:password]@host[:port]/db``.

    Options: ``topics=PATH.json`` (else the file named by
    ``PROJECTIONIST_EVENTSOURCING_TOPICS``), ``table=NAME``,
    ``compressor=zlib``, ``originator_id_type=uuid|text``; on PostgreSQL
    also ``app=NAME`` (the table is then ``{name}_events``, as the library
    names it) and ``schema=NAME``.
    """
    parts = _split(url)
    backend = parts.scheme.lower().removeprefix("eventsourcing+")
    if backend == "sqlite":
        options = _options(url, parts.query, _SQLITE_OPTIONS)
        return EventsourcingEventStore.sqlite(
            _sqlite_path(url, parts),
            _mapping(url, options.get("topics")),
            table=options.get("table", DEFAULT_TABLE),
            originator_id_type=options.get("originator_id_type", "uuid"),
            compressor=options.get("compressor"),
        )
    if backend in ("postgresql", "postgres"):
        options = _options(url, parts.query, _POSTGRES_OPTIONS)
        return EventsourcingEventStore.postgresql(
            _mapping(url, options.get("topics")),
            **_postgres_address(url, parts),
            app=options.get("app", ""),
            table=options.get("table", ""),
            schema=options.get("schema", ""),
            originator_id_type=options.get("originator_id_type", "uuid"),
            compressor=options.get("compressor"),
        )
    raise ConfigurationError(
        f"unknown eventsourcing log scheme {parts.scheme!r}; use {_SCHEMES}"
    )


def _shown(url: str) -> str:
    """``url`` quoted, its password (if any) hidden."""
    return repr(_PASSWORD.sub(r"\1***@", url))


_PASSWORD = re.compile(r"(://[^:/@]*:)[^@/]*@")


def _split(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is what raises
    except ValueError as error:
        raise ConfigurationError(f"{_shown(url)} is not a valid URL: {error}") from None
    if parts.fragment:
        raise ConfigurationError(f"{_shown(url)}: a store URL has no '#' part")
    return parts


def _options(url: str, query: str, allowed: frozenset[str]) -> dict[str, str]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ConfigurationError(
            f"{_shown(url)}: its options are not of the form name=value&name=value"
        ) from None
    options: dict[str, str] = {}
    for name, value in pairs:
        if name not in allowed:
            raise ConfigurationError(
                f"{_shown(url)}: unknown option {name!r}; "
                f"use {', '.join(sorted(allowed))}"
            )
        if name in options:
            raise ConfigurationError(f"{_shown(url)}: option {name!r} is given twice")
        if not value.strip():
            raise ConfigurationError(f"{_shown(url)}: option {name!r} is empty")
        options[name] = value
    return options


def _mapping(url: str, path: str | None) -> TopicMapping:
    path = path or os.environ.get(TOPICS_ENVIRONMENT, "").strip() or None
    if path is None:
        raise ConfigurationError(
            f"{_shown(url)} needs a topic mapping: add ?topics=PATH.json or set "
            f"{TOPICS_ENVIRONMENT}=PATH.json"
        )
    return TopicMapping.load(path)


def _sqlite_path(url: str, parts: SplitResult) -> str:
    path = parts.path[1:] if parts.path.startswith("/") else ""
    if parts.netloc or not path:
        raise ConfigurationError(
            f"{_shown(url)} does not name a SQLite file; write "
            "eventsourcing+sqlite:///relative.db or "
            "eventsourcing+sqlite:////absolute/path.db"
        )
    return path


def _postgres_address(url: str, parts: SplitResult) -> dict[str, Any]:
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname or "/" in dbname:
        raise ConfigurationError(
            f"{_shown(url)} does not name a database; write "
            "eventsourcing+postgresql://user@host:port/database"
        )
    password = unquote(parts.password or "")
    return {
        "dbname": dbname,
        "host": parts.hostname or "",
        "port": parts.port or 5432,
        "user": unquote(parts.username or ""),
        # libpq reads PGPASSWORD only when no password is given at all.
        "password": password or os.environ.get("PGPASSWORD", ""),
    }
