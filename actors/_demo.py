"""``projectionist demo``: a small end-to-end run on embedded SQLite."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine import Event, Settings, generate_events

from ._service import Projectionist

Say = Callable[[str], None]


def run_demo(folder: Path, settings: Settings, say: Say) -> bool:
    """Generate a workload into SQLite files in ``folder``, project it with
    two shards, and check every read model against a sequential fold.
    Returns whether every model matched."""
    # The demo owns its two files: start them afresh on every run.
    for name in ("demo-events.db", "demo-models.db"):
        for suffix in ("", "-wal", "-shm"):
            (folder / f"{name}{suffix}").unlink(missing_ok=True)
    log_url = f"sqlite:///{folder / 'demo-events.db'}"
    store_url = f"sqlite:///{folder / 'demo-models.db'}"
    events = list(generate_events(20_000, users=500, seed=2026))
    demo = settings.model_copy(
        update={"event_store_url": log_url, "store_url": store_url, "shards": 2}
    )
    engine = Projectionist(settings=demo)
    result = engine.append(events)
    say(f"appended {result.count} events to {folder / 'demo-events.db'}")
    status = engine.run_until_caught_up()
    say(f"projected up to sequence number {status['head']} with 2 shards")
    return _compare(engine, events, say)


def _compare(engine: Projectionist, events: list[Event], say: Say) -> bool:
    for number, event in enumerate(events, start=1):
        event.sequence_number = number
    checked, differences = engine.differences_from_fold(events)
    say(f"{checked - differences} of {checked} read models match a sequential fold")
    user = events[0].data["user_id"]
    currency = events[0].data["currency"]
    balance = engine.get_balance(user, currency)
    say(f"balance of {user} in {currency}: {balance.balance}")
    return differences == 0
