"""Reading JSON Lines: line numbers, increasing numbers, unique ids."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from engine import InvalidEventError, JsonLinesReader


def line(number: int | None = None, event_id: str | None = None, **data: Any) -> str:
    event: dict[str, Any] = {
        "event_type": "WalletCredited",
        "created_at": "2026-01-05T10:00:00Z",
        "data": {"user_id": "u1", "currency": "USD", "amount": "1.00", **data},
    }
    if number is not None:
        event["sequence_number"] = number
    if event_id is not None:
        event["event_id"] = event_id
    return json.dumps(event)


def read_all(reader: JsonLinesReader) -> list[Any]:
    return list(reader)


def refusal(reader: JsonLinesReader) -> InvalidEventError:
    with pytest.raises(InvalidEventError) as caught:
        read_all(reader)
    return caught.value


def test_valid_lines_come_out_in_order_and_blank_lines_are_skipped() -> None:
    lines = [line(1, "a"), "", "   ", line(2, "b"), line(event_id="c")]

    events = read_all(JsonLinesReader(lines, "in.jsonl"))

    assert [e.event_id for e in events] == ["a", "b", "c"]
    assert [e.sequence_number for e in events] == [1, 2, 0]


def test_the_reader_tells_which_line_it_yielded_last() -> None:
    reader = JsonLinesReader([line(1), "", line(2)], "in.jsonl")
    seen = []

    for _event in reader:
        seen.append(reader.line)

    assert seen == [1, 3]


def test_the_first_invalid_line_is_named_by_file_and_line_number() -> None:
    lines = [line(1), "", line(2, amount="12.3.4"), "{not json"]

    error = refusal(JsonLinesReader(lines, "in.jsonl"))

    assert error.where == "in.jsonl line 3"
    assert error.field == "data.amount"
    assert str(error).startswith("in.jsonl line 3, field 'data.amount': ")


def test_a_sequence_number_that_does_not_increase_is_refused() -> None:
    error = refusal(JsonLinesReader([line(5), line(5)], "in.jsonl"))

    assert error.where == "in.jsonl line 2"
    assert error.field == "sequence_number"


def test_a_sequence_number_at_or_below_the_store_head_is_refused() -> None:
    error = refusal(JsonLinesReader([line(10)], "in.jsonl", after=10))

    assert error.where == "in.jsonl line 1"
    assert "10" in error.reason


def test_an_explicit_number_must_rise_above_a_line_numbered_by_the_store() -> None:
    reader = JsonLinesReader([line(None), line(3)], "in.jsonl", after=3)

    error = refusal(reader)

    assert error.where == "in.jsonl line 2"


def test_an_event_id_repeated_in_the_file_is_refused() -> None:
    error = refusal(JsonLinesReader([line(1, "x"), line(2, "x")], "in.jsonl"))

    assert error.where == "in.jsonl line 2"
    assert error.field == "event_id"


def test_json_number_amounts_are_read_exactly() -> None:
    text = line(1).replace('"1.00"', "0.1")

    (event,) = read_all(JsonLinesReader([text], "in.jsonl"))

    assert event.data["amount"] == Decimal("0.1")


def test_skip_invalid_keeps_the_valid_lines_and_records_each_rejected_one() -> None:
    lines = [
        line(1, "a"),
        "{oops",
        line(2, "b", currency="usd"),
        line(3, "c"),
        line(3, "d"),
        line(4, "a"),
        line(5, "e", amount="-1"),
        line(6, "f"),
    ]
    reader = JsonLinesReader(lines, "in.jsonl", skip_invalid=True)

    events = read_all(reader)

    assert [e.event_id for e in events] == ["a", "c", "f"]
    assert [r.line for r in reader.rejected] == [2, 3, 5, 6, 7]
    assert [r.error.where for r in reader.rejected] == [
        f"in.jsonl line {n}" for n in (2, 3, 5, 6, 7)
    ]
    assert [r.error.field for r in reader.rejected] == [
        "",
        "data.currency",
        "sequence_number",
        "event_id",
        "data.amount",
    ]
