"""A lossless msgpack codec for events, keys and read-model snapshots.

Two extension types keep money and time exact:

* ``1`` Decimal: its ``str()`` in ASCII, so ``Decimal("0.10")`` comes back
  as ``Decimal("0.10")``, exponent included.
* ``2`` datetime: 8-byte microseconds since the Unix epoch and a 4-byte UTC
  offset in seconds, both big-endian. Naive datetimes are refused.

Floats are refused on the way in: money must never become a binary float.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import msgpack

from ._events import Event

EXT_DECIMAL = 1
EXT_DATETIME = 2
_TIME = struct.Struct(">qi")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = _EPOCH.toordinal()
_MICROSECOND = timedelta(microseconds=1)
_SCALARS = frozenset({str, int, bool, type(None), bytes})


def _ext(code: int, payload: bytes) -> msgpack.ExtType:
    # ExtType's own constructor re-checks its arguments, which are known
    # good here; building the tuple directly costs a fifth as much.
    return tuple.__new__(msgpack.ExtType, (code, payload))


def _pack_time(moment: datetime) -> msgpack.ExtType:
    if moment.tzinfo is UTC:
        micros = (moment - _EPOCH) // _MICROSECOND
        return _ext(EXT_DATETIME, _TIME.pack(micros, 0))
    return _time_ext(moment)


def _time_ext(moment: datetime) -> msgpack.ExtType:
    offset = moment.utcoffset()
    if offset is None:
        raise TypeError("cannot encode a naive datetime; give it a time zone")
    shift = offset // _MICROSECOND
    days = moment.toordinal() - _EPOCH_ORDINAL
    seconds = days * 86_400 + moment.hour * 3_600 + moment.minute * 60
    micros = (seconds + moment.second) * 1_000_000 + moment.microsecond - shift
    return _ext(EXT_DATETIME, _TIME.pack(micros, shift // 1_000_000))


def _encodable(value: object) -> object:
    # One pass that turns Decimals and times into extension types and
    # refuses floats; faster than msgpack's per-value ``default`` hook.
    kind = type(value)
    if kind is Decimal:
        return _ext(EXT_DECIMAL, str(value).encode("ascii"))
    if kind is datetime:
        return _pack_time(value)  # type: ignore[arg-type]
    if kind is dict:
        return _encodable_map(value)  # type: ignore[arg-type]
    if kind is list or kind is tuple:
        return [_encodable(item) for item in value]  # type: ignore[attr-defined]
    if kind is float or isinstance(value, float):
        raise TypeError("a binary float cannot be encoded; use Decimal")
    if isinstance(value, Decimal | datetime | dict | list | tuple):
        raise TypeError(f"cannot encode {kind.__name__} losslessly")
    return value


def _encodable_map(value: dict[Any, Any]) -> dict[Any, Any]:
    # Read-model states are flat maps: convert their values inline, and
    # recurse only into what is not a plain scalar.
    out = {}
    for key, item in value.items():
        kind = type(item)
        if kind is Decimal:
            item = _ext(EXT_DECIMAL, str(item).encode("ascii"))
        elif kind is datetime:
            item = _pack_time(item)
        elif kind not in _SCALARS:
            item = _encodable(item)
        out[key] = item
    return out


def _ext_hook(code: int, payload: bytes) -> object:
    if code == EXT_DECIMAL:
        return Decimal(payload.decode("ascii"))
    if code == EXT_DATETIME:
        micros, offset = _TIME.unpack(payload)
        moment = _EPOCH + timedelta(microseconds=micros)
        if offset:
            return moment.astimezone(timezone(timedelta(seconds=offset)))
        return moment
    return msgpack.ExtType(code, payload)


def pack(value: object) -> bytes:
    """Encode ``value``; Decimals and aware datetimes round-trip exactly."""
    return msgpack.packb(_encodable(value), use_bin_type=True)  # type: ignore[no-any-return]


def unpack(payload: bytes) -> Any:
    """Decode what :func:`pack` encoded; arrays come back as lists."""
    return msgpack.unpackb(payload, ext_hook=_ext_hook, raw=False)


def pack_key(key: Sequence[object]) -> bytes:
    """Encode a read-model key; equal keys always give equal bytes."""
    return pack(list(key))


def unpack_key(payload: bytes) -> tuple[Any, ...]:
    """Decode a key encoded by :func:`pack_key` into a tuple."""
    return tuple(unpack(payload))


def encode_event(event: Event) -> bytes:
    """Encode an event's payload; its sequence number travels beside it."""
    return pack([event.event_id, event.event_type, event.created_at, event.data])


def decode_event(sequence_number: int, payload: bytes) -> Event:
    """Decode one payload written by :func:`encode_event`."""
    event_id, event_type, created_at, data = unpack(payload)
    return Event(sequence_number, event_id, event_type, created_at, data)


def decode_events(sequence_numbers: Sequence[int], blob: bytes) -> Iterator[Event]:
    """Decode payloads concatenated into one ``blob``, in order.

    ``sequence_numbers[i]`` belongs to the i-th payload in ``blob``; a count
    that does not match raises ``ValueError`` rather than misnumbering.
    """
    unpacker = msgpack.Unpacker(ext_hook=_ext_hook, raw=False)
    unpacker.feed(blob)
    numbers = iter(sequence_numbers)
    for event_id, event_type, created_at, data in unpacker:
        number = next(numbers, None)
        if number is None:
            raise ValueError("more payloads than sequence numbers")
        yield Event(number, event_id, event_type, created_at, data)
    if next(numbers, None) is not None:
        raise ValueError("more sequence numbers than payloads")
