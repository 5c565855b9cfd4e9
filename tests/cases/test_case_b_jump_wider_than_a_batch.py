"""Case B: a jump in sequence numbers wider than a batch.

Batch size 100. Events 1-8 of F10, then nothing (or only events no
projection handles) at 9-108, then 109: F10's event 9 and 110: F10's event
10. Expected: F10's values with u2/USD at last_event_version 109 and
checkpoint 110, in catch-up and in a rebuild alike. On PostgreSQL the empty
stretch is a gap that might still fill: the engine waits for it, then passes
it as a permanent hole.
"""

from __future__ import annotations

import copy
import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from ray_fixtures import check_models

from actors import Projectionist
from engine import Event

pytestmark = [pytest.mark.ray]

GAP_TIMEOUT_MS = 1_000


@pytest.fixture(params=["sqlite", "postgresql"])
def events_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    admin: str = request.getfixturevalue("postgres_url")
    return f"{admin}?table=case_b_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store_url(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'models.db'}"


def jumped(f10_events: list[Event], filler: bool) -> list[Event]:
    """F10 with events 9 and 10 moved to 109 and 110; with ``filler``, the
    numbers between hold events that no projection handles."""
    moment = datetime(2026, 1, 5, 10, 0, 8, tzinfo=UTC)
    between = [
        Event(n, f"note-{n}", "AuditNoted", moment, {"note": "nothing to do"})
        for n in range(9, 109)
        if filler
    ]
    moved = [
        dataclasses.replace(event, sequence_number=event.sequence_number + 100)
        for event in f10_events[8:]
    ]
    return [*f10_events[:8], *between, *moved]


def expected_after_jump(f10_expected: dict[str, Any]) -> dict[str, Any]:
    expected = copy.deepcopy(f10_expected)
    for kind in ("balance", "summary", "payments"):
        for row in expected[kind]:
            if row.get("last_event_version", 0) > 8:
                row["last_event_version"] += 100
    expected["checkpoint"] = 110
    return expected


def checkpoints(engine: Projectionist) -> list[int]:
    engine.open()
    return [c.sequence_number for c in engine.snapshots.read_checkpoints()]


@pytest.mark.usefixtures("local_ray")
@pytest.mark.parametrize("filler", [False, True], ids=["nothing", "unhandled"])
def test_b_a_jump_wider_than_a_batch_in_catch_up_and_rebuild(
    events_url: str,
    store_url: str,
    filler: bool,
    f10_events: list[Event],
    f10_expected: dict[str, Any],
) -> None:
    expected = expected_after_jump(f10_expected)
    settings = {"batch_size": 100, "gap_timeout_ms": GAP_TIMEOUT_MS, "shards": 2}
    engine = Projectionist(events_url, store_url, **settings)
    try:
        engine.append(jumped(f10_events, filler))
        status = engine.run_until_caught_up()
        check_models(expected, engine.export, checkpoints(engine))
        gap_may_fill = events_url.startswith("postgresql") and not filler
        assert status["permanent_holes"] == (100 if gap_may_fill else 0)

        # A rebuild: the same log projected again into an empty store.
        engine.open()
        engine.snapshots.clear()
    finally:
        engine.stop()
    rebuild = Projectionist(events_url, store_url, **settings)
    try:
        rebuild.run_until_caught_up()
        check_models(expected, rebuild.export, checkpoints(rebuild))
    finally:
        rebuild.stop()
