"""The Dispatcher actor: reads the log in batches and feeds the shards."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

import ray
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_when_event_set,
    wait_exponential_jitter,
)

from engine import EventStoreError, HighWaterMark, Settings, ShardReply, split_batch

from ._refs import StoreRef, open_events

logger = logging.getLogger(__name__)

OUTAGE_MAX_PAUSE_S = 30.0


@ray.remote(max_restarts=-1, max_task_retries=-1, max_concurrency=4, num_cpus=0)
class Dispatcher:
    """Reads events after the lowest shard position and routes them.

    Up to ``max_in_flight`` batches are on their way at once. Each shard
    answers with how far it has applied; a shard that lost state (it was
    restarted) answers with a gap, and the dispatcher resends from there.
    A missing sequence number that may still commit holds reading back (see
    :class:`engine.HighWaterMark`). ``run`` is the main loop; ``status`` and
    ``stop`` answer while it runs.
    """

    def __init__(
        self, events: StoreRef, shard_names: list[str], settings: Settings
    ) -> None:
        # Shards are found by name: a restarted dispatcher needs nothing
        # from the object store to be rebuilt.
        self.store = open_events(events)
        # Listen before the first read, so that no append made after it,
        # even one made between the last catch-up read and the first wait,
        # goes unnoticed.
        self.store.listen()
        self.shards = [ray.get_actor(name) for name in shard_names]
        self.settings = settings
        self.replies: dict[int, ShardReply] = {}
        self._record(ray.get([shard.position.remote() for shard in self.shards]))
        self.sent = min(reply.applied for reply in self.replies.values())
        self.high_water = HighWaterMark(
            self.store.gaps_may_fill,
            settings.gap_timeout_ms / 1000,
            mark=max(reply.applied for reply in self.replies.values()),
        )
        self.flushed: int | None = None
        self.store_error: str | None = None
        self.dispatched = 0
        self.caught_up = False
        self.behind_since: float | None = None
        self._stopping = threading.Event()
        logger.info("dispatcher starting after sequence number %s", self.sent)

    def run(self, live: bool) -> dict[str, Any]:
        """Catch up to the head; with ``live``, keep following it until
        :meth:`stop`. Returns :meth:`status` once every shard has flushed.

        A :meth:`stop` that arrives before a live run starts still ends it:
        calls to this actor may run in any order."""
        in_flight: deque[tuple[int, list[Any]]] = deque()
        while not self._stopping.is_set():
            try:
                if not self._step(in_flight, live):
                    break
            except EventStoreError as error:
                self._wait_for_store(error)
        self._drain(in_flight)
        self._flush_all()
        return self.status()

    def _step(self, in_flight: deque[tuple[int, list[Any]]], live: bool) -> bool:
        # One turn of the main loop; ``False`` once a catch-up is done.
        at_head = self._fill(in_flight)
        if in_flight:
            self._settle(in_flight.popleft(), in_flight)
        elif at_head and self.flushed != self.sent:
            self._flush_all()
        elif at_head and self.high_water.deadline() is None and not live:
            return False
        else:
            self._idle()
        return True

    def _wait_for_store(self, error: EventStoreError) -> None:
        # The event store stopped answering (its own reconnects ran out):
        # ask it again with growing pauses until it answers or stop() is
        # called; the position is kept, so nothing is read twice.
        self.store_error = str(error)
        logger.warning("event store unreachable, waiting for it: %s", error)
        probe = Retrying(
            retry=retry_if_exception_type(EventStoreError),
            wait=wait_exponential_jitter(initial=0.5, max=OUTAGE_MAX_PAUSE_S),
            sleep=self._stopping.wait,
            stop=stop_when_event_set(self._stopping),
            reraise=True,
        )
        try:
            probe(self.store.head)
        except EventStoreError:
            return
        self.store_error = None
        logger.info("event store answers again; going on after %s", self.sent)

    def _fill(self, in_flight: deque[tuple[int, list[Any]]]) -> bool:
        # Read and send until the window is full, or until the head or a gap
        # that may still fill is reached.
        limit = self.settings.batch_size
        while len(in_flight) < self.settings.max_in_flight:
            read, rows = self._read_safe(limit)
            if not rows:
                return True
            self._mark_behind()
            batches = split_batch(rows, self.sent, len(self.shards))
            refs = [
                shard.apply.remote(b.after, b.upto, b.sequence_numbers, b.payloads)
                for shard, b in zip(self.shards, batches, strict=True)
            ]
            in_flight.append((batches[0].upto, refs))
            logger.debug("sent %s events up to %s", len(rows), batches[0].upto)
            self.sent = batches[0].upto
            self.dispatched += len(rows)
            if len(read) < limit or len(rows) < len(read):
                return True
        return False

    def _read_safe(self, limit: int) -> tuple[list[Any], list[Any]]:
        # The rows read after ``sent``, and the part of them safe to apply.
        read = self.store.read_after(self.sent, limit)
        settled_below = 0
        if self.high_water.note(self.sent, read):
            writers = self.store.open_writers()
            if writers is not None:
                settled_below = self.high_water.weigh(writers)
        if settled_below:
            # No writer is left that could fill the gaps below that number:
            # read again (one may have committed just before the check), and
            # what is still missing there is a hole.
            read = self.store.read_after(self.sent, limit)
        return read, self.high_water.settle(self.sent, read, settled_below)

    def _settle(
        self, batch: tuple[int, list[Any]], in_flight: deque[tuple[int, list[Any]]]
    ) -> None:
        replies: list[ShardReply] = ray.get(batch[1])
        self._record(replies)
        gaps = [reply.applied for reply in replies if reply.gap]
        if gaps:
            # A restarted shard lost what it had not flushed: resend from
            # the lowest position any shard reported.
            self._drain(in_flight)
            self.sent = min(self.sent, *gaps)
            logger.warning("a shard restarted; resending after %s", self.sent)

    def _drain(self, in_flight: deque[tuple[int, list[Any]]]) -> None:
        while in_flight:
            self._record(ray.get(in_flight.popleft()[1]))

    def _flush_all(self) -> None:
        self._record(ray.get([shard.flush.remote() for shard in self.shards]))
        lowest = min(reply.applied for reply in self.replies.values())
        if lowest < self.sent:
            # A shard restarted since its batches were settled: resend.
            self.sent = lowest
            return
        self.flushed = self.sent
        if self.high_water.deadline() is not None:
            return
        self.caught_up = True
        self.behind_since = None
        logger.info("caught up at sequence number %s", self.sent)

    def _idle(self) -> None:
        # Wait for an append, the poll interval, or the pending gap's
        # deadline, whichever comes first; then let the shards flush by time.
        timeout = self.settings.poll_interval_ms / 1000
        deadline = self.high_water.deadline()
        if deadline is not None:
            timeout = min(timeout, max(0.0, deadline - time.monotonic()))
        self.store.wait_for_append(timeout)
        self._record(ray.get([shard.tick.remote() for shard in self.shards]))

    def _mark_behind(self) -> None:
        self.caught_up = False
        if self.behind_since is None:
            self.behind_since = time.monotonic()

    def _record(self, replies: list[ShardReply]) -> None:
        for reply in replies:
            self.replies[reply.shard] = reply

    def _head(self) -> int:
        # The store's head, or the position reached while it is unreachable.
        try:
            head = self.store.head()
        except EventStoreError as error:
            self.store_error = str(error)
            return self.sent
        self.store_error = None
        return head

    def stop(self) -> None:
        """Ask :meth:`run` to finish: it drains, flushes and returns."""
        self._stopping.set()

    def status(self) -> dict[str, Any]:
        """Positions, lag and counters, as plain values."""
        head = self._head()
        durable = min(reply.durable for reply in self.replies.values())
        lag = 0.0 if self.behind_since is None else time.monotonic() - self.behind_since
        return {
            "head": head,
            "dispatched": self.sent,
            "caught_up": self.caught_up and durable >= head,
            "events_processed_total": self.dispatched,
            "permanent_holes": self.high_water.holes,
            "event_store_error": self.store_error,
            "waiting_for_gap": self.high_water.deadline() is not None,
            "projection_lag_seconds": round(lag, 3),
            "lag_events": max(0, head - durable),
            "shards": [
                {"shard": r.shard, "applied": r.applied, "checkpoint": r.durable}
                for r in sorted(self.replies.values(), key=lambda r: r.shard)
            ],
        }
