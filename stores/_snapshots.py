"""Rules every snapshot store shares: routing a key, a new layout, and who may
write a shard."""

from __future__ import annotations

from typing import Any

from engine import (
    ModelRecord,
    Owner,
    OwnershipLost,
    ShardCheckpoint,
    pack,
    pack_key,
    route_of,
)


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


def check_claim(shard: int, current: int, generation: int) -> None:
    """Raise :class:`OwnershipLost` unless ``generation`` may claim ``shard``
    while the store is at generation ``current``: only the current one may.

    A ``generation`` above ``current`` was never begun here (or the store was
    cleared since), so it owns nothing either.
    """
    if current > generation:
        raise OwnershipLost(shard, f"generation {current} is current, not {generation}")
    if current < generation:
        raise OwnershipLost(
            shard,
            f"generation {generation} was never begun: the store is at generation "
            f"{current}; was it cleared, or begin_generation not called?",
        )


def check_owner(shard: int, current: Owner, presented: Owner) -> None:
    """Raise :class:`OwnershipLost` unless ``presented`` is ``current``, the
    owner ``shard`` has in the store (epoch 0 for a shard never claimed)."""
    check_claim(shard, current.generation, presented.generation)
    if current.epoch != presented.epoch:
        raise OwnershipLost(
            shard,
            f"epoch {current.epoch} of generation {current.generation} is current, "
            f"not epoch {presented.epoch}",
        )
