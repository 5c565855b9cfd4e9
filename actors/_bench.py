"""The throughput benchmark behind ``projectionist bench``."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import ray

from engine import Settings, generate_events
from stores import open_event_store, open_snapshot_store

from ._runtime import ensure_ray
from ._service import Projectionist

logger = logging.getLogger(__name__)


def with_option(url: str, name: str, value: str) -> str:
    """``url`` with its query option ``name`` set to ``value`` (a Redis key
    prefix, a PostgreSQL table)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query[name] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


def run_bench(
    settings: Settings,
    events: int,
    users: int,
    currencies: Sequence[str],
    shard_counts: Sequence[int],
    store_url: str,
) -> dict[str, Any]:
    """Import ``events`` generated events into a fresh SQLite log, then time a
    full catch-up into ``store_url`` for each shard count. Every figure is
    measured here; nothing is asserted."""
    folder = Path(tempfile.mkdtemp(prefix="projectionist-bench-"))
    try:
        log_url = f"sqlite:///{folder / 'events.db'}"
        figures: dict[str, Any] = {"events": events, "users": users}
        figures["import"] = _time_import(log_url, events, users, currencies)
        started_ray = ensure_ray(settings)
        figures["catch_up"] = [
            _time_catch_up(settings, log_url, store_url, count, events)
            for count in shard_counts
        ]
        if started_ray:
            ray.shutdown()
        return figures
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _time_import(
    url: str, events: int, users: int, currencies: Sequence[str]
) -> dict[str, Any]:
    store = open_event_store(url)
    began = time.perf_counter()
    store.append(generate_events(events, users, currencies, seed=7))
    seconds = time.perf_counter() - began
    store.close()
    return {"seconds": round(seconds, 3), "events_per_second": round(events / seconds)}


def _time_catch_up(
    settings: Settings, log_url: str, store_url: str, shards: int, events: int
) -> dict[str, Any]:
    url = with_option(store_url, "prefix", f"bench-{uuid.uuid4().hex[:8]}")
    engine = Projectionist(
        log_url,
        url,
        settings=settings.model_copy(
            update={"event_store_url": log_url, "store_url": url, "shards": shards}
        ),
    )
    try:
        engine.prepare()
        began = time.perf_counter()
        engine.start(live=False)
        seconds = time.perf_counter() - began
        status = engine.status()
    finally:
        engine.stop()
        clear_snapshots(url)
    logger.info("bench with %s shards took %.3fs", shards, seconds)
    return {
        "shards": shards,
        "seconds": round(seconds, 3),
        "events_per_second": round(events / seconds),
        "checkpoints": [shard["checkpoint"] for shard in status["shards"]],
    }


def clear_snapshots(url: str) -> None:
    """Empty the snapshot store at ``url`` (a bench's own prefix)."""
    store = open_snapshot_store(url)
    try:
        store.clear()
    finally:
        store.close()


def drop_log(url: str) -> None:
    """Drop a bench's own PostgreSQL table; SQLite files go with their folder."""
    if not url.startswith(("postgresql:", "postgres:")):
        return
    store = open_event_store(url)
    try:
        store.drop()
    finally:
        store.close()
