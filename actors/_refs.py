"""How an actor gets its stores: a URL to open, or a hosted memory store."""

from __future__ import annotations

from typing import Any

import ray

from engine import EventStore, SnapshotStore
from stores import open_event_store, open_snapshot_store

from ._hosted import HostedEventStore, HostedSnapshotStore, StoreHost

StoreRef = Any
"""A store URL (``str``) or a hosted store proxy; both pickle to any actor."""


def event_store_ref(url: str) -> tuple[StoreRef, Any]:
    """A reference to the event store at ``url`` and its host actor, if any."""
    if url.startswith("memory:"):
        host = StoreHost.remote("events")  # type: ignore[attr-defined]
        return HostedEventStore(host), host
    return url, None


def snapshot_store_ref(url: str) -> tuple[StoreRef, Any]:
    """A reference to the snapshot store at ``url`` and its host actor, if any."""
    if url.startswith("memory:"):
        host = StoreHost.remote("snapshots")  # type: ignore[attr-defined]
        return HostedSnapshotStore(host), host
    return url, None


def open_events(ref: StoreRef) -> EventStore:
    if isinstance(ref, str):
        return open_event_store(ref)
    store: EventStore = ref
    return store


def open_snapshots(ref: StoreRef) -> SnapshotStore:
    if isinstance(ref, str):
        return open_snapshot_store(ref)
    store: SnapshotStore = ref
    return store


def kill_quietly(handle: Any) -> None:
    """End an actor this engine started; an actor already gone is fine."""
    if handle is None:
        return
    try:
        ray.kill(handle, no_restart=True)
    except Exception:
        return
