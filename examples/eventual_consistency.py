"""Eventual consistency: a log that exists before the engine, then live events.

20,000 events are in the log before the engine starts; it catches up, then a
writer appends 5,000 more in small batches while the engine runs live. Once
the last one is visible, every read model is compared with a sequential fold
of the whole log. Run it with

    python -m examples.eventual_consistency
    python -m examples.eventual_consistency --event-store postgresql://127.0.0.1/mydb

(temporary SQLite files unless stores are named; exit status 1 on any
difference).
"""

from __future__ import annotations

import sys
import time

from actors import Projectionist
from engine import Event, generate_events
from examples._on_stores import run_on_stores
from stores import open_event_store

BEFORE = 20_000
LIVE = 5_000
LIVE_BATCH = 50
PATIENCE_S = 300.0


def append_live(engine: Projectionist, events: list[Event]) -> int:
    """Append ``events`` a batch at a time, as a busy service would; the
    last sequence number written."""
    last = 0
    for start in range(0, len(events), LIVE_BATCH):
        last = engine.append(events[start : start + LIVE_BATCH]).last
        time.sleep(0.005)
    return last


def main(event_store: str, store: str) -> bool:
    """Run the scenario on the two stores; ``True`` when the models match."""
    workload = list(generate_events(BEFORE + LIVE, users=500, seed=5))
    log = open_event_store(event_store)
    try:
        first = log.append(workload[:BEFORE])
    finally:
        log.close()
    print(f"{first.count} events in the log before the engine starts")
    engine = Projectionist(event_store, store, shards=2)
    try:
        began = time.monotonic()
        engine.start()
        print(
            f"caught up to {engine.status()['head']} in "
            f"{time.monotonic() - began:.1f} s; now live"
        )
        last = append_live(engine, workload[BEFORE:])
        written = time.monotonic()
        if not engine.wait_until_visible(last, PATIENCE_S):
            print(f"event {last} did not become visible", file=sys.stderr)
            return False
        print(
            f"{LIVE} live events appended; the last one, {last}, visible "
            f"{(time.monotonic() - written) * 1000:.0f} ms after the writer ended"
        )
        logged = engine.events.read_events_after(0, engine.events.head())
        compared, differences = engine.differences_from_fold(logged)
    finally:
        engine.stop()
    print(f"{compared} read models checked against a fold: {differences} differences")
    return differences == 0


if __name__ == "__main__":
    sys.exit(run_on_stores(main, __doc__.splitlines()[0]))
