"""Rules every snapshot store shares: routing a key, and a new layout."""

from __future__ import annotations

from typing import Any

from engine import ModelRecord, ShardCheckpoint, pack, pack_key, route_of


def route_of_key(key: tuple[Any, ...]) -> int:
    """The route of a read model: the route of its user, the key's first part.

    A first part that is not a string routes like an event without a user,
    so a model always lives on the shard that receives its events.
    """
    user = key[0] if key else None
    return route_of(user if isinstance(user, str) else None)


def encode_record(model: ModelRecord) -> tuple[str, bytes, int, bytes]:
    """A model as stored: ``(projection, packed key, route, packed state)``.

    Raises ``TypeError`` for a state the codec refuses, such as a float.
    """
    key = model.key
    return model.projection, pack_key(key), route_of_key(key), pack(model.state)


def layout(shard_count: int, sequence_number: int) -> list[ShardCheckpoint]:
    """The checkpoints of ``shard_count`` shards, all at ``sequence_number``."""
    if shard_count < 1:
        raise ValueError(f"a layout needs at least one shard, not {shard_count}")
    if sequence_number < 0:
        raise ValueError(f"a checkpoint cannot be negative, not {sequence_number}")
    return [
        ShardCheckpoint(shard, shard_count, sequence_number)
        for shard in range(shard_count)
    ]
