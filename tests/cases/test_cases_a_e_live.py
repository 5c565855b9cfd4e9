"""Cases A and E on a real PostgreSQL, where gaps may still fill.

A. Permanent holes: F10 without 3 and 7, reserved and never committed.
Expected: u1/USD 80.00 (2 transactions), u2 one pending payment, the rest
as F10; checkpoint 10 without a restart, after a bounded wait, with a
bounded number of store queries. Variant: 1-5, then 6-9 never commit, then
10 commits: 10 is applied after the wait.

E. Catch-up to live hand-over: from 0 on F10, 11: WalletDeducted(u1, USD,
10.00) appended exactly between the last catch-up read and the moment live
listening starts. Expected within two poll intervals: u1/USD 40.00, debits
60.00, checkpoint 11.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import ray
from postgres_helpers import insert_raw, table_of

from actors import Projectionist
from engine import Event, StoredRow, encode_event, route_of
from stores import open_event_store

pytestmark = [pytest.mark.ray, pytest.mark.postgres]

GAP_TIMEOUT_MS = 1_500
PATIENCE_S = 120.0
# A hot loop would read thousands of times while it waits; a poll reads
# about once per poll interval (100 ms) or wake-up.
MOST_READS = 400


@pytest.fixture
def log_url(postgres_url: str) -> str:
    return f"{postgres_url}?table=live_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'models.db'}"


def table_reads(dsn: str, table: str) -> int:
    """How many scans PostgreSQL counted on ``table`` (every read of it)."""
    with psycopg.connect(dsn) as connection:
        connection.execute("SELECT pg_stat_clear_snapshot()")
        row = connection.execute(
            "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0)"
            " FROM pg_stat_user_tables WHERE relname = %s",
            (table,),
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.usefixtures("local_ray")
def test_a_permanent_holes_are_passed_after_a_bounded_wait(
    log_url: str, postgres_url: str, store_url: str, f10_events: list[Event]
) -> None:
    """3 and 7 are taken by transactions that roll back."""
    engine = Projectionist(log_url, store_url, shards=2, gap_timeout_ms=GAP_TIMEOUT_MS)
    log = [event for event in f10_events if event.sequence_number not in (3, 7)]
    try:
        engine.open()
        for event in f10_events:
            if event in log:
                engine.append([dataclasses.replace(event, sequence_number=0)])
                continue
            with psycopg.connect(postgres_url) as writer:
                insert_raw(writer, table_of(log_url), event)
                writer.rollback()
        assert [e.sequence_number for e in engine.events.read_events_after(0, 20)] == [
            e.sequence_number for e in log
        ]
        status = engine.run_until_caught_up()
        assert [shard["checkpoint"] for shard in status["shards"]] == [10, 10]
        assert status["permanent_holes"] == 2
        balance = engine.get_balance("u1", "USD")
        assert (balance.balance, balance.transaction_count) == (Decimal("80.00"), 2)
        payments = engine.get_payment_status("u2")
        assert (payments.total_payments, payments.pending_payments) == (1, 1)
        assert engine.differences_from_fold(log)[1] == 0
    finally:
        engine.stop()
    assert 0 < table_reads(postgres_url, table_of(log_url)) < MOST_READS


@pytest.mark.usefixtures("local_ray")
def test_a_variant_10_is_applied_only_after_the_wait_for_6_to_9(
    log_url: str, postgres_url: str, store_url: str, f10_events: list[Event]
) -> None:
    """6-9 are taken by a transaction that stays open: the engine must not
    pass them while it may still commit, and must pass them once the gap
    timeout has run out, although it is still open."""
    engine = Projectionist(log_url, store_url, shards=2, gap_timeout_ms=GAP_TIMEOUT_MS)
    try:
        engine.append(f10_events[:5])
        engine.start()
        assert engine.wait_until_visible(5, PATIENCE_S)
        with psycopg.connect(postgres_url) as open_writer:
            taken = [
                insert_raw(open_writer, table_of(log_url), event)
                for event in f10_events[5:9]
            ]
            assert taken == [6, 7, 8, 9]
            appended = time.monotonic()
            ten = dataclasses.replace(f10_events[9], sequence_number=0)
            assert engine.append([ten]).last == 10
            assert engine.wait_until_visible(10, PATIENCE_S)
            # The engine first saw 6-9 missing after 10 was appended.
            assert time.monotonic() - appended >= GAP_TIMEOUT_MS / 1000
            open_writer.rollback()
        assert engine.status()["permanent_holes"] == 4
        assert engine.differences_from_fold(f10_events[:5] + f10_events[9:])[1] == 0
    finally:
        engine.stop()
    # Waiting polled; it did not spin.
    assert 0 < table_reads(postgres_url, table_of(log_url)) < MOST_READS


class AppendBetweenReadAndWait:
    """An event store that appends ``event`` through its own connection the
    ``nth`` time a read after ``after`` finds nothing, just before it
    answers: the append lands after that read and before the next wait.

    A marker file makes that happen once across the processes that open it.
    """

    def __init__(self, url: str, after: int, nth: int, event: Event, marker: str):
        self.args = (url, after, nth, event, marker)
        self.store: Any = None
        self.empty_reads = 0

    def __reduce__(self) -> tuple[Any, ...]:
        return (AppendBetweenReadAndWait, self.args)

    def _open(self) -> Any:
        if self.store is None:
            self.store = open_event_store(self.args[0])
        return self.store

    def read_after(self, after: int, limit: int) -> list[StoredRow]:
        rows: list[StoredRow] = self._open().read_after(after, limit)
        _, trigger, nth, event, marker = self.args
        if rows or after < trigger:
            return rows
        self.empty_reads += 1
        if self.empty_reads == nth and _first_time(marker):
            self._open().append([event])
        return rows

    def __getattr__(self, name: str) -> Any:
        if name in ("args", "store", "empty_reads"):
            raise AttributeError(name)
        return getattr(self._open(), name)


def _first_time(marker: str) -> bool:
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return False
    return True


@pytest.fixture
def handing_over(
    monkeypatch: pytest.MonkeyPatch, log_url: str, tmp_path: Path
) -> Iterator[Any]:
    """Make the engine read its log through :class:`AppendBetweenReadAndWait`."""
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

    def install(nth: int, event: Event) -> None:
        marker = str(tmp_path / "appended")
        store = AppendBetweenReadAndWait(log_url, 10, nth, event, marker)
        monkeypatch.setattr(
            "actors._service.event_store_ref", lambda url: (store, None)
        )

    yield install
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


POLL_MS = 5_000


@pytest.mark.usefixtures("local_ray")
@pytest.mark.parametrize("nth", [2, 3], ids=["last-catch-up-read", "first-live-read"])
def test_e_an_append_during_the_hand_over_is_applied_promptly(
    handing_over: Any,
    log_url: str,
    store_url: str,
    nth: int,
    f10_events: list[Event],
    tmp_path: Path,
) -> None:
    """A catch-up reads the head twice (once before its final flush, once
    after), so the second empty read is its last one and the third is the
    live run's first read, just before its first wait."""
    eleven = Event(
        11,
        "e-11",
        "WalletDeducted",
        datetime(2026, 1, 5, 10, 0, 11, tzinfo=UTC),
        {"user_id": "u1", "currency": "USD", "amount": Decimal("10.00")},
    )
    handing_over(nth, eleven)
    engine = Projectionist(
        log_url, store_url, shards=2, poll_interval_ms=POLL_MS, gap_timeout_ms=1_000
    )
    try:
        engine.append(f10_events)
        engine.start()
        started = time.monotonic()
        assert engine.wait_until_visible(11, 2 * POLL_MS / 1000)
        took = time.monotonic() - started
        assert (tmp_path / "appended").exists(), "11 was never appended"
        summary = engine.get_wallet_summary("u1", "USD")
        assert summary.current_balance == Decimal("40.00")
        assert summary.total_debits == Decimal("60.00")
        # Woken by the append's notification, not by the next poll.
        assert took < POLL_MS / 1000, took
    finally:
        engine.stop()


