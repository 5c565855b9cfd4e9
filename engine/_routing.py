"""Stable routing of users to shards.

The route of a user is a CRC-32 of its UTF-8 id: the same in every process
and on every machine (unlike Python's salted built-in hashing). It is computed once,
when an event is appended, and stored beside it, so the dispatcher can send
rows to shards without decoding them. Any shard count works from the same
route: ``shard = route % shard_count``.
"""

from __future__ import annotations

import zlib


def route_of(user_id: str | None) -> int:
    """The stable route of ``user_id``; events without a user route to 0."""
    if user_id is None:
        return 0
    return zlib.crc32(user_id.encode("utf-8"))


def shard_of(user_id: str | None, shard_count: int) -> int:
    """The shard, out of ``shard_count``, that owns ``user_id``."""
    return route_of(user_id) % shard_count
