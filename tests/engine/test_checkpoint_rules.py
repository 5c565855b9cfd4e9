"""Where shards resume (plan_start) and when they flush (FlushPolicy)."""

from __future__ import annotations

from engine import FlushPolicy, ShardCheckpoint, StartPlan, plan_start


def layout(count: int, *positions: int) -> list[ShardCheckpoint]:
    return [ShardCheckpoint(i, count, at) for i, at in enumerate(positions)]


def test_with_no_checkpoints_every_shard_starts_from_zero() -> None:
    assert plan_start([], 3) == StartPlan((0, 0, 0), relayout=False)


def test_with_the_same_layout_each_shard_resumes_at_its_own_checkpoint() -> None:
    plan = plan_start(layout(3, 7, 4, 9), 3)

    assert plan == StartPlan((7, 4, 9), relayout=False)
    assert plan.lowest == 4


def test_a_shard_that_never_flushed_resumes_from_zero() -> None:
    stored = [ShardCheckpoint(0, 3, 7), ShardCheckpoint(2, 3, 9)]

    assert plan_start(stored, 3) == StartPlan((7, 0, 9), relayout=False)


def test_a_new_shard_count_resumes_every_shard_at_the_old_lowest() -> None:
    plan = plan_start(layout(4, 10, 6, 8, 12), 2)

    assert plan == StartPlan((6, 6), relayout=True)


def test_growing_the_shard_count_also_resumes_at_the_old_lowest() -> None:
    plan = plan_start(layout(2, 10, 9), 8)

    assert plan == StartPlan((9,) * 8, relayout=True)


def test_a_new_shard_count_over_an_incomplete_old_layout_starts_from_zero() -> None:
    stored = [ShardCheckpoint(0, 4, 10), ShardCheckpoint(1, 4, 6)]

    assert plan_start(stored, 2) == StartPlan((0, 0), relayout=True)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_policy_is_not_due_with_nothing_pending_however_long_ago() -> None:
    clock = FakeClock()
    policy = FlushPolicy(every_events=10, every_ms=1000, clock=clock)
    clock.now += 3600

    assert not policy.due(0)


def test_a_policy_is_due_once_enough_events_are_pending() -> None:
    policy = FlushPolicy(every_events=10, every_ms=1000, clock=FakeClock())

    assert not policy.due(9)
    assert policy.due(10)
    assert policy.due(11)


def test_a_policy_is_due_once_the_interval_has_passed() -> None:
    clock = FakeClock()
    policy = FlushPolicy(every_events=10, every_ms=1000, clock=clock)

    clock.now += 0.999
    assert not policy.due(1)
    clock.now += 0.001
    assert policy.due(1)


def test_a_flush_restarts_the_interval() -> None:
    clock = FakeClock()
    policy = FlushPolicy(every_events=10, every_ms=1000, clock=clock)
    clock.now += 5

    policy.flushed()

    assert not policy.due(1)
    clock.now += 1
    assert policy.due(1)


def test_the_interval_stretches_to_four_times_a_slow_flush() -> None:
    clock = FakeClock()
    policy = FlushPolicy(every_events=10, every_ms=1000, clock=clock)
    started = clock.now
    clock.now += 2.0

    policy.flushed(started)

    clock.now += 7.9
    assert not policy.due(1)
    clock.now += 0.1
    assert policy.due(1)
    assert policy.due(10)
