"""Live mode on a real PostgreSQL with many writers at once.

Eight writer connections append while the engine runs live: some commit at
once through the event store, some insert and hold their transaction open
for a random while before committing, some insert and roll back. Numbers
are taken before commit, so later numbers often become visible first and
rolled-back ones never do. At the end every committed event must have been
applied exactly once and no rolled-back one at all.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from postgres_helpers import insert_raw, table_of, terminate_backends

from actors import Projectionist
from engine import Event
from stores import open_event_store

pytestmark = [pytest.mark.ray, pytest.mark.postgres]

WRITERS = 8
ROUNDS = 40
GAP_TIMEOUT_MS = 8_000
LONGEST_HOLD_S = 1.5
PATIENCE_S = 180.0


@dataclass
class Outcome:
    """What the writers did: committed events and rolled-back numbers."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    committed: int = 0
    rolled_back: list[int] = field(default_factory=list)


@pytest.fixture
def log_url(postgres_url: str) -> str:
    return f"{postgres_url}?table=writers_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def engine(log_url: str, tmp_path: Path) -> Iterator[Projectionist]:
    engine = Projectionist(
        log_url,
        f"sqlite:///{tmp_path / 'models.db'}",
        shards=3,
        gap_timeout_ms=GAP_TIMEOUT_MS,
    )
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


def credit(writer: int, index: int) -> Event:
    amount = Decimal(random.randrange(1, 100_000)).scaleb(-2)
    return Event(
        0,
        f"w{writer}-{index}-{uuid.uuid4().hex[:8]}",
        "WalletCredited" if index % 3 else "WalletDeducted",
        datetime(2026, 2, 1, tzinfo=UTC),
        {
            "user_id": f"user-{random.randrange(20)}",
            "currency": "USD",
            "amount": amount,
        },
    )


def write(writer: int, url: str, table: str, dsn: str, outcome: Outcome) -> None:
    """One writer: commit through the store, or hold, or roll back."""
    store = open_event_store(url)
    rng = random.Random(writer)
    with psycopg.connect(dsn, application_name="projectionist-test") as raw:
        for index in range(ROUNDS):
            roll = rng.random()
            if roll < 0.4:
                store.append([credit(writer, index), credit(writer, index + 1000)])
                with outcome.lock:
                    outcome.committed += 2
                continue
            number = insert_raw(raw, table, credit(writer, index))
            time.sleep(rng.uniform(0, LONGEST_HOLD_S))
            if roll < 0.8:
                raw.commit()
                with outcome.lock:
                    outcome.committed += 1
            else:
                raw.rollback()
                with outcome.lock:
                    outcome.rolled_back.append(number)
    store.close()


@pytest.mark.usefixtures("local_ray")
def test_every_committed_event_is_applied_once_and_no_rolled_back_one(
    engine: Projectionist, log_url: str, postgres_url: str
) -> None:
    table = table_of(log_url)
    outcome = Outcome()
    writers = [
        threading.Thread(target=write, args=(n, log_url, table, postgres_url, outcome))
        for n in range(WRITERS)
    ]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()

    logged = engine.events.read_events_after(0, 1_000_000)
    assert len(logged) == outcome.committed
    assert outcome.rolled_back, "no writer rolled back: the test proves nothing"
    head = logged[-1].sequence_number
    assert engine.wait_until_visible(head, PATIENCE_S)

    # Exactly once: every stored model equals a sequential fold of the
    # committed events, and no rolled-back number was ever stored.
    compared, differences = engine.differences_from_fold(logged)
    assert compared > 0
    assert differences == 0
    stored = {event.sequence_number for event in logged}
    assert stored.isdisjoint(outcome.rolled_back)
    status = engine.status()
    assert status["events_processed_total"] >= len(logged)
    holes_below_head = head - len(logged)
    assert status["permanent_holes"] == holes_below_head


@pytest.mark.redis
@pytest.mark.usefixtures("local_ray")
def test_dropped_postgres_and_redis_connections_are_reopened_without_replay(
    log_url: str, postgres_url: str, redis_url: str, f10_events: list[Event]
) -> None:
    """Case D on the live stores: F10 applied; every PostgreSQL and Redis
    connection is cut; then 11: WalletCredited(u1, USD, 1.00). Expected:
    u1/USD 51.00 with 4 transactions, checkpoint 11, and 1-10 not sent
    again."""
    import redis

    store_url = f"{redis_url}?prefix=reconnect-{uuid.uuid4().hex[:8]}"
    engine = Projectionist(log_url, store_url, shards=2, gap_timeout_ms=1_000)
    try:
        engine.append(f10_events)
        engine.start()
        assert engine.wait_until_visible(10, PATIENCE_S)

        database = postgres_url.rpartition("/")[2].partition("?")[0]
        assert terminate_backends(postgres_url, database) >= 2
        killed = redis.Redis.from_url(redis_url).client_kill_filter(
            _type="normal", skipme=True
        )
        assert killed >= 1

        eleven = Event(
            11,
            "e-11",
            "WalletCredited",
            datetime(2026, 1, 5, 10, 0, 11, tzinfo=UTC),
            {"user_id": "u1", "currency": "USD", "amount": Decimal("1.00")},
        )
        engine.append([eleven])
        assert engine.wait_until_visible(11, PATIENCE_S)
        balance = engine.get_balance("u1", "USD")
        assert (balance.balance, balance.transaction_count) == (Decimal("51.00"), 4)
        assert engine.status()["events_processed_total"] == 11
    finally:
        engine.stop()
        engine.open()
        engine.snapshots.clear()
        engine.stop()
