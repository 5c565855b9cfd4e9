"""Failure recovery: kill the engine mid-run, start it again, check it.

Generates a workload into a SQLite log, starts ``projectionist run`` as a
child process, SIGKILLs it once some shard has flushed but before it has
caught up, starts it again, and compares every read model with a plain
sequential fold of the log. Usage::

    python -m examples.failure_recovery [--events 200000] [--kills 2]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from actors import Projectionist
from engine import generate_events
from stores import EventStoreAdapter, open_event_store, open_snapshot_store


def _environment(folder: Path) -> dict[str, str]:
    return {
        **os.environ,
        "EVENT_STORE_URL": f"sqlite:///{folder / 'events.db'}",
        "READ_MODEL_STORE_URL": f"sqlite:///{folder / 'models.db'}",
        "READ_MODEL_CHECKPOINT_INTERVAL": "10000",
        "READ_MODEL_BATCH_SIZE": "5000",
    }


def _checkpoints(folder: Path) -> list[int]:
    store = open_snapshot_store(f"sqlite:///{folder / 'models.db'}")
    try:
        return [c.sequence_number for c in store.read_checkpoints()]
    finally:
        store.close()


def kill_mid_run(folder: Path, head: int) -> list[int]:
    """Start the engine, SIGKILL it once a flush has landed short of the
    head; return the checkpoints it left behind."""
    before = sum(_checkpoints(folder))
    child = subprocess.Popen(
        [sys.executable, "-m", "actors.cli", "run", "--until-caught-up"],
        env=_environment(folder),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while child.poll() is None and time.monotonic() < deadline:
        now = _checkpoints(folder)
        if sum(now) > before and min(now, default=head) < head:
            os.kill(child.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    child.wait()
    return _checkpoints(folder)


def main(folder: Path, events: int, kills: int) -> int:
    log = open_event_store(f"sqlite:///{folder / 'events.db'}")
    head = log.append(generate_events(events, users=events // 10, seed=5)).last
    for number in range(1, kills + 1):
        left = kill_mid_run(folder, head)
        print(f"kill {number}: engine killed with shard checkpoints {left}")
    engine = Projectionist(
        f"sqlite:///{folder / 'events.db'}", f"sqlite:///{folder / 'models.db'}"
    )
    status = engine.run_until_caught_up()
    print(f"restarted: caught up at {status['head']} of {head}")
    return _compare(engine, log)


def _compare(engine: Projectionist, log: EventStoreAdapter) -> int:
    events = log.read_events_after(0, 10**9)
    checked, differences = engine.differences_from_fold(events)
    print(f"{checked} read models checked against a fold: {differences} differences")
    return differences


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--kills", type=int, default=2)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="projectionist-recovery-") as made:
        sys.exit(1 if main(Path(made), arguments.events, arguments.kills) else 0)
