"""Poison events: parking a user's events that a projection cannot apply.

When a handler keeps failing on an event, its user is quarantined: that
event and every later event of the same user are parked as dead letters,
while every other user keeps flowing. Dead letters and quarantines are read
models of two reserved projections, so they are flushed atomically with
the checkpoint that covers them and reloaded with the shard.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ._events import Event
from ._projection import Projection

PARKED, REPLAYED, SKIPPED = "parked", "replayed", "skipped"


@dataclass(slots=True)
class DeadLetter:
    """One parked event and why it was parked."""

    user_id: str
    sequence_number: int
    event_id: str
    event_type: str
    created_at: datetime
    data: dict[str, Any]
    reason: str
    status: str = PARKED
    last_event_version: int = 0

    def to_event(self) -> Event:
        return Event(
            self.sequence_number,
            self.event_id,
            self.event_type,
            self.created_at,
            dict(self.data),
        )


@dataclass(slots=True)
class Quarantine:
    """A user whose events are parked from ``since`` on."""

    user_id: str
    since: int
    reason: str
    active: bool = True
    last_event_version: int = 0


DEAD_LETTERS = Projection(
    name="dead_letters",
    model=DeadLetter,
    key_fields=("user_id", "sequence_number"),
    key=lambda event: (event.sequence_number,),
    handlers={},
)

QUARANTINE = Projection(
    name="quarantine",
    model=Quarantine,
    key_fields=("user_id",),
    key=lambda event: (),
    handlers={},
)

RESERVED = (DEAD_LETTERS, QUARANTINE)


def dead_letter(event: Event, reason: str) -> DeadLetter:
    """The dead letter that parks ``event``."""
    return DeadLetter(
        event.data["user_id"],
        event.sequence_number,
        event.event_id,
        event.event_type,
        event.created_at,
        dict(event.data),
        reason,
        last_event_version=event.sequence_number,
    )


def parked(
    states: list[dict[str, Any]], user_id: str | None = None
) -> list[dict[str, Any]]:
    """The dead letters still parked, of ``user_id`` or of everyone, in
    sequence order."""
    chosen = [
        state
        for state in states
        if state["status"] == PARKED and user_id in (None, state["user_id"])
    ]
    return sorted(chosen, key=lambda state: state["sequence_number"])
