"""What the PostgreSQL tests do to the server behind the engine's back."""

from __future__ import annotations

import psycopg

from engine import Event, encode_event, route_of


def table_of(url: str) -> str:
    """The ``table`` option of an event store URL."""
    return url.rpartition("table=")[2]


def insert_raw(connection: psycopg.Connection, table: str, event: Event) -> int:
    """Insert one event as another program would, inside the connection's
    open transaction, numbered by the table; the number it got."""
    row = connection.execute(
        f"INSERT INTO {table} (event_id, event_type, route, payload)"
        " VALUES (%s, %s, %s, %s) RETURNING sequence_number",
        (
            event.event_id,
            event.event_type,
            route_of(event.user_id),
            encode_event(event),
        ),
    ).fetchone()
    assert row is not None
    return int(row[0])


def terminate_backends(dsn: str, database: str) -> int:
    """End every other connection to ``database``, as a server restart or a
    network cut would; how many were ended."""
    with psycopg.connect(dsn, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchone()
    assert row is not None
    return int(row[0])
