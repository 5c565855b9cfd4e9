"""The PostgreSQL side of the eventsourcing log adapter.

The library's ``PostgresFactory`` builds the recorder (so the table is named
as the writing application names it); a first connection checks that the
server answers and the table exists, before the recorder's pool would retry
for a long while; a connection of its own LISTENs on the recorder's channel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from engine import ConfigurationError, EventStoreError, OpenWriter

from ._eventsourcing import CONNECT_TIMEOUT_SECONDS, INSTALL_HINT, TopicMapping
from ._pg_writers import open_writers

if TYPE_CHECKING:
    from ._eventsourcing import EventsourcingEventStore

try:
    import psycopg
    from eventsourcing.persistence import PersistenceError
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresFactory
    from eventsourcing.utils import Environment
    from psycopg import sql
except ImportError as missing:
    raise ConfigurationError(
        "reading an eventsourcing log in PostgreSQL needs psycopg and its pool "
        f"({missing}); install them with {INSTALL_HINT}"
    ) from missing


def connect_to_postgres(
    store: type[EventsourcingEventStore],
    mapping: TopicMapping,
    environment: Environment,
    address: dict[str, Any],
    table: str,
) -> EventsourcingEventStore:
    """An eventsourcing store over the recorder ``environment`` configures,
    at ``address`` (dbname, host, port, user, password); ``table``, when
    given, overrides the table the application's name implies."""
    where = f"PostgreSQL database {address['dbname']!r} at {_host(address)}"
    with _probe(address, where) as probe:
        factory = PostgresFactory(environment)
        try:
            recorder = _recorder(factory, table, where)
            name = _check_table(probe, factory.datastore.schema, recorder, where)
        except BaseException:
            factory.close()
            raise
    return store.from_factory(
        factory,
        recorder,
        mapping,
        gaps_may_fill=True,
        open_writers=_writers(recorder, name),
        listen=_listener(address, recorder.channel_name),
    )


def _connect(address: dict[str, Any]) -> psycopg.Connection[Any]:
    return psycopg.connect(
        **address, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS
    )


@contextmanager
def _probe(address: dict[str, Any], where: str) -> Iterator[psycopg.Connection[Any]]:
    # Fails at once where the recorder's pool would wait and retry.
    try:
        connection = _connect(address)
    except psycopg.Error as error:
        raise EventStoreError(
            f"cannot read the eventsourcing log in {where}: {error}"
        ) from error
    with connection:
        yield connection


def _recorder(
    factory: PostgresFactory, table: str, where: str
) -> PostgresApplicationRecorder:
    try:
        if table:
            return PostgresApplicationRecorder(
                factory.datastore, events_table_name=table
            )
        recorder = factory.application_recorder()
    except PersistenceError as error:
        raise EventStoreError(
            f"cannot read the eventsourcing log in {where}: {error}"
        ) from error
    assert isinstance(recorder, PostgresApplicationRecorder)
    return recorder


def _check_table(
    probe: psycopg.Connection[Any],
    schema: str,
    recorder: PostgresApplicationRecorder,
    where: str,
) -> str:
    """The table's quoted name; ConfigurationError when there is none."""
    table = recorder.events_table_name
    name = sql.Identifier(schema, table).as_string(probe)
    row = probe.execute("SELECT to_regclass(%s)", (name,)).fetchone()
    if row is None or row[0] is None:
        raise ConfigurationError(
            f"no table {schema}.{table} in {where}; the library names it "
            "after the application (app=NAME reads NAME_events), or name it "
            "with table=NAME"
        )
    return name


def _writers(
    recorder: PostgresApplicationRecorder, table: str
) -> Callable[[], list[OpenWriter]]:
    # The recorder's inserts lock the table (EXCLUSIVE, and ROW EXCLUSIVE for
    # the insert itself) before they draw notification ids and until they end.
    def writers() -> list[OpenWriter]:
        with recorder.datastore.get_connection() as connection:
            row = connection.execute(
                "SELECT pg_get_serial_sequence(%s, 'notification_id') AS name",
                (table,),
            ).fetchone()
            sequence = row["name"] if row else None
            return open_writers(connection, table, sequence)

    return writers


def _host(address: dict[str, Any]) -> str:
    return f"{address['host'] or 'the local socket'}:{address['port']}"


def _listener(address: dict[str, Any], channel: str) -> Callable[[], Any]:
    def listening() -> psycopg.Connection[Any]:
        connection = _connect(address)
        try:
            connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        except BaseException:
            connection.close()
            raise
        return connection

    return listening
