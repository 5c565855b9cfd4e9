"""Who may still commit into a PostgreSQL log: the writers open right now."""

from __future__ import annotations

from typing import Any

from psycopg.rows import tuple_row

from engine import OpenWriter

# A writer locks the table before it inserts, and the number sequence when
# it draws a number ahead of its insert; either lock lasts until its
# transaction ends. Readers only ever take ACCESS SHARE.
_OPEN_WRITERS = (
    "SELECT max(now() - a.xact_start),"
    " bool_or(a.state = 'active')"
    " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'relation'"
    " AND l.database = (SELECT oid FROM pg_database"
    " WHERE datname = current_database())"
    " AND l.relation IN (%(table)s::regclass, %(sequence)s::regclass)"
    " AND l.mode <> 'AccessShareLock'"
    " AND l.pid <> pg_backend_pid()"
    " AND a.xact_start IS NOT NULL"
    " GROUP BY a.pid"
)


def open_writers(connection: Any, table: str, sequence: str | None) -> list[OpenWriter]:
    """The sessions other than ``connection``'s own that hold a write lock
    on ``table`` or on its number ``sequence`` (both names as SQL would
    read them, e.g. quoted and schema-qualified)."""
    with connection.cursor(row_factory=tuple_row) as cursor:
        cursor.execute(_OPEN_WRITERS, {"table": table, "sequence": sequence})
        return [OpenWriter(open_for, bool(busy)) for open_for, busy in cursor]
