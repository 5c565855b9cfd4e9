"""Reading a JSON Lines file of events, line by line, with exact errors."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ._errors import InvalidEventError
from ._events import Event, parse_json_line


@dataclass(frozen=True)
class Rejected:
    """One line left out by ``--skip-invalid``, and why."""

    line: int
    error: InvalidEventError


@dataclass
class JsonLinesReader:
    """Yields the valid events of ``lines``, numbered from 1 as in the file.

    The first invalid line raises :class:`InvalidEventError` naming
    ``source`` and the line, unless ``skip_invalid``: then each one is kept
    in :attr:`rejected` and reading goes on. ``after`` is the event store's
    head: explicit sequence numbers must rise above it and above each other.
    ``line`` is the number of the line last yielded, so an error raised by
    the store while appending it can be located.
    """

    lines: Iterable[str | bytes]
    source: str
    after: int = 0
    skip_invalid: bool = False
    rejected: list[Rejected] = field(default_factory=list)
    line: int = 0

    def __iter__(self) -> Iterator[Event]:
        last = self.after
        seen: set[str] = set()
        for number, line in enumerate(self.lines, start=1):
            try:
                text = _text(line, first=number == 1)
                if not text.strip():
                    continue
                event = self._check(parse_json_line(text), last, seen)
            except InvalidEventError as error:
                self._reject(number, error)
                continue
            last = event.sequence_number or last + 1
            seen.add(event.event_id)
            self.line = number
            yield event

    @staticmethod
    def _check(event: Event, last: int, seen: set[str]) -> Event:
        if event.sequence_number and event.sequence_number <= last:
            raise InvalidEventError(
                f"sequence number {event.sequence_number} does not increase "
                f"(the previous one is {last})",
                field="sequence_number",
            )
        if event.event_id in seen:
            raise InvalidEventError(
                f"event id {event.event_id!r} appears twice in the file",
                field="event_id",
            )
        return event

    def _reject(self, number: int, error: InvalidEventError) -> None:
        located = error.located(f"{self.source} line {number}")
        if not self.skip_invalid:
            raise located
        self.rejected.append(Rejected(number, located))


def _text(line: str | bytes, first: bool) -> str:
    # Lines may come as bytes, so one undecodable line is one bad line.
    if isinstance(line, str):
        return line.removeprefix("\ufeff") if first else line
    try:
        return line.decode("utf-8-sig" if first else "utf-8")
    except UnicodeDecodeError as error:
        raise InvalidEventError(f"is not UTF-8 text ({error.reason})") from None
