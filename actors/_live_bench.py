"""The latency benchmark behind ``projectionist bench --live``.

A running engine follows the log while one writer appends at a fixed rate.
An event counts as visible once its shard's durable checkpoint covers it:
a checkpoint is written in the same atomic flush as the models it covers,
so from then on every query sees the event. Latency runs from the moment
the writer starts the append that holds the event.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import ConfigurationError, Event, Settings, generate_events, route_of
from stores import open_event_store, open_snapshot_store

from ._bench import clear_snapshots, drop_log, with_option
from ._service import Projectionist

logger = logging.getLogger(__name__)

TICK_SECONDS = 0.01
OBSERVE_SECONDS = 0.001
SETTLE_SECONDS = 60.0


@dataclass
class _Pending:
    """Appended events not yet seen durable, per shard, in sequence order."""

    shards: int
    waiting: list[deque[tuple[int, float]]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.waiting = [deque() for _ in range(self.shards)]

    def add(self, number: int, event: Event, appended_at: float) -> None:
        self.waiting[route_of(event.user_id) % self.shards].append(
            (number, appended_at)
        )

    def observe(self, positions: dict[int, int], seen_at: float) -> None:
        for shard, queue in enumerate(self.waiting):
            position = positions.get(shard, 0)
            while queue and queue[0][0] <= position:
                self.latencies.append(seen_at - queue.popleft()[1])

    def left(self) -> int:
        return sum(len(queue) for queue in self.waiting)


def run_live_bench(
    settings: Settings,
    rates: Sequence[int],
    seconds: float,
    users: int,
    currencies: Sequence[str],
) -> dict[str, Any]:
    """Start an engine live on a fresh log and a fresh snapshot prefix, then
    append at each of ``rates`` events per second for ``seconds`` and
    measure how long each event takes to become visible. Every figure is
    measured; nothing is asserted.

    The log is a temporary SQLite file unless ``settings`` names a
    PostgreSQL event store; there it is a table of its own, dropped at the
    end."""
    with _fresh_stores(settings) as fresh:
        engine = Projectionist(settings=fresh)
        figures: dict[str, Any] = {"event_store": _kind(fresh.event_store_url)}
        figures |= {"shards": fresh.shards, "runs": []}
        try:
            engine.start(live=True)
            for rate in rates:
                events = list(generate_events(int(rate * seconds), users, currencies))
                figures["runs"].append(_measure(fresh, rate, events))
            figures["permanent_holes"] = engine.status().get("permanent_holes", 0)
        finally:
            engine.stop()
    return figures


@contextmanager
def _fresh_stores(settings: Settings) -> Iterator[Settings]:
    if settings.snapshot_store_url.startswith("memory:"):
        raise ConfigurationError(
            "bench --live watches the snapshot store from its own process: "
            "give --store sqlite:///… or redis://…, not memory://"
        )
    folder = Path(tempfile.mkdtemp(prefix="projectionist-bench-"))
    events_url, store_url = _own_urls(settings, folder)
    try:
        yield settings.model_copy(
            update={"event_store_url": events_url, "store_url": store_url}
        )
    finally:
        clear_snapshots(store_url)
        drop_log(events_url)
        shutil.rmtree(folder, ignore_errors=True)


def _own_urls(settings: Settings, folder: Path) -> tuple[str, str]:
    # A log and a snapshot store of the bench's own: files in ``folder``, a
    # fresh PostgreSQL table, a fresh Redis key prefix.
    tag = f"bench_{uuid.uuid4().hex[:8]}"
    events_url = f"sqlite:///{folder / 'events.db'}"
    if settings.event_store_url.startswith(("postgresql:", "postgres:")):
        events_url = with_option(settings.event_store_url, "table", tag)
    store_url = settings.snapshot_store_url
    if store_url.startswith("sqlite:"):
        store_url = f"sqlite:///{folder / 'models.db'}"
    elif store_url.startswith(("redis:", "rediss:")):
        store_url = with_option(store_url, "prefix", tag)
    return events_url, store_url


def _kind(url: str) -> str:
    return url.partition(":")[0]


def _measure(settings: Settings, rate: int, events: list[Event]) -> dict[str, Any]:
    pending = _Pending(settings.shards)
    with _observer(settings.snapshot_store_url, pending):
        began = time.perf_counter()
        _append_at_rate(settings.event_store_url, rate, events, pending)
        writing = time.perf_counter() - began
        _settle(pending)
    figures = {
        "rate": rate,
        "events": len(events),
        "achieved_rate": round(len(events) / writing),
        "latency_ms": _percentiles(pending.latencies),
        "never_visible": pending.left(),
    }
    logger.info("live bench at %s events/s done", rate)
    return figures


def _append_at_rate(
    url: str, rate: int, events: list[Event], pending: _Pending
) -> None:
    store = open_event_store(url)
    try:
        began = time.perf_counter()
        sent = 0
        while sent < len(events):
            due = min(len(events), int(rate * (time.perf_counter() - began)) + 1)
            if due > sent:
                batch = events[sent:due]
                appended_at = time.perf_counter()
                result = store.append(batch)
                _record(pending, batch, result.first, result.last, appended_at)
                sent = due
            time.sleep(TICK_SECONDS)
    finally:
        store.close()


def _record(
    pending: _Pending, batch: list[Event], first: int, last: int, at: float
) -> None:
    contiguous = last - first + 1 == len(batch)
    for offset, event in enumerate(batch):
        # Numbers shared with another writer are not known one by one: then
        # an event counts as visible only once the whole append is.
        pending.add(first + offset if contiguous else last, event, at)


@contextmanager
def _observer(url: str, pending: _Pending) -> Iterator[None]:
    """Watch the shard checkpoints from a thread while the block runs."""
    store = open_snapshot_store(url)
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            positions = {c.shard: c.sequence_number for c in store.read_checkpoints()}
            pending.observe(positions, time.perf_counter())
            stop.wait(OBSERVE_SECONDS)

    thread = threading.Thread(target=watch, name="bench-observer", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        store.close()


def _settle(pending: _Pending) -> None:
    deadline = time.monotonic() + SETTLE_SECONDS
    while pending.left() and time.monotonic() < deadline:
        time.sleep(TICK_SECONDS)


def _percentiles(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(latencies)

    def at(share: float) -> float:
        return round(ordered[round(share * (len(ordered) - 1))] * 1000, 1)

    return {"p50": at(0.5), "p99": at(0.99), "max": at(1.0)}
