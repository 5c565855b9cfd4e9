"""Releasing a quarantined user: replay or skip its parked events."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ._errors import ModelNotFound
from ._fold import Projector
from ._parking import DEAD_LETTERS, PARKED, QUARANTINE, REPLAYED, SKIPPED
from ._projection import Registry
from ._routing import shard_of
from ._stores import Flush, ShardCheckpoint, SnapshotStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Release:
    """What :func:`release_user` did."""

    user_id: str
    letters: int
    replayed: bool


def release_user(
    store: SnapshotStore, registry: Registry, user_id: str, replay: bool
) -> Release:
    """Lift ``user_id``'s quarantine in one atomic flush, replaying its
    parked events in sequence order (``replay``) or marking them skipped.

    Begins a new generation first, so an engine still running on the same
    stores is fenced out and stops. A replayed event that fails again raises
    :class:`ProjectionFailed` and nothing is written.
    """
    # Take the user's shard over, as a new owner of a new generation.
    generation = store.begin_generation()
    checkpoints = store.read_checkpoints()
    count = checkpoints[0].shard_count if checkpoints else 1
    shard = shard_of(user_id, count)
    position = next((c.sequence_number for c in checkpoints if c.shard == shard), 0)
    owner = store.claim_shard(generation, shard)

    # Load the user's models, dead letters and quarantine.
    projector = Projector(registry)
    for name, key, state in store.load_models(shard, count):
        if key[0] == user_id:
            projector.load(name, key, state)
    quarantine = projector.models[QUARANTINE.name].get((user_id,))
    if quarantine is None or not quarantine.active:
        raise ModelNotFound(QUARANTINE.name, (user_id,))

    # Lift the quarantine, then replay or skip each parked event in order.
    quarantine.active = False
    projector.mark_dirty(QUARANTINE.name, (user_id,))
    letters = sorted(
        (
            letter
            for key, letter in projector.models[DEAD_LETTERS.name].items()
            if key[0] == user_id and letter.status == PARKED
        ),
        key=lambda letter: letter.sequence_number,
    )
    for letter in letters:
        if replay:
            projector.apply(letter.to_event())
        letter.status = REPLAYED if replay else SKIPPED
        projector.mark_dirty(DEAD_LETTERS.name, (user_id, letter.sequence_number))

    # Write it all with the shard's checkpoint unchanged.
    checkpoint = ShardCheckpoint(shard, count, position)
    store.write_flush(Flush(checkpoint, projector.dirty_records(), owner))
    logger.info("released user %s: %s dead letters", user_id, len(letters))
    return Release(user_id, len(letters), replay)