def credit(event_id: str, amount: str) -> Event:
    return Event(
        0,
        event_id,
        "WalletCredited",
        datetime(2026, 1, 6, tzinfo=UTC),
        {"user_id": "u9", "currency": "USD", "amount": Decimal(amount)},
    )


@pytest.mark.usefixtures("local_ray")
def test_a_writer_still_at_work_past_the_gap_timeout_is_waited_for(
    log_url: str, postgres_url: str, store_url: str
) -> None:
    """A long import: its transaction drew its number first and keeps
    working (here: a statement that runs for three gap timeouts) while a
    later number commits. Nothing of it may be skipped."""
    engine = Projectionist(log_url, store_url, shards=2, gap_timeout_ms=GAP_TIMEOUT_MS)
    try:
        engine.append([credit("first", "1.00")])
        engine.start()
        with psycopg.connect(postgres_url) as slow:
            number = insert_raw(slow, table_of(log_url), credit("slow", "10.00"))
            later = engine.append([credit("later", "100.00")]).last
            assert later == number + 1
            slow.execute("SELECT pg_sleep(%s)", [3 * GAP_TIMEOUT_MS / 1000])
            slow.commit()
        assert engine.wait_until_visible(later, PATIENCE_S)
        balance = engine.get_balance("u9", "USD")
        assert (balance.balance, balance.transaction_count) == (Decimal("111.00"), 3)
        assert engine.status()["permanent_holes"] == 0
    finally:
        engine.stop()


@pytest.mark.usefixtures("local_ray")
def test_a_number_reserved_ahead_of_its_insert_is_not_skipped(
    log_url: str, postgres_url: str, store_url: str
) -> None:
    """A writer draws a number with nextval, another commits the next one,
    and the first inserts its number a moment later, within the timeout."""
    engine = Projectionist(log_url, store_url, shards=2, gap_timeout_ms=5_000)
    try:
        engine.append([credit("first", "1.00")])
        engine.start()
        table = table_of(log_url)
        with psycopg.connect(postgres_url) as reserving:
            row = reserving.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'sequence_number'))",
                [table],
            ).fetchone()
            assert row is not None
            later = engine.append([credit("later", "100.00")]).last
            assert later == row[0] + 1
            time.sleep(1.0)
            reserved = dataclasses.replace(
                credit("reserved", "10.00"), sequence_number=row[0]
            )
            reserving.execute(
                f"INSERT INTO {table} (sequence_number, event_id, event_type,"
                " route, payload) VALUES (%s, %s, %s, %s, %s)",
                [
                    row[0],
                    reserved.event_id,
                    reserved.event_type,
                    route_of("u9"),
                    encode_event(reserved),
                ],
            )
            reserving.commit()
        assert engine.wait_until_visible(later, PATIENCE_S)
        balance = engine.get_balance("u9", "USD")
        assert (balance.balance, balance.transaction_count) == (Decimal("111.00"), 3)
        assert engine.status()["permanent_holes"] == 0
    finally:
        engine.stop()
