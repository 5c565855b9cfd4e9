"""Events are validated where they enter, and every error names its field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from engine import InvalidEventError, parse_json_line, validate_event


def raw(**changes: Any) -> dict[str, Any]:
    """A valid WalletCredited as decoded JSON, with ``changes`` applied;
    ``data_*`` keys change the data (``None`` removes the field)."""
    event: dict[str, Any] = {
        "sequence_number": 1,
        "event_id": "e-1",
        "event_type": "WalletCredited",
        "created_at": "2026-01-05T10:00:00Z",
        "data": {"user_id": "u1", "currency": "USD", "amount": "100.00"},
    }
    for name, value in changes.items():
        target, field = (
            (event["data"], name[5:]) if name.startswith("data_") else (event, name)
        )
        if value is None:
            target.pop(field, None)
        else:
            target[field] = value
    return event


def refusal(event: object) -> InvalidEventError:
    with pytest.raises(InvalidEventError) as caught:
        validate_event(event)
    return caught.value


def line_refusal(text: str) -> InvalidEventError:
    with pytest.raises(InvalidEventError) as caught:
        parse_json_line(text)
    return caught.value


def test_a_valid_event_comes_back_with_decimal_money_and_utc_time() -> None:
    event = validate_event(raw())

    assert event.sequence_number == 1
    assert event.event_id == "e-1"
    assert event.data["amount"] == Decimal("100.00")
    assert str(event.data["amount"]) == "100.00"
    assert event.created_at == datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def test_malformed_json_is_refused_as_not_valid_json() -> None:
    error = line_refusal('{"sequence_number": 1, "event_type": ')

    assert "not valid JSON" in str(error)


def test_a_json_array_is_refused_as_not_an_object() -> None:
    error = line_refusal("[1, 2]")

    assert "JSON object" in str(error)


@pytest.mark.parametrize(
    "number", ["0.1", "48.717983", "12345678901234567.89", "0.10", "1E+2", "7"]
)
def test_a_json_number_amount_is_read_exactly_as_a_decimal(number: str) -> None:
    text = json.dumps(raw()).replace('"100.00"', number)

    event = parse_json_line(text)

    amount = event.data["amount"]
    assert isinstance(amount, Decimal)
    assert str(amount) == str(Decimal(number))


def test_a_binary_float_amount_is_refused_naming_the_field() -> None:
    error = refusal(raw(data_amount=0.1))

    assert error.field == "data.amount"
    assert "float" in error.reason


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "sNaN", "inf"])
def test_an_amount_that_is_not_finite_is_refused(text: str) -> None:
    error = refusal(raw(data_amount=text))

    assert error.field == "data.amount"


def test_a_bare_nan_in_json_is_refused() -> None:
    text = json.dumps(raw()).replace('"100.00"', "NaN")

    error = line_refusal(text)

    assert "NaN" in str(error)


@pytest.mark.parametrize("text", ["12.3.4", "1,00", "ten", "", " ", "0x10", "1e"])
def test_an_amount_that_is_not_a_decimal_number_is_refused(text: str) -> None:
    error = refusal(raw(data_amount=text))

    assert error.field == "data.amount"


def test_an_amount_with_too_many_decimal_places_is_refused() -> None:
    error = refusal(raw(data_amount="0." + "0" * 18 + "1"))

    assert error.field == "data.amount"
    assert "decimal places" in error.reason


def test_an_amount_with_eighteen_decimal_places_is_accepted() -> None:
    event = validate_event(raw(data_amount="0." + "0" * 17 + "1"))

    assert event.data["amount"] == Decimal("1E-18")


def test_a_huge_amount_is_refused() -> None:
    error = refusal(raw(data_amount="1E+40"))

    assert error.field == "data.amount"


@pytest.mark.parametrize("text", ["0", "0.00", "-0.01", "-100"])
def test_a_zero_or_negative_amount_is_refused(text: str) -> None:
    error = refusal(raw(data_amount=text))

    assert error.field == "data.amount"
    assert "greater than zero" in error.reason


def test_a_negative_or_zero_new_balance_is_accepted() -> None:
    assert validate_event(raw(data_new_balance="-5.00")).data["new_balance"] == Decimal(
        "-5.00"
    )
    assert validate_event(raw(data_new_balance="0")).data["new_balance"] == 0


def test_a_new_balance_that_is_not_a_decimal_is_refused() -> None:
    error = refusal(raw(data_new_balance="lots"))

    assert error.field == "data.new_balance"


@pytest.mark.parametrize("currency", ["usd", "Usd", "USDT", "US", "", 840, "U$D"])
def test_a_currency_that_is_not_three_upper_case_letters_is_refused(
    currency: object,
) -> None:
    error = refusal(raw(data_currency=currency))

    assert error.field == "data.currency"


def test_a_missing_user_id_is_refused_naming_the_field() -> None:
    error = refusal(raw(data_user_id=None))

    assert error.field == "data.user_id"
    assert "missing" in error.reason


def test_an_empty_user_id_is_refused() -> None:
    assert refusal(raw(data_user_id="")).field == "data.user_id"


def test_a_missing_event_type_is_refused_naming_the_field() -> None:
    error = refusal(raw(event_type=None))

    assert error.field == "event_type"
    assert "missing" in error.reason


def test_a_missing_payment_id_is_refused_naming_the_field() -> None:
    event = raw(event_type="PaymentInitiated")

    assert refusal(event).field == "data.payment_id"


def test_a_time_without_an_offset_is_refused() -> None:
    error = refusal(raw(created_at="2026-01-05T10:00:00"))

    assert error.field == "created_at"
    assert "offset" in error.reason


def test_a_time_that_is_not_a_time_is_refused() -> None:
    assert refusal(raw(created_at="yesterday")).field == "created_at"


def test_a_plain_date_means_midnight_utc() -> None:
    event = validate_event(raw(created_at="2026-01-05"))

    assert event.created_at == datetime(2026, 1, 5, tzinfo=UTC)
    assert event.created_at.utcoffset() == timedelta(0)


def test_a_time_with_an_offset_is_turned_into_utc() -> None:
    event = validate_event(raw(created_at="2026-01-05T12:00:00+02:00"))

    assert event.created_at == datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    assert event.created_at.utcoffset() == timedelta(0)


def test_an_aware_datetime_object_is_accepted() -> None:
    moment = datetime(2026, 1, 5, 12, tzinfo=timezone(timedelta(hours=2)))

    assert validate_event(raw(created_at=moment)).created_at == moment


@pytest.mark.parametrize("number", ["3", 0, -1, True, 1.0, "one"])
def test_a_sequence_number_that_is_not_a_positive_integer_is_refused(
    number: object,
) -> None:
    error = refusal(raw(sequence_number=number))

    assert error.field == "sequence_number"


def test_a_sequence_number_may_be_left_for_the_store_to_assign() -> None:
    assert validate_event(raw(sequence_number=None)).sequence_number == 0


def test_a_missing_event_id_is_generated_unique() -> None:
    first = validate_event(raw(event_id=None))
    second = validate_event(raw(event_id=None))

    assert first.event_id
    assert first.event_id != second.event_id


def test_an_event_type_no_projection_handles_is_accepted_with_its_data() -> None:
    event = validate_event(
        raw(event_type="AccountOpened", data={"user_id": "u1", "plan": "gold"})
    )

    assert event.event_type == "AccountOpened"
    assert event.data == {"user_id": "u1", "plan": "gold"}


def test_a_terminal_payment_event_may_omit_currency_and_amount() -> None:
    event = validate_event(
        raw(event_type="PaymentCompleted", data={"payment_id": "p1", "user_id": "u1"})
    )

    assert event.data == {"payment_id": "p1", "user_id": "u1"}


def test_an_amount_given_to_a_terminal_payment_event_must_be_positive() -> None:
    event = raw(
        event_type="PaymentCompleted",
        data={"payment_id": "p1", "user_id": "u1", "currency": "USD", "amount": "0"},
    )

    assert refusal(event).field == "data.amount"


def test_the_error_message_names_the_field_and_the_reason() -> None:
    error = refusal(raw(data_currency="usd"))

    assert "data.currency" in str(error)
    assert "usd" in str(error)
