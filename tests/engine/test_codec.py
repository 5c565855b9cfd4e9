"""The msgpack codec keeps money and time exact and refuses floats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import (
    Event,
    decode_event,
    decode_events,
    encode_event,
    pack,
    pack_key,
    unpack,
    unpack_key,
)

MOMENT = datetime(2026, 1, 5, 10, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    "text", ["0.10", "0.1", "10", "1E+3", "-0.00", "-15.50", "12345678901234567.89"]
)
def test_a_decimal_comes_back_with_its_exponent(text: str) -> None:
    back = unpack(pack(Decimal(text)))

    assert isinstance(back, Decimal)
    assert str(back) == text


def test_decimals_inside_containers_come_back_exactly() -> None:
    value = {"balance": Decimal("0.10"), "history": [Decimal("1.000"), Decimal("2")]}

    back = unpack(pack(value))

    assert back == value
    assert [str(item) for item in back["history"]] == ["1.000", "2"]


def test_a_utc_datetime_comes_back_equal_and_in_utc() -> None:
    back = unpack(pack(MOMENT))

    assert back == MOMENT
    assert back.utcoffset() == timedelta(0)


def test_a_datetime_with_an_offset_comes_back_with_that_offset() -> None:
    moment = datetime(2026, 1, 5, 12, 30, 1, 5, tzinfo=timezone(timedelta(hours=2)))

    back = unpack(pack(moment))

    assert back == moment
    assert back.utcoffset() == timedelta(hours=2)
    assert back.isoformat() == moment.isoformat()


def test_a_datetime_before_the_epoch_comes_back_equal() -> None:
    moment = datetime(1931, 3, 1, 8, 0, tzinfo=UTC)

    assert unpack(pack(moment)) == moment


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(TypeError, match="naive"):
        pack(datetime(2026, 1, 5, 10, 0))


@pytest.mark.parametrize(
    "value", [0.1, {"amount": 0.1}, [Decimal("1"), 2.5], {"a": {"b": [1.0]}}, (0.5,)]
)
def test_a_binary_float_is_refused_wherever_it_hides(value: object) -> None:
    with pytest.raises(TypeError, match="float"):
        pack(value)


def test_an_event_comes_back_from_its_payload_exactly() -> None:
    event = Event(
        42,
        "e-42",
        "WalletCredited",
        MOMENT,
        {"user_id": "u1", "currency": "USD", "amount": Decimal("0.10")},
    )

    back = decode_event(42, encode_event(event))

    assert back == event
    assert str(back.data["amount"]) == "0.10"


def test_concatenated_payloads_decode_in_order_with_their_numbers() -> None:
    events = [Event(n, f"e-{n}", "X", MOMENT, {"user_id": f"u{n}"}) for n in (3, 5, 9)]
    blob = b"".join(encode_event(event) for event in events)

    assert list(decode_events([3, 5, 9], blob)) == events


@pytest.mark.parametrize("numbers", [[3, 5], [3, 5, 9, 11]])
def test_a_count_of_numbers_that_does_not_match_the_payloads_is_refused(
    numbers: list[int],
) -> None:
    events = [Event(n, f"e-{n}", "X", MOMENT, {}) for n in (3, 5, 9)]
    blob = b"".join(encode_event(event) for event in events)

    with pytest.raises(ValueError):
        list(decode_events(numbers, blob))


def test_equal_keys_pack_to_equal_bytes_and_come_back_as_tuples() -> None:
    assert pack_key(("u1", "USD")) == pack_key(["u1", "USD"])
    assert pack_key(("u1", "USD")) != pack_key(("u1", "EUR"))
    assert unpack_key(pack_key(("u1", "USD"))) == ("u1", "USD")


offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@settings(max_examples=100, deadline=None)
@given(moment=st.datetimes(timezones=st.just(UTC) | offsets))
def test_any_aware_datetime_comes_back_equal_with_its_offset(moment: datetime) -> None:
    back = unpack(pack({"at": moment, "history": [moment]}))

    assert back["at"] == moment
    assert back["at"].utcoffset() == moment.utcoffset()
    assert back["history"] == [moment]
