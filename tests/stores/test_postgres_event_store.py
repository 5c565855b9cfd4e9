"""What the PostgreSQL event store does beyond the shared contract: its
schema, concurrent writers, numbers that commit out of order, the LISTEN/
NOTIFY wake-up, and reconnecting after a lost connection."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import sql

import stores._postgres as postgres_module
from engine import (
    ConfigurationError,
    Event,
    EventStoreError,
    InvalidEventError,
    encode_event,
    route_of,
)
from stores import PostgresEventStore, open_event_store
from stores._postgres import parse_postgres_url

pytestmark = pytest.mark.postgres

MOMENT = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
_WAIT_S = 10.0


def credited(number: int = 0, *, event_id: str | None = None) -> Event:
    data = {"user_id": "u1", "currency": "USD", "amount": Decimal("10.00")}
    event_id = event_id or f"e-{secrets.token_hex(8)}"
    return Event(number, event_id, "WalletCredited", MOMENT, data)


@dataclass(frozen=True)
class Log:
    """One test's events table: the store URL, and what raw connections need."""

    url: str
    table: str
    database: str
    application: str
    admin_url: str

    def raw(self, autocommit: bool = False) -> psycopg.Connection[Any]:
        """A connection of another program, outside the store."""
        return psycopg.connect(
            self.admin_url, autocommit=autocommit, application_name="other-program"
        )

    def insert(self, connection: psycopg.Connection[Any], event_id: str) -> int:
        """Insert one event as another program would, numbered by the table."""
        event = credited(event_id=event_id)
        row = connection.execute(
            sql.SQL(
                "INSERT INTO {} (event_id, event_type, route, payload)"
                " VALUES (%s, %s, %s, %s) RETURNING sequence_number"
            ).format(sql.Identifier(self.table)),
            [event_id, event.event_type, route_of(event.user_id), encode_event(event)],
        ).fetchone()
        assert row is not None
        return int(row[0])

    def count(self) -> int:
        with self.raw(autocommit=True) as connection:
            query = sql.SQL("SELECT COUNT(*) FROM {}").format(
                sql.Identifier(self.table)
            )
            row = connection.execute(query).fetchone()
        assert row is not None
        return int(row[0])

    def terminate_store_connections(self) -> int:
        """End every backend the store opened, as a server restart would."""
        with self.raw(autocommit=True) as admin:
            rows = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND application_name = %s",
                [self.database, self.application],
            ).fetchall()
            _wait_until(lambda: not self._backends(admin))
        return len(rows)

    def _backends(self, admin: psycopg.Connection[Any]) -> list[Any]:
        return admin.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = %s AND application_name = %s",
            [self.database, self.application],
        ).fetchall()


@pytest.fixture
def log(postgres_url: str) -> Log:
    table = f"events_{secrets.token_hex(6)}"
    application = f"projectionist_{secrets.token_hex(4)}"
    separator = "&" if "?" in postgres_url else "?"
    url = f"{postgres_url}{separator}table={table}&application_name={application}"
    database = postgres_url.rsplit("/", 1)[1].partition("?")[0]
    return Log(url, table, database, application, postgres_url)


@pytest.fixture
def store(log: Log) -> Iterator[PostgresEventStore]:
    opened = PostgresEventStore(log.url)
    yield opened
    opened.close()


def numbers(store: PostgresEventStore) -> list[int]:
    return [row.sequence_number for row in store.read_after(0, 100_000)]


def _wait_until(condition: Callable[[], bool], seconds: float = _WAIT_S) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_a_postgresql_url_opens_the_store_on_its_table(log: Log) -> None:
    store = open_event_store(log.url.replace("postgresql://", "postgres://", 1))

    assert isinstance(store, PostgresEventStore)
    assert store.table == log.table
    assert store.channel == f"{log.table}_appended"
    assert store.append([credited()]).first == 1
    store.close()


