"""The Projectionist service on a real local Ray, over SQLite and memory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import ray

from actors import Projectionist, wait_for
from engine import Balance, Event, ModelNotFound, PaymentStatus, WalletSummary

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("local_ray")]

PATIENCE_S = 120.0
STOP_GRACE_S = 10.0


def sqlite_urls(folder: Path) -> tuple[str, str]:
    return f"sqlite:///{folder / 'events.db'}", f"sqlite:///{folder / 'models.db'}"


def checkpoints(engine: Projectionist) -> list[int]:
    engine.open()
    return [c.sequence_number for c in engine.snapshots.read_checkpoints()]


def caught_up(engine: Projectionist) -> Callable[[], bool]:
    return lambda: bool(engine.status()["caught_up"])


def credited(number: int, user: str, currency: str, amount: str) -> Event:
    data = {"user_id": user, "currency": currency, "amount": Decimal(amount)}
    moment = datetime(2026, 1, 5, 10, 1, tzinfo=UTC)
    return Event(number, f"e-{number}", "WalletCredited", moment, data)


@pytest.fixture
def engine(
    tmp_path: Path,
    f10_events: list[Event],
    stop_engine: Callable[[Projectionist], None],
) -> Iterator[Projectionist]:
    """A started engine over F10 in SQLite files, stopped afterwards."""
    events_url, models_url = sqlite_urls(tmp_path)
    service = Projectionist(events_url, models_url, shards=2)
    service.append(f10_events)
    service.start()
    try:
        yield service
    finally:
        stop_engine(service)


def test_the_service_on_sqlite_serves_f10_once_caught_up(
    engine: Projectionist,
    assert_f10: Callable[..., None],
    assert_f10_by_query: Callable[..., None],
) -> None:
    assert wait_for(caught_up(engine), PATIENCE_S)

    assert_f10(engine.export, checkpoints(engine))
    assert_f10_by_query(engine)
    assert engine.status()["head"] == 10
    assert engine.status()["lag_events"] == 0


def test_the_query_methods_return_read_models_with_exact_decimals(
    engine: Projectionist,
) -> None:
    balance = engine.get_balance("u1", "USD")
    summary = engine.get_wallet_summary("u1", "USD")
    payments = engine.get_payment_status("u2")

    assert isinstance(balance, Balance)
    assert (balance.balance, balance.transaction_count) == (Decimal("50.00"), 3)
    assert isinstance(summary, WalletSummary)
    assert (summary.total_credits, summary.total_debits) == (
        Decimal("100.00"),
        Decimal("50.00"),
    )
    assert summary.created_at == datetime(2026, 1, 5, 10, 0, 1, tzinfo=UTC)
    assert isinstance(payments, PaymentStatus)
    assert (payments.completed_payments, payments.pending_payments) == (1, 0)
    assert str(payments.total_amount) == "10.00"


@pytest.mark.parametrize(
    ("method", "key"),
    [
        ("get_balance", ("nobody", "USD")),
        ("get_balance", ("u1", "GBP")),
        ("get_wallet_summary", ("u3", "EUR")),
        ("get_payment_status", ("u1",)),
    ],
)
def test_an_unknown_key_raises_model_not_found_instead_of_zeros(
    engine: Projectionist, method: str, key: tuple[str, ...]
) -> None:
    with pytest.raises(ModelNotFound) as caught:
        getattr(engine, method)(*key)

    assert all(part in str(caught.value) for part in key)


def test_events_appended_while_running_are_applied_without_a_restart(
    engine: Projectionist,
) -> None:
    engine.append([credited(11, "u1", "USD", "1.00")])

    def applied() -> bool:
        return engine.get_balance("u1", "USD").last_event_version == 11

    assert wait_for(applied, PATIENCE_S)
    balance = engine.get_balance("u1", "USD")
    assert (balance.balance, balance.transaction_count) == (Decimal("51.00"), 4)
    assert engine.get_wallet_summary("u1", "USD").total_credits == Decimal("101.00")
    assert wait_for(lambda: set(checkpoints(engine)) == {11}, PATIENCE_S)


def test_the_health_check_is_healthy_while_running_and_not_after_stop(
    engine: Projectionist, stop_engine: Callable[[Projectionist], None]
) -> None:
    running = engine.health_check()

    stop_engine(engine)
    stopped = engine.health_check()

    assert running["healthy"] is True, running["problems"]
    assert running["problems"] == []
    assert stopped["healthy"] is False
    assert any("not running" in problem for problem in stopped["problems"])


def test_the_service_works_as_a_context_manager(
    tmp_path: Path, f10_events: list[Event]
) -> None:
    events_url, models_url = sqlite_urls(tmp_path)
    appender = Projectionist(events_url, models_url)
    appender.append(f10_events)
    appender.stop()

    with Projectionist(events_url, models_url, shards=3) as engine:
        assert engine.health_check()["healthy"]
        assert engine.get_balance("u3", "USD").balance == Decimal("5.00")
        engine.append([credited(11, "u3", "USD", "1.00")])
        assert wait_for(
            lambda: engine.get_balance("u3", "USD").balance == Decimal("6.00"),
            PATIENCE_S,
        )

    assert engine.health_check()["healthy"] is False
    after = Projectionist(events_url, models_url)
    assert after.get_balance("u3", "USD").balance == Decimal("6.00")
    assert set(checkpoints(after)) == {11}
    after.stop()


def test_memory_stores_work_under_ray(
    f10_events: list[Event],
    assert_f10: Callable[..., None],
    stop_engine: Callable[[Projectionist], None],
) -> None:
    engine = Projectionist("memory://", "memory://", shards=2)
    try:
        engine.append(f10_events)
        engine.start()
        assert wait_for(caught_up(engine), PATIENCE_S)

        assert_f10(engine.export, checkpoints(engine))
        assert engine.get_balance("u2", "USD").last_event_version == 9
    finally:
        stop_engine(engine)


def test_restarting_with_another_shard_count_keeps_f10_exact(
    tmp_path: Path, f10_events: list[Event], assert_f10: Callable[..., None]
) -> None:
    events_url, models_url = sqlite_urls(tmp_path)
    phases: list[tuple[int, list[Event]]] = [
        (4, f10_events[:3]),
        (2, f10_events[3:7]),
        (8, f10_events[7:]),
    ]
    layouts: list[Any] = []

    for shards, events in phases:
        engine = Projectionist(events_url, models_url, shards=shards)
        engine.append(events)
        engine.run_until_caught_up()
        engine.open()
        layouts.append({c.shard_count for c in engine.snapshots.read_checkpoints()})
        engine.stop()

    final = Projectionist(events_url, models_url)
    assert_f10(final.export, checkpoints(final))
    assert layouts == [{4}, {2}, {8}]
    assert len(checkpoints(final)) == 8
    final.stop()


def test_a_stop_handled_before_the_live_run_begins_still_ends_it(
    tmp_path: Path, f10_events: list[Event]
) -> None:
    events_url, models_url = sqlite_urls(tmp_path)
    engine = Projectionist(events_url, models_url, shards=1)
    engine.append(f10_events)
    engine.start(live=False)
    dispatcher = engine._dispatcher

    # The order Ray allows: Projectionist.stop's request first, then the
    # live run that Projectionist.start asked for just before it.
    ray.get(dispatcher.stop.remote())
    live = dispatcher.run.remote(True)
    ended, _ = ray.wait([live], timeout=STOP_GRACE_S)

    if not ended:
        # Release the run, so the rest of the module can go on.
        ray.get(dispatcher.stop.remote())
        ray.get(live)
    engine.stop()
    assert ended, "the live run ignored the stop it was sent"
