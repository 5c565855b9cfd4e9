"""The payments read models follow DESIGN.md's rules, one rule per test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from engine import (
    Balance,
    Event,
    PaymentStatus,
    Projector,
    WalletSummary,
    fold,
    format_time,
    payments_registry,
    validate_event,
)

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def at(number: int) -> datetime:
    return T0 + timedelta(seconds=number)


def event(number: int, kind: str, **data: Any) -> Event:
    return validate_event(
        {
            "sequence_number": number,
            "event_id": f"e-{number}",
            "event_type": kind,
            "created_at": format_time(at(number)),
            "data": data,
        }
    )


def wallet(
    kind: str, number: int, user: str, cur: str, amount: str, **more: Any
) -> Event:
    return event(number, kind, user_id=user, currency=cur, amount=amount, **more)


def credited(number: int, user: str, cur: str, amount: str, **more: Any) -> Event:
    return wallet("WalletCredited", number, user, cur, amount, **more)


def deducted(number: int, user: str, cur: str, amount: str, **more: Any) -> Event:
    return wallet("WalletDeducted", number, user, cur, amount, **more)


def initiated(number: int, payment: str, user: str, amount: str) -> Event:
    return event(
        number,
        "PaymentInitiated",
        payment_id=payment,
        user_id=user,
        currency="USD",
        amount=amount,
    )


def completed(number: int, payment: str, user: str, **extra: Any) -> Event:
    return event(number, "PaymentCompleted", payment_id=payment, user_id=user, **extra)


def failed(number: int, payment: str, user: str, **extra: Any) -> Event:
    return event(number, "PaymentFailed", payment_id=payment, user_id=user, **extra)


def balance_of(projector: Projector, user: str = "u1", cur: str = "USD") -> Balance:
    model: Balance = projector.models["balance"][(user, cur)]
    return model


def summary_of(
    projector: Projector, user: str = "u1", cur: str = "USD"
) -> WalletSummary:
    model: WalletSummary = projector.models["summary"][(user, cur)]
    return model


def payments_of(projector: Projector, user: str = "u1") -> PaymentStatus:
    model: PaymentStatus = projector.models["payments"][(user,)]
    return model


def run(*events: Event) -> Projector:
    return fold(payments_registry(), events)


# Balance


def test_a_credit_without_new_balance_adds_its_amount_to_the_balance() -> None:
    projector = run(
        credited(1, "u1", "USD", "100.00"), credited(2, "u1", "USD", "0.10")
    )

    assert balance_of(projector).balance == Decimal("100.10")


def test_a_debit_without_new_balance_subtracts_its_amount() -> None:
    projector = run(
        credited(1, "u1", "USD", "100.00"), deducted(2, "u1", "USD", "30.00")
    )

    assert balance_of(projector).balance == Decimal("70.00")


def test_a_given_new_balance_wins_over_the_computed_one() -> None:
    projector = run(
        credited(1, "u1", "USD", "100.00"),
        deducted(2, "u1", "USD", "30.00", new_balance="75.00"),
        credited(3, "u1", "USD", "5.00"),
    )

    assert balance_of(projector).balance == Decimal("80.00")


def test_a_given_new_balance_is_taken_even_on_the_first_event() -> None:
    projector = run(credited(1, "u1", "USD", "10.00", new_balance="510.00"))

    assert balance_of(projector).balance == Decimal("510.00")


def test_a_balance_may_go_negative() -> None:
    projector = run(
        credited(1, "u1", "USD", "10.00"), deducted(2, "u1", "USD", "25.50")
    )

    assert balance_of(projector).balance == Decimal("-15.50")


def test_a_given_negative_new_balance_is_kept() -> None:
    projector = run(deducted(1, "u1", "USD", "5.00", new_balance="-5.00"))

    assert balance_of(projector).balance == Decimal("-5.00")


def test_a_balance_records_the_latest_time_version_and_the_count() -> None:
    projector = run(
        credited(1, "u1", "USD", "1.00"),
        credited(2, "u2", "USD", "1.00"),
        deducted(5, "u1", "USD", "0.50"),
    )

    model = balance_of(projector)
    assert model.last_updated == at(5)
    assert model.last_event_version == 5
    assert model.transaction_count == 2


def test_each_currency_of_a_user_has_its_own_balance() -> None:
    projector = run(credited(1, "u1", "USD", "1.00"), credited(2, "u1", "EUR", "2.00"))

    assert balance_of(projector, "u1", "USD").balance == Decimal("1.00")
    assert balance_of(projector, "u1", "EUR").balance == Decimal("2.00")
    assert balance_of(projector, "u1", "EUR").transaction_count == 1


# WalletSummary


def test_a_summary_totals_credits_and_debits_separately() -> None:
    projector = run(
        credited(1, "u1", "USD", "100.00"),
        deducted(2, "u1", "USD", "30.00"),
        credited(3, "u1", "USD", "0.50"),
        deducted(4, "u1", "USD", "20.00"),
    )

    model = summary_of(projector)
    assert model.total_credits == Decimal("100.50")
    assert model.total_debits == Decimal("50.00")
    assert model.current_balance == Decimal("50.50")
    assert model.transaction_count == 4
    assert model.last_event_version == 4


def test_a_summary_balance_follows_a_given_new_balance_like_balance_does() -> None:
    projector = run(
        credited(1, "u1", "USD", "100.00"),
        deducted(2, "u1", "USD", "30.00", new_balance="60.00"),
    )

    model = summary_of(projector)
    assert model.current_balance == Decimal("60.00")
    assert model.total_debits == Decimal("30.00")


def test_a_summary_keeps_the_first_time_and_tracks_the_latest_one() -> None:
    projector = run(
        credited(2, "u1", "USD", "1.00"),
        deducted(7, "u1", "USD", "1.00"),
        credited(9, "u1", "USD", "1.00"),
    )

    model = summary_of(projector)
    assert model.created_at == at(2)
    assert model.last_transaction_at == at(9)
    assert model.last_updated == at(9)


def test_a_summary_with_only_credits_has_zero_debits() -> None:
    model = summary_of(run(credited(1, "u1", "USD", "5.00")))

    assert model.total_debits == 0
    assert model.total_credits == Decimal("5.00")


# PaymentStatus


def test_an_initiated_payment_is_counted_as_pending_with_its_amount() -> None:
    model = payments_of(run(initiated(3, "p1", "u1", "80.00")))

    assert (model.total_payments, model.pending_payments) == (1, 1)
    assert (model.completed_payments, model.failed_payments) == (0, 0)
    assert model.total_amount == Decimal("80.00")
    assert model.last_payment_at == at(3)
    assert model.anomalies == 0


def test_completing_a_pending_payment_moves_it_from_pending_to_completed() -> None:
    model = payments_of(
        run(initiated(1, "p1", "u1", "80.00"), completed(2, "p1", "u1"))
    )

    assert (model.total_payments, model.pending_payments) == (1, 0)
    assert (model.completed_payments, model.failed_payments) == (1, 0)
    assert model.total_amount == Decimal("80.00")
    assert model.anomalies == 0


def test_failing_a_pending_payment_moves_it_from_pending_to_failed() -> None:
    model = payments_of(
        run(initiated(1, "p1", "u1", "80.00"), failed(2, "p1", "u1", reason="limit"))
    )

    assert (model.total_payments, model.pending_payments) == (1, 0)
    assert (model.completed_payments, model.failed_payments) == (0, 1)
    assert model.total_amount == Decimal("80.00")


def test_completing_a_payment_never_initiated_counts_a_new_completed_one() -> None:
    model = payments_of(run(completed(4, "p9", "u1", currency="USD", amount="12.50")))

    assert (model.total_payments, model.pending_payments) == (1, 0)
    assert model.completed_payments == 1
    assert model.total_amount == Decimal("12.50")
    assert model.anomalies == 0


def test_a_terminal_event_without_amount_for_an_unknown_payment_adds_none() -> None:
    model = payments_of(run(failed(4, "p9", "u1")))

    assert (model.total_payments, model.pending_payments) == (1, 0)
    assert model.failed_payments == 1
    assert model.total_amount == 0


def test_a_second_terminal_event_changes_no_count_and_is_an_anomaly() -> None:
    model = payments_of(
        run(
            initiated(1, "p1", "u1", "80.00"),
            completed(2, "p1", "u1"),
            failed(3, "p1", "u1"),
            completed(4, "p1", "u1", currency="USD", amount="80.00"),
        )
    )

    assert (model.total_payments, model.pending_payments) == (1, 0)
    assert (model.completed_payments, model.failed_payments) == (1, 0)
    assert model.total_amount == Decimal("80.00")
    assert model.anomalies == 2


def test_a_repeated_terminal_event_of_a_never_initiated_payment_is_an_anomaly() -> None:
    model = payments_of(
        run(
            failed(1, "p9", "u1"),
            completed(2, "p9", "u1", currency="USD", amount="1.00"),
        )
    )

    assert (model.total_payments, model.failed_payments) == (1, 1)
    assert model.completed_payments == 0
    assert model.total_amount == 0
    assert model.anomalies == 1


def test_payments_of_different_users_are_counted_apart() -> None:
    projector = run(initiated(1, "p1", "u1", "1.00"), initiated(2, "p2", "u2", "2.00"))

    assert payments_of(projector, "u1").total_amount == Decimal("1.00")
    assert payments_of(projector, "u2").total_amount == Decimal("2.00")


def test_payment_events_touch_no_balance_and_wallet_events_no_payments() -> None:
    projector = run(initiated(1, "p1", "u1", "1.00"), credited(2, "u2", "USD", "1.00"))

    assert list(projector.models["balance"]) == [("u2", "USD")]
    assert list(projector.models["payments"]) == [("u1",)]


# Unknown event types


def test_an_event_type_no_projection_handles_is_skipped() -> None:
    unknown = event(2, "AccountOpened", user_id="u1", plan="gold")
    projector = run(credited(1, "u1", "USD", "1.00"), unknown)

    assert projector.models["balance"][("u1", "USD")].last_event_version == 1
    assert sum(len(table) for table in projector.models.values()) == 2


def test_an_unknown_event_type_marks_nothing_to_flush() -> None:
    projector = Projector(payments_registry())

    projector.apply(event(1, "AccountOpened", user_id="u1"))

    assert projector.dirty_count == 0
    assert projector.dirty_records() == ()
