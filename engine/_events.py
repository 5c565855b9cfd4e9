"""The event envelope, the five payment event types, and their validation.

Events are validated once, where they enter (import, generation, an HTTP
edge), by :func:`validate_event`. Inside the engine they travel as plain
:class:`Event` records and are trusted.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
)

from ._errors import InvalidEventError

WALLET_CREDITED = "WalletCredited"
WALLET_DEDUCTED = "WalletDeducted"
PAYMENT_INITIATED = "PaymentInitiated"
PAYMENT_COMPLETED = "PaymentCompleted"
PAYMENT_FAILED = "PaymentFailed"

MAX_DIGITS = 30
MAX_PLACES = 18
MAX_SEQUENCE_NUMBER = 2**63 - 1
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DECIMAL_TEXT = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$")


@dataclass(slots=True)
class Event:
    """One validated event as the engine handles it.

    ``sequence_number`` is the event's global position in the log; it is 0
    only before the event store has assigned one.
    """

    sequence_number: int
    event_id: str
    event_type: str
    created_at: datetime
    data: dict[str, Any]

    @property
    def user_id(self) -> str | None:
        user = self.data.get("user_id")
        return user if isinstance(user, str) else None


def exact_decimal(value: object) -> Decimal:
    """Return ``value`` as a finite Decimal, refusing anything read as a float."""
    if isinstance(value, bool):
        raise ValueError(f"is not a decimal number: {value!r}")
    if isinstance(value, float):
        raise ValueError('is a binary float; send a decimal string such as "10.25"')
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, str) and _DECIMAL_TEXT.match(value.strip()):
        number = Decimal(value.strip())
    else:
        raise ValueError(f"is not a decimal number: {value!r}")
    if not number.is_finite():
        raise ValueError("must be a finite number")
    if number and number.adjusted() >= MAX_DIGITS:
        raise ValueError(f"is larger than 10^{MAX_DIGITS}")
    if int(number.as_tuple().exponent) < -MAX_PLACES:
        raise ValueError(f"has more than {MAX_PLACES} decimal places")
    return number


def _positive_decimal(value: object) -> Decimal:
    number = exact_decimal(value)
    if number <= 0:
        raise ValueError("must be greater than zero")
    return number


def parse_time(value: object) -> datetime:
    """Parse an RFC 3339 time (a plain date means midnight UTC) into UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and _DATE_ONLY.match(value):
        moment = datetime.fromisoformat(value).replace(tzinfo=UTC)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"is not an RFC 3339 time: {value!r}") from None
    else:
        raise ValueError(f"is not an RFC 3339 time: {value!r}")
    if moment.tzinfo is None:
        raise ValueError("has no time zone offset; add 'Z' or '+hh:mm'")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"is out of range in UTC: {value!r}") from None


def format_time(moment: datetime) -> str:
    """Format a UTC time as RFC 3339 with a ``Z`` suffix."""
    text = moment.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


Amount = Annotated[Decimal, BeforeValidator(_positive_decimal)]
Balance = Annotated[Decimal, BeforeValidator(exact_decimal)]
Currency = Annotated[str, BeforeValidator(lambda v: _currency(v))]
Identifier = Annotated[str, BeforeValidator(lambda v: _identifier(v))]


class _Data(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    user_id: Identifier


class _WalletChanged(_Data):
    currency: Currency
    amount: Amount
    new_balance: Balance | None = None


class _PaymentInitiated(_Data):
    payment_id: Identifier
    currency: Currency
    amount: Amount


class _PaymentCompleted(_Data):
    payment_id: Identifier
    currency: Currency | None = None
    amount: Amount | None = None


class _PaymentFailed(_Data):
    payment_id: Identifier
    reason: str | None = None


class _OtherData(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    user_id: Identifier | None = None


_DATA_MODELS: dict[str, type[BaseModel]] = {
    WALLET_CREDITED: _WalletChanged,
    WALLET_DEDUCTED: _WalletChanged,
    PAYMENT_INITIATED: _PaymentInitiated,
    PAYMENT_COMPLETED: _PaymentCompleted,
    PAYMENT_FAILED: _PaymentFailed,
}


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sequence_number: Annotated[int, BeforeValidator(lambda v: _strict_int(v))] = 0
    event_id: Identifier | None = None
    event_type: Identifier
    created_at: Annotated[datetime, BeforeValidator(parse_time)]
    data: dict[str, Any]


def _identifier(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-blank string, not {value!r}")
    return value


def _currency(value: object) -> str:
    if not isinstance(value, str) or not _CURRENCY.match(value):
        raise ValueError(
            f"must be a three-letter upper-case currency code, not {value!r}"
        )
    return value


def _strict_int(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be a positive integer, not {value!r}")
    if not 0 < value <= MAX_SEQUENCE_NUMBER:
        raise ValueError(f"must be a positive integer up to {MAX_SEQUENCE_NUMBER}")
    return value


def validate_event(raw: object) -> Event:
    """Validate one decoded JSON object and return it as an :class:`Event`.

    Raises :class:`InvalidEventError` naming the field at fault. An absent
    ``event_id`` is generated; an absent ``sequence_number`` becomes 0, for
    the event store to assign.
    """
    if not isinstance(raw, dict):
        raise InvalidEventError("an event must be a JSON object")
    try:
        envelope = _Envelope.model_validate(raw)
        data_model = _DATA_MODELS.get(envelope.event_type, _OtherData)
        data = data_model.model_validate(envelope.data)
    except ValidationError as error:
        raise _translate(error, inside_data="envelope" in locals()) from None
    fields = data.model_dump(exclude_none=True)
    _refuse_floats(fields, "data")
    return Event(
        sequence_number=envelope.sequence_number,
        event_id=envelope.event_id or str(uuid.uuid4()),
        event_type=envelope.event_type,
        created_at=envelope.created_at,
        data=fields,
    )


def _refuse_floats(value: object, where: str) -> None:
    # Extra data fields are kept as given; a float among them would reach
    # the log and lose its exact value.
    if isinstance(value, float):
        raise InvalidEventError("is a binary float; send a decimal string", field=where)
    if isinstance(value, dict):
        for name, item in value.items():
            _refuse_floats(item, f"{where}.{name}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _refuse_floats(item, f"{where}[{index}]")


def _translate(error: ValidationError, *, inside_data: bool) -> InvalidEventError:
    first = error.errors()[0]
    loc = ".".join(str(part) for part in first["loc"])
    field = f"data.{loc}" if inside_data and loc else loc
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "missing":
        message = "is required but missing"
    return InvalidEventError(message, field=field)


def parse_json_line(text: str) -> Event:
    """Decode and validate one JSON Lines record, reading numbers exactly."""
    try:
        raw = json.loads(text, parse_float=Decimal, parse_constant=_no_constant)
    except (ValueError, InvalidOperation) as error:
        raise InvalidEventError(f"is not valid JSON ({error})") from None
    return validate_event(raw)


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number")


def event_to_json(event: Event) -> dict[str, Any]:
    """Return the interchange form of an event: decimals as strings; a
    sequence number not yet assigned is left out."""
    number = {"sequence_number": event.sequence_number} if event.sequence_number else {}
    return {
        **number,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "created_at": format_time(event.created_at),
        "data": {key: to_plain(value) for key, value in event.data.items()},
    }


def to_plain(value: object) -> object:
    """Turn Decimals (in plain notation, never ``1E-7``) and times into
    strings, recursively, for JSON output."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, dict):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(item) for item in value]
    return value