def test_several_openers_at_once_create_the_table_its_trigger_once(log: Log) -> None:
    barrier = threading.Barrier(4)
    opened: list[PostgresEventStore] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        barrier.wait()
        try:
            opened.append(PostgresEventStore(log.url))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    with log.raw(autocommit=True) as connection:
        columns = connection.execute(
            "SELECT column_name, data_type, is_identity FROM information_schema.columns"
            " WHERE table_name = %s ORDER BY ordinal_position",
            [log.table],
        ).fetchall()
        triggers = connection.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass(%s)"
            " AND NOT tgisinternal",
            [log.table],
        ).fetchall()
    assert columns == [
        ("sequence_number", "bigint", "YES"),
        ("event_id", "text", "NO"),
        ("event_type", "text", "NO"),
        ("route", "bigint", "NO"),
        ("payload", "bytea", "NO"),
    ]
    assert triggers == [(f"{log.table}_notify",)]
    for store in opened:
        store.close()


def test_concurrent_appends_from_several_connections_get_unique_numbers(
    log: Log,
) -> None:
    writers = [PostgresEventStore(log.url) for _ in range(4)]
    appended: dict[int, list[Event]] = {index: [] for index in range(len(writers))}
    results: list[Any] = []

    def write(index: int) -> None:
        for _ in range(20):
            batch = [credited() for _ in range(25)]
            results.append(writers[index].append(batch))
            appended[index].extend(batch)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(writers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    stored = writers[0].read_events_after(0, 10_000)
    stored_numbers = [event.sequence_number for event in stored]
    assert len(stored) == 4 * 20 * 25
    assert stored_numbers == sorted(set(stored_numbers))
    everything = {event.event_id for batch in appended.values() for event in batch}
    assert {event.event_id for event in stored} == everything
    assert all(result.count == 25 and result.first < result.last for result in results)
    for writer in writers:
        writer.close()


def test_a_rolled_back_insert_leaves_a_hole_its_number_is_never_reused(
    log: Log, store: PostgresEventStore
) -> None:
    store.append([credited()])
    with log.raw() as other:
        lost = log.insert(other, "rolled-back")
        other.rollback()

    result = store.append([credited()])

    assert lost == 2
    assert result.first == 3
    assert numbers(store) == [1, 3]


def test_an_open_insert_lets_a_later_number_become_visible_first(
    log: Log, store: PostgresEventStore
) -> None:
    store.append([credited()])
    with log.raw() as other:
        pending = log.insert(other, "slow-writer")
        result = store.append([credited()])

        assert (pending, result.first) == (2, 3)
        assert store.head() == 3
        assert numbers(store) == [1, 3]
        (writer,) = store.open_writers()
        assert writer.busy is False  # idle in its transaction
        assert store.gaps_may_fill is True

        other.commit()

    assert numbers(store) == [1, 2, 3]
    assert store.open_writers() == []


def test_a_number_reserved_ahead_of_its_insert_shows_its_writer(
    log: Log, store: PostgresEventStore
) -> None:
    """A writer that draws a number with nextval and inserts it later holds
    no lock on the table meanwhile, but one on its sequence."""
    store.append([credited()])
    with log.raw() as other:
        other.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'sequence_number'))",
            [log.table],
        )
        time.sleep(0.2)
        (writer,) = store.open_writers()
        assert writer.open_for >= timedelta(seconds=0.2)
        other.rollback()
    assert store.open_writers() == []


def test_an_explicit_number_is_checked_after_open_inserts_end(
    log: Log, store: PostgresEventStore
) -> None:
    """The table lock makes the check see a number drawn but not committed."""
    outcome: list[BaseException | Any] = []
    with log.raw() as other:
        pending = log.insert(other, "slow-writer")
        appending = threading.Thread(
            target=lambda: outcome.append(_attempt(store, [credited(pending)]))
        )
        appending.start()
        time.sleep(0.3)
        assert outcome == []
        other.commit()
    appending.join(_WAIT_S)

    assert isinstance(outcome[0], InvalidEventError)
    assert outcome[0].field == "sequence_number"
    assert store.append([credited(pending + 5)]).first == pending + 5
    assert store.append([credited()]).first == pending + 6


