"""In-memory stores: the reference the other backends are tested against.

They keep what they store encoded, exactly as a durable store would, so a
caller can never change a stored value by mutating what it passed or got.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from engine import (
    AppendResult,
    Event,
    Flush,
    OpenWriter,
    Owner,
    ShardCheckpoint,
    StoredRow,
    decode_event,
    encode_event,
    pack_key,
    route_of,
    unpack,
    unpack_key,
)

from ._append import Numbering, duplicate_event_id
from ._snapshots import check_claim, check_owner, encode_record, layout


class MemoryEventStore:
    """An event log in this process's memory; gone when the process ends."""

    def __init__(self) -> None:
        # Re-entrant: the iterable being appended may itself read the log.
        self._lock = threading.RLock()
        self._appended = threading.Condition(self._lock)
        self._appends = 0
        self._seen = 0
        self._numbers: list[int] = []
        self._rows: list[StoredRow] = []
        self._event_ids: set[str] = set()

    def append(self, events: Iterable[Event]) -> AppendResult:
        """Append ``events`` all or none; see :meth:`engine.EventStore.append`."""
        with self._lock:
            numbering = Numbering(self._numbers[-1] if self._numbers else 0)
            staged: list[StoredRow] = []
            staged_ids: set[str] = set()
            for event in events:
                number = numbering.number(event)
                if event.event_id in self._event_ids or event.event_id in staged_ids:
                    raise duplicate_event_id(event.event_id, number)
                staged_ids.add(event.event_id)
                route = route_of(event.user_id)
                staged.append(StoredRow(number, route, encode_event(event)))

            # Nothing above touched the log, so an error there left it as it was.
            self._rows.extend(staged)
            self._numbers.extend(row.sequence_number for row in staged)
            self._event_ids.update(staged_ids)
            if staged:
                self._appends += 1
                self._appended.notify_all()
            return numbering.result()

    def read_after(self, after: int, limit: int) -> list[StoredRow]:
        """Up to ``limit`` rows numbered above ``after``, in order."""
        with self._lock:
            start = bisect.bisect_right(self._numbers, after)
            return self._rows[start : start + max(limit, 0)]

    def read_events_after(self, after: int, limit: int) -> list[Event]:
        """Like :meth:`read_after`, decoded into events."""
        rows = self.read_after(after, limit)
        return [decode_event(row.sequence_number, row.payload) for row in rows]

    def head(self) -> int:
        """The greatest stored sequence number, or 0 for an empty log."""
        with self._lock:
            return self._numbers[-1] if self._numbers else 0

    @property
    def gaps_may_fill(self) -> bool:
        """Appends are numbered and made visible under one lock: no gap fills."""
        return False

    def open_writers(self) -> list[OpenWriter]:
        """Appends hold the lock to their end: none is ever half done."""
        return []

    def listen(self) -> None:
        """Report appends from now on."""
        with self._lock:
            self._seen = self._appends

    def wait_for_append(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for an append since the last call."""
        with self._lock:
            woken = self._appended.wait_for(
                lambda: self._appends != self._seen, timeout
            )
            self._seen = self._appends
            return woken

    def close(self) -> None:
        """Nothing to release; the log stays readable."""


class MemorySnapshotStore:
    """Read models, checkpoints and shard owners in this process's memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, dict[bytes, tuple[int, bytes]]] = {}
        self._checkpoints: dict[int, ShardCheckpoint] = {}
        self._generation = 0
        self._epochs: dict[int, int] = {}

    def write_flush(self, flush: Flush) -> None:
        """Write the models and the checkpoint together, if ``flush.owner`` is
        unset or still the shard's current owner.

        Every state is encoded before anything changes, so a state the codec
        refuses (a float) raises ``TypeError`` and leaves the store as it was.
        A fenced-out owner raises :class:`engine.OwnershipLost`, writing nothing.
        """
        encoded = [encode_record(model) for model in flush.models]
        with self._lock:
            if flush.owner is not None:
                shard = flush.checkpoint.shard
                current = Owner(self._generation, self._epochs.get(shard, 0))
                check_owner(shard, current, flush.owner)
            for projection, key, route, state in encoded:
                self._models.setdefault(projection, {})[key] = (route, state)
            checkpoint = flush.checkpoint
            self._checkpoints[checkpoint.shard] = checkpoint

    def begin_generation(self) -> int:
        """Start the next generation (1 for a new store) and return it."""
        with self._lock:
            self._generation += 1
            return self._generation

    def claim_shard(self, generation: int, shard: int) -> Owner:
        """Give ``shard`` its next epoch (1 for its first claim) within
        ``generation``, which must be the current one."""
        with self._lock:
            check_claim(shard, self._generation, generation)
            epoch = self._epochs.get(shard, 0) + 1
            self._epochs[shard] = epoch
        return Owner(generation, epoch)

    def read_checkpoints(self) -> list[ShardCheckpoint]:
        """Every stored shard checkpoint, in shard order."""
        with self._lock:
            return [self._checkpoints[shard] for shard in sorted(self._checkpoints)]

    def reset_layout(self, shard_count: int, sequence_number: int) -> None:
        """Replace all checkpoints by a new layout; models are kept."""
        checkpoints = layout(shard_count, sequence_number)
        with self._lock:
            self._checkpoints = {c.shard: c for c in checkpoints}

    def load_models(
        self, shard: int, shard_count: int
    ) -> Iterator[tuple[str, tuple[Any, ...], dict[str, Any]]]:
        """Yield ``(projection, key, state)`` for the models of ``shard``."""
        with self._lock:
            chosen = [
                (projection, key, state)
                for projection, table in self._models.items()
                for key, (route, state) in table.items()
                if route % shard_count == shard
            ]
        for projection, key, state in chosen:
            yield projection, unpack_key(key), unpack(state)

    def get_model(self, projection: str, key: tuple[Any, ...]) -> dict[str, Any] | None:
        """The state of one model, or ``None`` when there is none."""
        with self._lock:
            found = self._models.get(projection, {}).get(pack_key(key))
        return None if found is None else unpack(found[1])

    def iter_models(
        self, projection: str
    ) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
        """Yield ``(key, state)`` for every model of ``projection``."""
        with self._lock:
            chosen = list(self._models.get(projection, {}).items())
        for key, (_route, state) in chosen:
            yield unpack_key(key), unpack(state)

    def ping(self) -> None:
        """Always reachable."""

    def clear(self) -> None:
        """Delete every model, checkpoint and owner; generations start over."""
        with self._lock:
            self._models.clear()
            self._checkpoints.clear()
            self._generation = 0
            self._epochs.clear()

    def close(self) -> None:
        """Nothing to release; the models stay readable."""
