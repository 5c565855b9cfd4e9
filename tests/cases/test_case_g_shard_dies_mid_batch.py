"""Case G: the process of u1's shard is killed after it applied 1 and 3 in
memory, before any flush. Expected: F10; never u1/USD -20.00 (lost) or
120.00 (applied twice)."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import ray

from actors import Projectionist, wait_for
from engine import Event, ShardReply, shard_of, split_batch

pytestmark = [
    pytest.mark.ray,
    pytest.mark.redis,
    pytest.mark.usefixtures("local_ray"),
]

SHARDS = 4
NEVER = 10**9
PATIENCE_S = 120.0


@pytest.fixture
def engine(
    tmp_path: Path, redis_url: str, f10_events: list[Event]
) -> Iterator[Projectionist]:
    """F10 in the log and the actors up, nothing applied; no flush is ever
    due by count or time, so only the engine's own flushes happen."""
    store_url = f"{redis_url}?prefix=case-g-{uuid.uuid4().hex}"
    service = Projectionist(
        f"sqlite:///{tmp_path / 'events.db'}",
        store_url,
        shards=SHARDS,
        checkpoint_interval=NEVER,
        flush_interval_ms=NEVER,
    )
    service.append(f10_events)
    service.prepare()
    try:
        yield service
    finally:
        service.stop()
        service.open()
        service.snapshots.clear()
        service.stop()


def apply_first_three(engine: Projectionist) -> list[ShardReply]:
    """Send events 1..3 to every shard as the dispatcher would."""
    rows = engine.events.read_after(0, 3)
    batches = split_batch(rows, 0, SHARDS)
    victim = shard_of("u1", SHARDS)
    assert list(batches[victim].sequence_numbers) == [1, 3]
    replies: list[ShardReply] = ray.get(
        [
            shard.apply.remote(b.after, b.upto, b.sequence_numbers, b.payloads)
            for shard, b in zip(engine._shards, batches, strict=True)
        ]
    )
    assert [(r.applied, r.durable, r.gap) for r in replies] == [(3, 0, False)] * SHARDS
    return replies


def kill_process_of(shard: Any) -> int:
    pid: int = ray.get(shard.pid.remote())
    assert pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    return pid


def assert_u1_applied_1_and_3_in_memory_only(engine: Projectionist) -> None:
    victim = engine._shards[shard_of("u1", SHARDS)]
    position: ShardReply = ray.get(victim.position.remote())
    assert (position.applied, position.durable) == (3, 0)
    assert engine.snapshots.read_checkpoints() == []
    assert engine.snapshots.get_model("balance", ("u1", "USD")) is None


def finish_and_check(
    engine: Projectionist, killed: int, checks: tuple[Callable[..., None], ...]
) -> None:
    engine.start(live=False)
    victim = engine._shards[shard_of("u1", SHARDS)]
    assert ray.get(victim.pid.remote()) != killed
    assert_f10, assert_f10_by_query = checks
    assert_f10(
        engine.export, [c.sequence_number for c in engine.snapshots.read_checkpoints()]
    )
    assert_f10_by_query(engine)
    assert engine.get_balance("u1", "USD").balance == Decimal("50.00")


def test_g_killing_u1s_shard_after_it_applied_1_and_3_still_gives_f10(
    engine: Projectionist,
    assert_f10: Callable[..., None],
    assert_f10_by_query: Callable[..., None],
) -> None:
    apply_first_three(engine)
    assert_u1_applied_1_and_3_in_memory_only(engine)

    killed = kill_process_of(engine._shards[shard_of("u1", SHARDS)])

    finish_and_check(engine, killed, (assert_f10, assert_f10_by_query))


def test_g_a_dispatcher_that_saw_u1s_shard_at_3_resends_what_the_kill_lost(
    engine: Projectionist,
    assert_f10: Callable[..., None],
    assert_f10_by_query: Callable[..., None],
) -> None:
    apply_first_three(engine)
    assert_u1_applied_1_and_3_in_memory_only(engine)
    # A restarted dispatcher learns every shard's position: all at 3.
    ray.kill(engine._dispatcher, no_restart=False)
    assert wait_for(
        lambda: ray.get(engine._dispatcher.status.remote())["dispatched"] == 3,
        PATIENCE_S,
        interval=0.2,
    )

    killed = kill_process_of(engine._shards[shard_of("u1", SHARDS)])

    finish_and_check(engine, killed, (assert_f10, assert_f10_by_query))