def _attempt(store: PostgresEventStore, events: list[Event]) -> Any:
    try:
        return store.append(events)
    except InvalidEventError as error:
        return error


def test_an_append_after_listen_wakes_the_next_wait(
    log: Log, store: PostgresEventStore
) -> None:
    writer = PostgresEventStore(log.url)
    store.listen()
    writer.append([credited()])

    assert store.wait_for_append(_WAIT_S) is True
    assert store.wait_for_append(0.05) is False
    writer.close()


def test_a_wait_with_no_append_times_out(store: PostgresEventStore) -> None:
    store.listen()
    started = time.monotonic()

    assert store.wait_for_append(0.3) is False
    assert time.monotonic() - started >= 0.3


def test_a_wait_without_listen_starts_listening(
    log: Log, store: PostgresEventStore
) -> None:
    assert store.wait_for_append(0.05) is True
    assert store.wait_for_append(0.05) is False
    with log.raw() as other:
        log.insert(other, "after-the-first-wait")
        other.commit()
    assert store.wait_for_append(_WAIT_S) is True


def test_an_insert_by_another_program_wakes_the_listener(
    log: Log, store: PostgresEventStore
) -> None:
    store.listen()
    with log.raw() as other:
        log.insert(other, "from-elsewhere")
        assert store.wait_for_append(0.2) is False
        other.commit()

    assert store.wait_for_append(_WAIT_S) is True
    assert [event.event_id for event in store.read_events_after(0, 10)] == [
        "from-elsewhere"
    ]


def test_reads_and_the_listener_survive_terminated_connections(
    log: Log, store: PostgresEventStore
) -> None:
    store.append([credited(), credited()])
    store.listen()

    assert log.terminate_store_connections() == 2

    assert numbers(store) == [1, 2]
    assert store.head() == 2
    assert store.wait_for_append(_WAIT_S) is True
    store.append([credited()])
    assert store.wait_for_append(_WAIT_S) is True
    assert store.wait_for_append(0.05) is False


def test_an_append_on_a_terminated_connection_is_made_once(
    log: Log, store: PostgresEventStore
) -> None:
    store.append([credited()])
    log.terminate_store_connections()

    result = store.append([credited(), credited()])

    assert (result.count, result.first) == (2, 2)
    assert log.count() == 3


@pytest.fixture
def lost_commit(monkeypatch: pytest.MonkeyPatch) -> Callable[[bool], None]:
    """Makes the next commit lose its reply: the connection drops after the
    commit reached the server (``True``) or before (``False``)."""

    def arm(committed: bool) -> None:
        real_commit = psycopg.Connection.commit

        def commit(connection: psycopg.Connection[Any]) -> None:
            monkeypatch.setattr(psycopg.Connection, "commit", real_commit)
            if committed:
                real_commit(connection)
            connection.close()
            raise psycopg.OperationalError("server closed the connection unexpectedly")

        monkeypatch.setattr(psycopg.Connection, "commit", commit)

    return arm


def test_an_append_whose_commit_reply_was_lost_is_not_made_twice(
    log: Log, store: PostgresEventStore, lost_commit: Callable[[bool], None]
) -> None:
    store.append([credited()])
    lost_commit(True)

    result = store.append([credited(), credited(), credited()])

    assert (result.count, result.first, result.last) == (3, 2, 4)
    assert log.count() == 4


def test_an_append_whose_commit_never_arrived_is_made_again(
    log: Log, store: PostgresEventStore, lost_commit: Callable[[bool], None]
) -> None:
    lost_commit(False)

    result = store.append([credited(), credited()])

    assert result.count == 2
    assert log.count() == 2


