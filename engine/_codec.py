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


def _default(value: object) -> msgpack.ExtType:
    if isinstance(value, Decimal):
        return msgpack.ExtType(EXT_DECIMAL, str(value).encode("ascii"))
    if isinstance(value, datetime):
        return msgpack.ExtType(EXT_DATETIME, _pack_time(value))
    raise TypeError(f"cannot encode {type(value).__name__} losslessly")


def _pack_time(moment: datetime) -> bytes:
    offset = moment.utcoffset()
    if offset is None:
        raise TypeError("cannot encode a naive datetime; give it a time zone")
    micros = (moment - _EPOCH) // timedelta(microseconds=1)
    return _TIME.pack(micros, int(offset.total_seconds()))


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


def _float_refused(value: float) -> None:
    raise TypeError("a binary float cannot be encoded; use Decimal")


_packer_options: dict[str, Any] = {"default": _default, "use_bin_type": True}


def pack(value: object) -> bytes:
    """Encode ``value``; Decimals and aware datetimes round-trip exactly."""
    _refuse_floats(value)
    return msgpack.packb(value, **_packer_options)  # type: ignore[no-any-return]


def unpack(payload: bytes) -> Any:
    """Decode what :func:`pack` encoded; arrays come back as lists."""
    return msgpack.unpackb(payload, ext_hook=_ext_hook, raw=False)


def _refuse_floats(value: object) -> None:
    if isinstance(value, float):
        _float_refused(value)
    elif isinstance(value, dict):
        for item in value.values():
            _refuse_floats(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_floats(item)


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
