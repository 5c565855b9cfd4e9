"""How far the log may be read without skipping a number that may still commit.

A database sequence hands out numbers before the writer commits, so event 8
can become visible while 7 is still in an open transaction, and 7 may never
appear at all when that transaction rolls back. :class:`HighWaterMark` lets
the reader pass a missing number only once it is settled: it appeared; or
no writer that could still commit it is open (one that began before the
number was first seen missing); or it has stayed missing for ``timeout``
seconds, on this process's own monotonic clock, counted from when it was
first seen missing or, later, from the last moment a writer that could fill
it was seen at work. A number passed that way is a permanent hole: counted,
logged, and never waited for again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from ._stores import OpenWriter, StoredRow

logger = logging.getLogger(__name__)

# Writers' open times come from the store's clock, gap times from ours: a
# writer open for up to this much less than a gap's age may still hold it.
CLOCK_MARGIN = timedelta(seconds=1)


class HighWaterMark:
    """The reader's safe position in a log whose gaps may still fill.

    ``mark`` is the highest number below which every number is settled:
    either seen or declared a permanent hole. Numbers at or below the mark
    are never waited for again, so re-reading (after a shard restart) does
    not wait twice.
    """

    def __init__(
        self,
        gaps_may_fill: bool,
        timeout: float,
        mark: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gaps_may_fill = gaps_may_fill
        self.timeout = timeout
        self.mark = mark
        self.holes = 0
        self._clock = clock
        self._gaps: list[_Gap] = []

    def note(self, after: int, rows: Sequence[StoredRow]) -> bool:
        """Remember the gaps in ``rows`` (read after ``after``) from now on;
        whether any gap is pending."""
        if self.gaps_may_fill:
            self._note_gaps(after, rows, self._clock())
        return bool(self._gaps)

    def weigh(self, writers: Sequence[OpenWriter]) -> int:
        """Take in the writers open now (asked after the rows were read).

        A gap's timeout starts again whenever a writer that could fill it is
        running a statement. Returns the number below which no gap can fill
        any more (0 for none): every gap up to there has no writer open that
        began before the gap was first seen. Read again before passing them
        with :meth:`settle`."""
        now = self._clock()
        settled_below = 0
        open_below = False
        for gap in sorted(self._gaps, key=lambda gap: gap.start):
            waited = now - gap.first_seen
            since = timedelta(seconds=waited) - CLOCK_MARGIN
            able = [writer for writer in writers if writer.open_for >= since]
            if any(writer.busy for writer in able):
                gap.quiet_since = now
            open_below = open_below or bool(able)
            if not open_below:
                settled_below = gap.end
        return settled_below

    def settle(
        self, after: int, rows: Sequence[StoredRow], settled_below: int = 0
    ) -> list[StoredRow]:
        """The leading part of ``rows`` (read after ``after``) that is safe to
        apply: it stops before the first gap that may still fill.

        Gaps that end at or below ``settled_below`` (see :meth:`weigh`) are
        passed as holes at once; the others once no writer has worked on
        them for ``timeout`` seconds since they were first seen missing.
        """
        if not self.gaps_may_fill or _gapless(after, rows):
            self._pass(rows[-1].sequence_number if rows else after)
            return list(rows)
        now = self._clock()
        self._note_gaps(after, rows, now)
        safe: list[StoredRow] = []
        position = after
        for row in rows:
            number = row.sequence_number
            first = max(position, self.mark) + 1
            if first < number and not self._expired(
                first, number, now, number <= settled_below
            ):
                break
            safe.append(row)
            position = number
        self._pass(position)
        return safe

    def _pass(self, position: int) -> None:
        # Everything up to ``position`` is settled; forget the gaps below it.
        self.mark = max(self.mark, position)
        self._gaps = [gap for gap in self._gaps if gap.end > self.mark + 1]

    def _note_gaps(self, after: int, rows: Sequence[StoredRow], now: float) -> None:
        if _gapless(after, rows):
            return
        previous = after
        for row in rows:
            first = max(previous, self.mark) + 1
            if first < row.sequence_number and self._gap_of(first) is None:
                self._gaps.append(_Gap(first, row.sequence_number, now, now))
                logger.debug(
                    "waiting for sequence numbers %s to %s",
                    first,
                    row.sequence_number - 1,
                )
            previous = row.sequence_number

    def _gap_of(self, number: int) -> _Gap | None:
        for gap in self._gaps:
            if gap.start <= number < gap.end:
                return gap
        return None

    def _expired(self, first: int, number: int, now: float, settled: bool) -> bool:
        # May the reader pass the gap [first, number) as a permanent hole?
        gap = self._gap_of(first)
        if gap is None:
            return False
        if not settled and now - gap.quiet_since < self.timeout:
            return False
        self.holes += number - first
        logger.warning(
            "sequence numbers %s to %s %s; treating them as permanent holes "
            "(%s so far)",
            first,
            number - 1,
            "can no longer commit" if settled else "stayed missing past the timeout",
            self.holes,
        )
        return True

    def deadline(self) -> float | None:
        """When the earliest pending gap, if no writer works on it, becomes
        a permanent hole (on the clock given at construction)."""
        if not self._gaps:
            return None
        return min(gap.quiet_since for gap in self._gaps) + self.timeout


def _gapless(after: int, rows: Sequence[StoredRow]) -> bool:
    # Rows strictly increase, so they leave no number out exactly when the
    # last is as far past ``after`` as there are rows.
    return not rows or rows[-1].sequence_number - after == len(rows)


@dataclass(slots=True)
class _Gap:
    """Missing numbers [start, end), first seen missing at ``first_seen``;
    their timeout runs from ``quiet_since``."""

    start: int
    end: int
    first_seen: float
    quiet_since: float
