"""The embeddable engine: the composition of stores, Ray, shards and the
dispatcher behind a small service object."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

import ray

from engine import (
    QUARANTINE,
    AppendResult,
    ConfigurationError,
    Event,
    ModelNotFound,
    Projection,
    ProjectionistError,
    Registry,
    Settings,
    fold,
    load_settings,
    payments_registry,
    plan_start,
)

from ._dispatcher import Dispatcher
from ._refs import (
    event_store_ref,
    kill_quietly,
    open_events,
    open_snapshots,
    snapshot_store_ref,
)
from ._runtime import ensure_ray
from ._shard import ProjectionShard

logger = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]


class Projectionist:
    """A projection engine over one event store and one snapshot store.

    ``start()`` catches up from the stored checkpoints and then follows new
    events live; queries read the snapshot store, so they never wait behind
    a batch; ``stop()`` makes everything applied durable. Also a context
    manager. Settings come from keyword arguments, then the environment.
    """

    def __init__(
        self,
        event_store: str | None = None,
        store: str | None = None,
        *,
        registry: Registry | None = None,
        settings: Settings | None = None,
        **overrides: Any,
    ) -> None:
        urls = {"event_store_url": event_store, "store_url": store}
        self.settings = settings or load_settings(**urls, **overrides)
        self.registry = registry or registry_from_settings(self.settings)
        self._started_ray = False
        self._hosts: list[Any] = []
        self._shards: list[Any] = []
        self._dispatcher: Any = None
        self._live: Any = None
        self._errors = 0
        self._stop_requested = False
        self._queries = 0
        self._events_ref: Any = None
        self._snapshots_ref: Any = None
        self.events: Any = None
        self.snapshots: Any = None

    # lifecycle

    def open(self) -> None:
        """Start Ray if needed and open both stores; no projection runs yet."""
        if self.events is not None:
            return
        urls = (self.settings.event_store_url, self.settings.snapshot_store_url)
        if any(url.startswith("memory:") for url in urls):
            self.connect()
        self._events_ref, events_host = event_store_ref(self.settings.event_store_url)
        self._snapshots_ref, snapshots_host = snapshot_store_ref(
            self.settings.snapshot_store_url
        )
        self._hosts = [h for h in (events_host, snapshots_host) if h is not None]
        self.events = open_events(self._events_ref)
        self.snapshots = open_snapshots(self._snapshots_ref)

    def connect(self) -> None:
        """Start a local Ray, or join ``RAY_ADDRESS``, unless Ray is up."""
        self._started_ray = ensure_ray(self.settings) or self._started_ray

    def request_stop(self) -> None:
        """Ask a catch-up or live run to flush what it applied and end.
        Safe to call from a signal handler."""
        self._stop_requested = True

    def prepare(self) -> None:
        """Open the stores and start the actors, each loaded from its
        snapshot, without applying anything yet."""
        self.open()
        if self._dispatcher is None:
            self.connect()
            self._spawn()
            _get(self._dispatcher.status.remote())

    def start(self, live: bool = True, progress: Progress | None = None) -> None:
        """Catch up from the stored checkpoints; then, with ``live``, keep
        applying new events in the background until :meth:`stop`."""
        try:
            self.prepare()
            self._wait(self._dispatcher.run.remote(False), progress)
        except BaseException:
            self._end_actors()
            raise
        if live and not self._stop_requested:
            self._live = self._dispatcher.run.remote(True)

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the live run to end; ``True``
        if it has. Raises the error that ended it, such as
        :class:`OwnershipLost` when another engine took over."""
        if self._live is None:
            return True
        ready, _ = ray.wait([self._live], timeout=timeout)
        if ready:
            _get(self._live)
        return bool(ready)

    def run_until_caught_up(self, progress: Progress | None = None) -> dict[str, Any]:
        """Apply and flush every event up to the head, then stop."""
        self.start(live=False, progress=progress)
        try:
            return self.status()
        finally:
            self.stop()

    def stop(self) -> None:
        """Flush everything applied, end the actors, and shut Ray down if
        this engine started it. Safe to call twice; re-raises the error that
        ended a live run, after cleaning up."""
        try:
            if self._dispatcher is not None:
                _get(self._dispatcher.stop.remote())
                if self._live is not None:
                    _get(self._live)
        finally:
            self._live = None
            self._end_actors()

    def _end_actors(self) -> None:
        for handle in [self._dispatcher, *self._shards, *self._hosts]:
            kill_quietly(handle)
        self._dispatcher, self._shards, self._hosts = None, [], []
        self._close_stores()
        if self._started_ray and ray.is_initialized():
            ray.shutdown()
        self._started_ray = False

    def _close_stores(self) -> None:
        for store in (self.events, self.snapshots):
            if store is not None:
                store.close()
        self.events = self.snapshots = None

    def __enter__(self) -> Projectionist:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def _spawn(self) -> None:
        # Store the new layout before any shard reads its checkpoint.
        count = self.settings.shards
        generation = self.snapshots.begin_generation()
        plan = plan_start(self.snapshots.read_checkpoints(), count)
        if plan.relayout:
            logger.info(
                "shard count changed to %s; resuming all at %s", count, plan.lowest
            )
            self.snapshots.reset_layout(count, plan.lowest)
        run_id = uuid.uuid4().hex[:12]
        names = [f"projectionist-{run_id}-shard-{i}" for i in range(count)]
        self._shards = [
            ProjectionShard.options(name=name).remote(  # type: ignore[attr-defined]
                i, count, self._snapshots_ref, self.registry, self.settings, generation
            )
            for i, name in enumerate(names)
        ]
        self._dispatcher = Dispatcher.remote(  # type: ignore[attr-defined]
            self._events_ref, names, self.settings
        )

    def _wait(self, ref: Any, progress: Progress | None) -> None:
        stop_sent = False
        while True:
            ready, _ = ray.wait([ref], timeout=0.5)
            if ready:
                _get(ref)
                return
            if self._stop_requested and not stop_sent:
                self._dispatcher.stop.remote()
                stop_sent = True
            if progress is not None:
                progress(self.status())

    # writing, for services and tests that append through the engine

    def append(self, events: Iterable[Event]) -> AppendResult:
        """Append validated events to the event store in one transaction."""
        self.open()
        result: AppendResult = self.events.append(events)
        return result

    # queries

    def get_balance(self, user_id: str, currency: str) -> Any:
        return self.query("balance", user_id, currency)

    def get_wallet_summary(self, user_id: str, currency: str) -> Any:
        return self.query("summary", user_id, currency)

    def get_payment_status(self, user_id: str) -> Any:
        return self.query("payments", user_id)

    def query(self, projection: str, *key: Any) -> Any:
        """The read model of ``projection`` at ``key``, from the snapshot
        store; raises :class:`ModelNotFound` when there is none."""
        self.open()
        registered = self.registry.get(projection)
        self._queries += 1
        state = self.snapshots.get_model(projection, tuple(key))
        if state is None:
            raise ModelNotFound(projection, tuple(key))
        return registered.from_state(state)

    def export(self, projection: str) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        """Every model of ``projection`` as ``(key, public fields)``, by key."""
        self.open()
        registered = self.registry.get(projection)
        rows = self.snapshots.iter_models(projection)
        return sorted((key, registered.to_public(state)) for key, state in rows)

    def differences_from_fold(self, events: Iterable[Event]) -> tuple[int, int]:
        """Compare every stored read model with a plain sequential fold of
        ``events`` (the whole log, numbered); return ``(checked,
        differences)``, counting models missing on either side."""
        expected = fold(self.registry, events)
        checked = differences = 0
        for projection in self.registry:
            stored = dict(self.export(projection.name))
            for key, state in expected.states(projection.name):
                checked += 1
                differences += stored.pop(key, None) != projection.to_public(state)
            differences += len(stored)
        return checked, differences

    # observation

    def wait_until_visible(self, sequence_number: int, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until every event up to
        ``sequence_number`` is applied and durable, so every query sees it;
        ``True`` if that happened in time."""

        def visible() -> bool:
            shards = self.status()["shards"]
            return bool(shards) and all(
                shard["checkpoint"] >= sequence_number for shard in shards
            )

        return wait_for(visible, timeout)

    def status(self) -> dict[str, Any]:
        """Head, each shard's checkpoint and the lag; from the stores alone
        when the engine is not running."""
        self.open()
        if self._dispatcher is not None:
            status: dict[str, Any] = _get(self._dispatcher.status.remote())
        else:
            status = self._stored_status()
        status["read_model_queries_total"] = self._queries
        status["projection_errors_total"] = self._errors
        return status

    def _stored_status(self) -> dict[str, Any]:
        head = self.events.head()
        checkpoints = self.snapshots.read_checkpoints()
        lowest = min((c.sequence_number for c in checkpoints), default=0)
        quarantines = self.snapshots.iter_models(QUARANTINE.name)
        return {
            "head": head,
            "lag_events": max(0, head - lowest),
            "quarantined_users": sum(1 for _, q in quarantines if q["active"]),
            "shards": [
                {
                    "shard": c.shard,
                    "shard_count": c.shard_count,
                    "checkpoint": c.sequence_number,
                }
                for c in checkpoints
            ],
        }

    def health_check(self) -> dict[str, Any]:
        """``healthy`` is false when the engine is not running, the lag
        passes its threshold, the snapshot store is unreachable, or the
        engine has failed."""
        problems: list[str] = []
        status: dict[str, Any] = {}
        try:
            self.open()
            self.snapshots.ping()
        except ProjectionistError as error:
            problems.append(f"snapshot store unreachable: {error}")
        if self._live is None:
            problems.append("engine is not running")
        else:
            status = self._live_status(problems)
        if status.get("event_store_error"):
            problems.append(f"event store unreachable: {status['event_store_error']}")
        lag = status.get("projection_lag_seconds", 0.0)
        if lag > self.settings.lag_threshold_seconds:
            problems.append(f"lag {lag}s passes {self.settings.lag_threshold_seconds}s")
        return {"healthy": not problems, "problems": problems, **status}

    def _live_status(self, problems: list[str]) -> dict[str, Any]:
        ready, _ = ray.wait([self._live], timeout=0)
        if ready:
            try:
                _get(self._live)
                problems.append("engine stopped")
            except Exception as error:
                self._errors += 1
                problems.append(f"engine failed: {error}")
            return {}
        return self.status()


def _get(ref: Any) -> Any:
    """``ray.get``, with an error raised inside an actor re-raised as itself:
    the one place where Ray's task errors are translated."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        cause = error.cause
        if isinstance(cause, ProjectionistError):
            raise cause from None
        raise


def registry_from_settings(settings: Settings) -> Registry:
    """The payments pack plus every projection named in the settings."""
    registry = payments_registry()
    for path in settings.projection_paths:
        registry.register(_import_projection(path))
    return registry


def _import_projection(path: str) -> Projection:
    # Like ``python -m``: modules in the working directory can be named.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name, _, attribute = path.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ConfigurationError(
            f"cannot load projection {path!r}: {error}; use 'module:attribute'"
        ) from None
    if not isinstance(found, Projection):
        raise ConfigurationError(f"{path!r} is not a Projection")
    return found


def wait_for(
    condition: Callable[[], bool], timeout: float, interval: float = 0.05
) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
