"""The event store contract, run against every event store."""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine import AppendResult, Event, InvalidEventError, route_of
from stores import (
    EventStoreAdapter,
    MemoryEventStore,
    PostgresEventStore,
    SqliteEventStore,
)

MOMENT = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
_ids = itertools.count(1)


def credited(
    number: int = 0,
    *,
    user: str | None = "u1",
    event_id: str | None = None,
    amount: str = "10.00",
    created_at: datetime = MOMENT,
) -> Event:
    data: dict[str, Any] = {"currency": "USD", "amount": Decimal(amount)}
    if user is not None:
        data["user_id"] = user
    event_id = event_id or f"e-{next(_ids)}"
    return Event(number, event_id, "WalletCredited", created_at, data)


Opener = Callable[[], EventStoreAdapter]


@pytest.fixture(
    params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Opens the backend under test; for SQLite, the same file every time,
    for PostgreSQL the same table, one per test, in a test database."""
    if request.param == "memory":
        store = MemoryEventStore()
        return lambda: store
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_events_url")
        return lambda: PostgresEventStore(url)
    return lambda: SqliteEventStore(tmp_path / "events.db")


@pytest.fixture
def store(open_store: Opener) -> Iterator[EventStoreAdapter]:
    opened = open_store()
    yield opened
    opened.close()


def numbers(store: EventStoreAdapter) -> list[int]:
    return [row.sequence_number for row in store.read_after(0, 1_000)]


def test_an_empty_store_has_head_zero_and_nothing_to_read(
    store: EventStoreAdapter,
) -> None:
    assert store.head() == 0
    assert store.read_after(0, 10) == []


def test_events_numbered_zero_get_the_next_numbers(store: EventStoreAdapter) -> None:
    assert store.append([credited(), credited(), credited()]) == AppendResult(3, 1, 3)
    assert store.append([credited(), credited()]) == AppendResult(2, 4, 5)
    assert numbers(store) == [1, 2, 3, 4, 5]
    assert store.head() == 5


def test_explicit_numbers_are_kept_and_may_leave_gaps(store: EventStoreAdapter) -> None:
    assert store.append([credited(5), credited(9)]) == AppendResult(2, 5, 9)
    assert store.append([credited()]) == AppendResult(1, 10, 10)
    assert numbers(store) == [5, 9, 10]


def test_an_empty_append_writes_nothing(store: EventStoreAdapter) -> None:
    assert store.append([]) == AppendResult(0, 0, 0)
    assert store.head() == 0


@pytest.mark.parametrize(
    ("batch", "refused"),
    [
        ([3, 2], 2),
        ([3, 3], 3),
        ([2], 2),
        ([1], 1),
        ([0, -4], -4),
    ],
    ids=["falling", "repeated", "equal to the head", "below the head", "negative"],
)
def test_a_number_not_above_the_last_is_rejected_and_nothing_is_written(
    store: EventStoreAdapter, batch: list[int], refused: int
) -> None:
    store.append([credited(1), credited(2)])

    with pytest.raises(InvalidEventError) as raised:
        store.append([credited(number) for number in batch])

    assert raised.value.field == "sequence_number"
    assert raised.value.where == f"sequence number {refused}"
    assert numbers(store) == [1, 2]


def test_an_iterable_that_raises_midway_leaves_the_store_as_before(
    store: EventStoreAdapter,
) -> None:
    store.append([credited(), credited()])
    before = store.read_after(0, 100)

    def failing() -> Iterator[Event]:
        yield credited()
        yield credited()
        raise RuntimeError("the file broke off")

    with pytest.raises(RuntimeError, match="broke off"):
        store.append(failing())

    assert store.read_after(0, 100) == before
    assert store.append([credited()]) == AppendResult(1, 3, 3)


def test_a_duplicate_event_id_already_stored_is_rejected_naming_it(
    store: EventStoreAdapter,
) -> None:
    store.append([credited(event_id="pay-7")])

    with pytest.raises(InvalidEventError, match="'pay-7'") as raised:
        store.append([credited(event_id="fresh"), credited(event_id="pay-7")])

    assert raised.value.field == "event_id"
    assert raised.value.where == "sequence number 3"
    assert numbers(store) == [1]


def test_a_duplicate_event_id_within_one_append_is_rejected(
    store: EventStoreAdapter,
) -> None:
    with pytest.raises(InvalidEventError, match="'twice'"):
        store.append([credited(event_id="twice"), credited(event_id="twice")])

    assert store.head() == 0
    store.append([credited(event_id="twice")])
    assert store.head() == 1


def test_read_after_starts_after_the_given_number(store: EventStoreAdapter) -> None:
    store.append([credited(number) for number in (1, 2, 3, 5, 8)])

    assert [row.sequence_number for row in store.read_after(2, 10)] == [3, 5, 8]
    assert [row.sequence_number for row in store.read_after(4, 10)] == [5, 8]
    assert store.read_after(8, 10) == []


def test_read_after_returns_at_most_limit_rows_in_order(
    store: EventStoreAdapter,
) -> None:
    store.append(credited() for _ in range(10))

    assert [row.sequence_number for row in store.read_after(0, 3)] == [1, 2, 3]
    assert [row.sequence_number for row in store.read_after(3, 3)] == [4, 5, 6]
    assert store.read_after(0, 0) == []


def test_rows_carry_the_route_of_their_user(store: EventStoreAdapter) -> None:
    store.append([credited(user="alice"), credited(user="bob"), credited(user=None)])

    routes = [row.route for row in store.read_after(0, 10)]

    assert routes == [route_of("alice"), route_of("bob"), 0]


def test_decimals_and_times_survive_exactly(store: EventStoreAdapter) -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    written = [
        credited(amount="0.10", created_at=MOMENT),
        credited(amount="12345678901234567.89", created_at=MOMENT.astimezone(india)),
        credited(amount="1E+3"),
    ]
    store.append(written)

    read = store.read_events_after(0, 10)

    assert [repr(event.data["amount"]) for event in read] == [
        "Decimal('0.10')",
        "Decimal('12345678901234567.89')",
        "Decimal('1E+3')",
    ]
    assert [event.created_at.isoformat() for event in read] == [
        event.created_at.isoformat() for event in written
    ]
    assert [event.event_id for event in read] == [event.event_id for event in written]


def test_read_events_after_gives_each_event_its_stored_number(
    store: EventStoreAdapter,
) -> None:
    store.append([credited(4), credited()])

    read = store.read_events_after(0, 10)

    assert [(event.sequence_number, event.event_type) for event in read] == [
        (4, "WalletCredited"),
        (5, "WalletCredited"),
    ]
    assert read[0].data == {
        "currency": "USD",
        "amount": Decimal("10.00"),
        "user_id": "u1",
    }


def test_a_reopened_sqlite_file_keeps_every_event(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    first = SqliteEventStore(path)
    first.append([credited(amount="0.10"), credited(7)])
    rows = first.read_after(0, 10)
    first.close()

    reopened = SqliteEventStore(path)

    assert reopened.head() == 7
    assert reopened.read_after(0, 10) == rows
    assert reopened.append([credited()]) == AppendResult(1, 8, 8)
    reopened.close()


def test_a_sqlite_file_is_created_in_wal_mode_with_its_schema(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    SqliteEventStore(path).close()

    with sqlite3.connect(path) as connection:
        mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
        columns = [row[1] for row in connection.execute("PRAGMA table_info(events)")]

    assert mode == "wal"
    assert columns == ["sequence_number", "event_id", "event_type", "route", "payload"]


def test_an_append_after_listen_wakes_a_later_wait(open_store: Opener) -> None:
    """The hand-over: an append made after listen() but before the wait
    starts is still reported, by another instance on the same log."""
    reader = open_store()
    writer = open_store()
    reader.append([credited()])
    reader.listen()
    writer.append([credited()])
    assert reader.wait_for_append(5.0) is True
    assert reader.wait_for_append(0.05) is False
    reader.close()
    writer.close()


def test_a_wait_without_appends_times_out(store: EventStoreAdapter) -> None:
    store.listen()
    started = time.monotonic()
    assert store.wait_for_append(0.2) is False
    assert time.monotonic() - started >= 0.2


def test_a_wait_is_woken_by_an_append_from_another_thread(
    open_store: Opener,
) -> None:
    reader = open_store()
    writer = open_store()
    reader.listen()
    timer = threading.Timer(0.1, lambda: writer.append([credited()]))
    timer.start()
    started = time.monotonic()
    assert reader.wait_for_append(10.0) is True
    assert time.monotonic() - started < 5.0
    timer.join()
    reader.close()
    writer.close()


def test_another_sqlite_reader_sees_nothing_of_an_append_until_it_commits(
    tmp_path: Path,
) -> None:
    writer = SqliteEventStore(tmp_path / "events.db")
    reader = SqliteEventStore(tmp_path / "events.db")
    writer.append([credited()])
    seen_midway: list[int] = []

    def watched() -> Iterator[Event]:
        yield credited()
        yield credited()
        seen_midway.append(reader.head())
        yield credited()

    writer.append(watched())

    assert seen_midway == [1]
    assert reader.head() == 4
    writer.close()
    reader.close()
