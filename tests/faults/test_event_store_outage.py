"""A live engine outlives an event store outage longer than the store's own
reconnect attempts: it waits with growing pauses, reports the outage in its
health check, and goes on from its position when the store answers again."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from unreachable_log import UnreachableWhileMarked

from actors import Projectionist, wait_for
from engine import Event
from stores import open_event_store

pytestmark = [pytest.mark.ray]

PATIENCE_S = 120.0


def refused(marker: Path) -> list[str]:
    notes = marker.with_name(marker.name + ".refused")
    return notes.read_text(encoding="utf-8").split() if notes.exists() else []


@pytest.mark.usefixtures("local_ray")
def test_a_live_engine_waits_out_an_event_store_outage_without_replay(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    f10_events: list[Event],
    stop_engine: Callable[[Projectionist], None],
) -> None:
    events_url = f"sqlite:///{tmp_path / 'events.db'}"
    marker = tmp_path / "down"
    wrapped = UnreachableWhileMarked(events_url, str(marker))
    monkeypatch.setattr("actors._service.event_store_ref", lambda url: (wrapped, None))
    engine = Projectionist(events_url, f"sqlite:///{tmp_path / 'models.db'}")
    writer = open_event_store(events_url)
    try:
        writer.append(f10_events)
        engine.start()
        assert engine.wait_until_visible(10, PATIENCE_S)

        marker.touch()
        eleven = dataclasses.replace(f10_events[0], sequence_number=11, event_id="e-11")
        writer.append([eleven])
        assert wait_for(
            lambda: any(
                "event store unreachable" in problem
                for problem in engine.health_check()["problems"]
            ),
            PATIENCE_S,
        )
        # The main loop met the outage (a run that ended on it would never
        # apply 11 below).
        assert wait_for(lambda: "read_after" in refused(marker), PATIENCE_S)
        marker.unlink()

        assert engine.wait_until_visible(11, PATIENCE_S)
        assert engine.get_balance("u1", "USD").balance == Decimal("150.00")
        status = engine.status()
        assert status["events_processed_total"] == 11
        assert status["event_store_error"] is None
        assert engine.health_check()["healthy"]
    finally:
        writer.close()
        marker.unlink(missing_ok=True)
        stop_engine(engine)
