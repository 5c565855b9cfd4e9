"""The high-water mark: gaps that may still fill are waited for, then passed."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import HighWaterMark, OpenWriter, StoredRow


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def rows(*numbers: int) -> list[StoredRow]:
    return [StoredRow(n, 0, b"") for n in numbers]


def numbers(settled: list[StoredRow]) -> list[int]:
    return [row.sequence_number for row in settled]


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_contiguous_rows_pass_at_once(clock: Clock) -> None:
    mark = HighWaterMark(True, 5.0, clock=clock)
    assert numbers(mark.settle(0, rows(1, 2, 3))) == [1, 2, 3]
    assert mark.mark == 3
    assert mark.deadline() is None


def test_a_gap_holds_back_what_follows_it_until_it_fills(clock: Clock) -> None:
    mark = HighWaterMark(True, 5.0, clock=clock)
    assert numbers(mark.settle(0, rows(1, 2, 4, 5))) == [1, 2]
    assert mark.deadline() == 105.0
    clock.now += 4.9
    assert numbers(mark.settle(2, rows(4, 5))) == []
    assert numbers(mark.settle(2, rows(3, 4, 5))) == [3, 4, 5]
    assert mark.holes == 0
    assert mark.deadline() is None


def test_a_gap_that_outlives_the_timeout_is_a_counted_hole(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    mark = HighWaterMark(True, 5.0, clock=clock)
    mark.settle(0, rows(1, 2, 6))
    clock.now += 5.0
    with caplog.at_level(logging.WARNING, logger="engine._high_water"):
        assert numbers(mark.settle(2, rows(6))) == [6]
    assert mark.holes == 3
    assert "3 to 5" in caplog.text
    assert mark.deadline() is None


def test_the_wait_runs_from_when_each_gap_was_first_seen(clock: Clock) -> None:
    # Case A: 3 and 7 never commit; both are seen missing at the first read,
    # so the reader waits one timeout, not two.
    mark = HighWaterMark(True, 5.0, clock=clock)
    assert numbers(mark.settle(0, rows(1, 2, 4, 5, 6, 8, 9, 10))) == [1, 2]
    clock.now += 5.0
    settled = mark.settle(2, rows(4, 5, 6, 8, 9, 10))
    assert numbers(settled) == [4, 5, 6, 8, 9, 10]
    assert mark.holes == 2


def test_a_gap_seen_later_waits_its_own_full_timeout(clock: Clock) -> None:
    mark = HighWaterMark(True, 5.0, clock=clock)
    mark.settle(0, rows(1, 3))
    clock.now += 3.0
    assert numbers(mark.settle(0, rows(1, 2, 3, 5))) == [1, 2, 3]
    clock.now += 3.0
    assert numbers(mark.settle(3, rows(5))) == []
    clock.now += 2.0
    assert numbers(mark.settle(3, rows(5))) == [5]


def test_a_partly_filled_gap_keeps_its_first_time(clock: Clock) -> None:
    mark = HighWaterMark(True, 5.0, clock=clock)
    mark.settle(0, rows(1, 5))
    clock.now += 5.0
    assert numbers(mark.settle(1, rows(3, 5))) == [3, 5]
    assert mark.holes == 2  # 2 and 4


def test_numbers_below_the_mark_are_never_waited_for_again(clock: Clock) -> None:
    mark = HighWaterMark(True, 5.0, clock=clock)
    mark.settle(0, rows(1, 4))
    clock.now += 5.0
    mark.settle(1, rows(4, 5))
    # A restarted shard makes the reader start again from 0.
    assert numbers(mark.settle(0, rows(1, 4, 5))) == [1, 4, 5]
    assert mark.holes == 2


def test_a_start_mark_settles_the_numbers_below_it(clock: Clock) -> None:
    mark = HighWaterMark(True, 5.0, mark=10, clock=clock)
    assert numbers(mark.settle(4, rows(7, 9, 12))) == [7, 9]
    assert mark.deadline() == 105.0


def test_stores_whose_gaps_never_fill_pass_jumps_at_once(clock: Clock) -> None:
    mark = HighWaterMark(False, 5.0, clock=clock)
    assert numbers(mark.settle(8, rows(109, 110))) == [109, 110]
    assert mark.holes == 0
    assert mark.deadline() is None


def test_a_zero_timeout_passes_every_gap(clock: Clock) -> None:
    mark = HighWaterMark(True, 0.0, clock=clock)
    assert numbers(mark.settle(0, rows(2, 4))) == [2, 4]
    assert mark.holes == 2


@given(
    committed=st.sets(st.integers(1, 60), max_size=40),
    late=st.sets(st.integers(1, 60), max_size=10),
)
def test_nothing_is_skipped_that_commits_within_the_timeout(
    committed: set[int], late: set[int]
) -> None:
    """Numbers in ``late`` become visible one second after the first read;
    with a five-second timeout every committed number is passed in order,
    none twice, and the holes are exactly the numbers that never came."""
    clock = Clock()
    mark = HighWaterMark(True, 5.0, clock=clock)
    visible = set(committed) - late
    applied: list[int] = []
    for step in range(12):
        if step == 2:
            visible |= late
        after = applied[-1] if applied else 0
        read = rows(*sorted(n for n in visible if n > after))
        applied += numbers(mark.settle(after, read))
        clock.now += 1.0
    everything = sorted(committed | late)
    assert applied == everything
    top = everything[-1] if everything else 0
    assert mark.holes == top - len(everything)


def test_gaps_below_a_settled_number_are_holes_at_once(clock: Clock) -> None:
    mark = HighWaterMark(True, 5.0, clock=clock)
    assert numbers(mark.settle(0, rows(1, 3, 5, 8))) == [1]
    # No writer was left when 5 was the last number seen: 2 and 4 can no
    # longer appear, but 6 and 7 (below 8, seen only after) still may.
    assert numbers(mark.settle(1, rows(3, 5, 8), settled_below=5)) == [3, 5]
    assert mark.holes == 2
    assert mark.deadline() == 105.0


def test_a_gap_with_no_writer_open_is_settled_below_what_was_read(
    clock: Clock,
) -> None:
    mark = HighWaterMark(True, 5.0, clock=clock)
    assert mark.note(0, rows(1, 3, 5))
    assert mark.weigh([]) == 5
    assert numbers(mark.settle(0, rows(1, 3, 5), settled_below=5)) == [1, 3, 5]
    assert mark.holes == 2


def test_a_writer_that_began_after_the_gap_was_seen_cannot_hold_it(
    clock: Clock,
) -> None:
    mark = HighWaterMark(True, 5.0, clock=clock)
    mark.note(0, rows(1, 3))
    clock.now += 3.0
    newer = OpenWriter(timedelta(seconds=1.5), busy=True)
    older = OpenWriter(timedelta(seconds=3.5), busy=False)
    assert mark.weigh([newer]) == 3
    assert mark.weigh([newer, older]) == 0


def test_a_writer_at_work_on_a_gap_holds_its_timeout_back(clock: Clock) -> None:
    """A long import: its transaction drew the numbers long ago and is still
    inserting, so the gap is not a hole however long that takes."""
    mark = HighWaterMark(True, 5.0, clock=clock)
    mark.note(0, rows(1, 9))
    for _ in range(10):
        clock.now += 2.0
        mark.weigh([OpenWriter(timedelta(seconds=clock.now - 99), busy=True)])
        assert numbers(mark.settle(1, rows(9))) == []
    # It stops working but keeps its transaction open: the timeout runs.
    mark.weigh([OpenWriter(timedelta(seconds=clock.now - 99), busy=False)])
    clock.now += 4.9
    assert numbers(mark.settle(1, rows(9))) == []
    clock.now += 0.1
    assert numbers(mark.settle(1, rows(9))) == [9]
    assert mark.holes == 7
