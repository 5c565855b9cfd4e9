"""How far the log may be read without skipping a number that may still commit.

A database sequence hands out numbers before the writer commits, so event 8
can become visible while 7 is still in an open transaction, and 7 may never
appear at all when that transaction rolls back. :class:`HighWaterMark` lets
the reader pass a missing number only once it is settled: it appeared, or it
has stayed missing for ``timeout`` seconds since this process first saw it
missing, measured on the process's own monotonic clock. A number passed that
way is a permanent hole: counted, logged, and never waited for again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from ._stores import StoredRow

logger = logging.getLogger(__name__)


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
        # Missing numbers seen so far, as ranges [start, end) above the mark,
        # each with the time it was first seen missing.
        self._gaps: list[tuple[int, int, float]] = []

    def settle(
        self, after: int, rows: Sequence[StoredRow], settled_below: int = 0
    ) -> list[StoredRow]:
        """The leading part of ``rows`` (read after ``after``) that is safe to
        apply: it stops before the first gap that may still fill.

        ``settled_below`` says that no number missing below it can appear any
        more (the store saw no writer left that could commit one, see
        :meth:`engine.EventStore.writers_open`): such gaps are holes at once.
        """
        if not self.gaps_may_fill:
            self.mark = max(self.mark, rows[-1].sequence_number if rows else after)
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
        self.mark = max(self.mark, position)
        self._gaps = [gap for gap in self._gaps if gap[1] > self.mark + 1]
        return safe

    def _note_gaps(self, after: int, rows: Sequence[StoredRow], now: float) -> None:
        previous = after
        for row in rows:
            first = max(previous, self.mark) + 1
            if first < row.sequence_number and self._since(first) is None:
                self._gaps.append((first, row.sequence_number, now))
                logger.debug(
                    "waiting for sequence numbers %s to %s",
                    first,
                    row.sequence_number - 1,
                )
            previous = row.sequence_number

    def _since(self, number: int) -> float | None:
        for start, end, since in self._gaps:
            if start <= number < end:
                return since
        return None

    def _expired(self, first: int, number: int, now: float, settled: bool) -> bool:
        # Has the gap [first, number) been missing for the whole timeout, or
        # can it no longer fill?
        since = self._since(first)
        if since is None:
            return False
        if not settled and now - since < self.timeout:
            return False
        self.holes += number - first
        logger.warning(
            "sequence numbers %s to %s never committed (%.1f s after first "
            "seen missing); treating them as permanent holes (%s so far)",
            first,
            number - 1,
            now - since,
            self.holes,
        )
        return True

    def deadline(self) -> float | None:
        """When the earliest pending gap, if any, becomes a permanent hole (on
        the clock given at construction)."""
        if not self._gaps:
            return None
        return min(since for _, _, since in self._gaps) + self.timeout
