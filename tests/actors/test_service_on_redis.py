"""The Projectionist service on a real local Ray with a real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from actors import Projectionist, wait_for
from engine import Event

pytestmark = [
    pytest.mark.ray,
    pytest.mark.redis,
    pytest.mark.usefixtures("local_ray"),
]

PATIENCE_S = 120.0


def test_the_service_on_redis_serves_f10_and_a_fresh_engine_serves_it_too(
    tmp_path: Path,
    redis_url: str,
    f10_events: list[Event],
    assert_f10: Callable[..., None],
    assert_f10_by_query: Callable[..., None],
) -> None:
    events_url = f"sqlite:///{tmp_path / 'events.db'}"
    store_url = f"{redis_url}?prefix=service-{uuid.uuid4().hex}"
    engine = Projectionist(events_url, store_url, shards=3)
    try:
        engine.append(f10_events)
        engine.start()
        assert wait_for(lambda: engine.status()["caught_up"], PATIENCE_S)
        running = [c.sequence_number for c in engine.snapshots.read_checkpoints()]
        assert_f10(engine.export, running)
        assert_f10_by_query(engine)
        engine.stop()

        # Queries need no running engine: they read the snapshot store.
        fresh = Projectionist(events_url, store_url)
        fresh.open()
        stored = [c.sequence_number for c in fresh.snapshots.read_checkpoints()]
        assert_f10(fresh.export, stored)
        assert_f10_by_query(fresh)
    finally:
        engine.stop()
        cleaner = Projectionist(events_url, store_url)
        cleaner.open()
        cleaner.snapshots.clear()
        cleaner.stop()
