"""Case C: resume after a stop, then a redelivery of event 3.

Apply 1-8, flush, stop, restart, append 9 and 10, then deliver 3 again with
the same sequence number and event id. Expected: F10 exactly; never u1/USD
30.00 (8 applied twice) or 20.00 (3 applied twice).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import ray

from actors import Projectionist, wait_for
from engine import Event, InvalidEventError, ShardReply, decode_event, split_batch
from stores import open_event_store

pytestmark = [pytest.mark.ray, pytest.mark.redis]

PATIENCE_S = 120.0


@pytest.fixture
def urls(tmp_path: Path, redis_url: str) -> Iterator[tuple[str, str]]:
    events_url = f"sqlite:///{tmp_path / 'events.db'}"
    store_url = f"{redis_url}?prefix=case-c-{uuid.uuid4().hex}"
    yield events_url, store_url
    cleaner = Projectionist(events_url, store_url)
    cleaner.open()
    cleaner.snapshots.clear()
    cleaner.stop()


def redeliver(engine: Projectionist, after: int, upto: int) -> list[ShardReply]:
    """Send the stored events ``after + 1 .. upto`` to every shard again,
    exactly as the dispatcher sends a batch."""
    rows = engine.events.read_after(after, upto - after)
    batches = split_batch(rows, after, len(engine._shards))
    calls = [
        shard.apply.remote(b.after, b.upto, b.sequence_numbers, b.payloads)
        for shard, b in zip(engine._shards, batches, strict=True)
    ]
    replies: list[ShardReply] = ray.get(calls)
    return replies


@pytest.mark.usefixtures("local_ray")
def test_c_a_resumed_engine_given_event_3_again_serves_f10_exactly(
    urls: tuple[str, str],
    f10_events: list[Event],
    assert_f10: Callable[..., None],
    assert_f10_by_query: Callable[..., None],
    stop_engine: Callable[[Projectionist], None],
) -> None:
    events_url, store_url = urls

    # Apply 1-8, flush, stop.
    first = Projectionist(events_url, store_url, shards=2)
    first.append(f10_events[:8])
    status = first.run_until_caught_up()
    assert [shard["checkpoint"] for shard in status["shards"]] == [8, 8]

    # Restart, then append 9 and 10 while it runs live.
    second = Projectionist(events_url, store_url, shards=2)
    second.start()
    try:
        second.append(f10_events[8:])
        assert wait_for(
            lambda: second.status()["caught_up"] and second.status()["head"] == 10,
            PATIENCE_S,
        )

        # Deliver 3 again: same sequence number, same event id.
        (row,) = second.events.read_after(2, 1)
        assert decode_event(row.sequence_number, row.payload).event_id == "e-3"
        replies = redeliver(second, 2, 3)
        assert [(r.applied, r.gap) for r in replies] == [(10, False), (10, False)]
        replies = redeliver(second, 0, 10)
        assert [(r.applied, r.gap) for r in replies] == [(10, False), (10, False)]
    finally:
        stop_engine(second)

    restarted = Projectionist(events_url, store_url)
    restarted.open()
    stored = [c.sequence_number for c in restarted.snapshots.read_checkpoints()]
    assert_f10(restarted.export, stored)
    assert_f10_by_query(restarted)
    assert restarted.get_balance("u1", "USD").balance == Decimal("50.00")
    restarted.stop()


def test_c_event_3_appended_again_is_refused_and_the_log_is_unchanged(
    tmp_path: Path, f10_events: list[Event]
) -> None:
    store = open_event_store(f"sqlite:///{tmp_path / 'events.db'}")
    store.append(f10_events)
    before = store.read_after(0, 100)

    with pytest.raises(InvalidEventError) as caught:
        store.append([f10_events[2]])

    assert caught.value.field in ("sequence_number", "event_id")
    assert store.read_after(0, 100) == before
    store.close()
