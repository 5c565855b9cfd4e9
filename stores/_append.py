"""The numbering rules every event store applies while it appends."""

from __future__ import annotations

from engine import AppendResult, Event, InvalidEventError


class Numbering:
    """Numbers the events of one append and checks that they only go up.

    Start it at the store's head. Each call to :meth:`number` returns the
    position the event takes: the next one for an event numbered 0, its own
    number otherwise, provided that number is greater than every number
    stored or numbered before it.
    """

    __slots__ = ("count", "first", "last")

    def __init__(self, head: int) -> None:
        self.last = head
        self.first = 0
        self.count = 0

    def number(self, event: Event) -> int:
        wanted = event.sequence_number
        if wanted == 0:
            wanted = self.last + 1
        elif wanted <= self.last:
            raise InvalidEventError(
                f"must be greater than {self.last}, the last sequence number "
                "already stored or appended; give increasing numbers or 0 to "
                "let the store assign them",
                where=f"sequence number {wanted}",
                field="sequence_number",
            )
        if not self.count:
            self.first = wanted
        self.count += 1
        self.last = wanted
        return wanted

    def result(self) -> AppendResult:
        """What was appended; an empty append reports ``AppendResult(0, 0, 0)``."""
        if not self.count:
            return AppendResult(0, 0, 0)
        return AppendResult(self.count, self.first, self.last)


def duplicate_event_id(event_id: str, sequence_number: int) -> InvalidEventError:
    """The error for an ``event_id`` that is already in the log."""
    return InvalidEventError(
        f"event_id {event_id!r} is already stored or appears earlier in this "
        "append; event ids must be unique",
        where=f"sequence number {sequence_number}",
        field="event_id",
    )