def test_a_large_append_cut_off_says_nothing_was_written(
    log: Log,
    store: PostgresEventStore,
    lost_commit: Callable[[bool], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(postgres_module, "_RUN_SIZE", 2)
    monkeypatch.setattr(postgres_module, "_KEEP_EVENTS", 3)
    lost_commit(False)

    with pytest.raises(EventStoreError, match="nothing was written"):
        store.append(credited() for _ in range(6))

    assert log.count() == 0


def test_a_duplicate_of_a_stored_event_id_names_it_and_writes_nothing(
    log: Log, store: PostgresEventStore
) -> None:
    store.append([credited(event_id="pay-1")])

    with pytest.raises(InvalidEventError, match="'pay-1'") as raised:
        store.append([credited(), credited(event_id="pay-1"), credited()])

    assert raised.value.field == "event_id"
    assert log.count() == 1


def test_a_nul_character_in_an_event_id_is_refused(store: PostgresEventStore) -> None:
    with pytest.raises(InvalidEventError, match="NUL") as raised:
        store.append([credited(event_id="a\x00b")])

    assert raised.value.field == "event_id"


def test_close_ends_both_connections(log: Log) -> None:
    store = PostgresEventStore(log.url)
    store.listen()
    store.close()

    with log.raw(autocommit=True) as admin:
        assert log._backends(admin) == []
    with pytest.raises(EventStoreError, match="closed"):
        store.head()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://127.0.0.1/db?table=Events", "not usable"),
        ("postgresql://127.0.0.1/db?table=bad-name", "not usable"),
        ("postgresql://127.0.0.1/db?table=", "not usable"),
        ("postgresql://127.0.0.1/db?table=1st", "not usable"),
        (f"postgresql://127.0.0.1/db?table={'x' * 49}", "not usable"),
        ("postgresql://127.0.0.1/db?table=a&table=b", "more than one table"),
        ("postgresql://127.0.0.1/db?no_such_option=1", "psycopg can use"),
    ],
)
def test_a_bad_url_or_table_name_is_a_configuration_error(
    url: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        open_event_store(url)


def test_the_url_shown_keeps_everything_but_the_password() -> None:
    target = parse_postgres_url(
        "postgres://ann:s3cret@db.example:6543/pay?password=s3cret&table=t1"
        "&sslmode=disable"
    )

    assert target.shown == "postgres://ann@db.example:6543/pay?table=t1&sslmode=disable"
    assert target.table == "t1"
    assert "table" not in target.conninfo
    assert "application_name=projectionist" in target.conninfo


def test_an_unreachable_server_names_the_host_but_not_the_password(
    free_loopback_port: int,
) -> None:
    url = f"postgresql://ann:s3cret@127.0.0.1:{free_loopback_port}/db"

    with pytest.raises(EventStoreError) as raised:
        PostgresEventStore(url, reconnect_attempts=2, reconnect_seconds=5.0)

    message = str(raised.value)
    assert f"127.0.0.1:{free_loopback_port}" in message
    assert "s3cret" not in message


def test_drop_removes_the_table_and_its_notify_function(log: Log) -> None:
    store = PostgresEventStore(log.url)
    store.append([credited()])
    store.drop()
    store.close()

    with psycopg.connect(log.admin_url) as connection:
        tables = connection.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename = %s", [log.table]
        ).fetchone()
        functions = connection.execute(
            "SELECT count(*) FROM pg_proc WHERE proname = %s", [f"{log.table}_notify"]
        ).fetchone()
    assert (tables, functions) == ((0,), (0,))


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://root:S3cretPW@[::1:5432/db",
        "postgresql://root:S3cretPW%ZZ@127.0.0.1:5432/db",
        "postgresql://root:S3cret PW@127.0.0.1:5432/db",
        "postgresql://root@127.0.0.1:5432/db?password=S3cretPW&sslmode=nonsense x",
    ],
)
def test_a_malformed_url_is_refused_without_showing_its_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        PostgresEventStore(url)

    message = str(refused.value)
    assert "S3cret" not in message
    assert "\n" not in message
    assert "not a PostgreSQL URL" in message
