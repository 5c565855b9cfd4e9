"""``memory://`` stores shared by every process of one engine.

An in-memory store lives inside one Ray actor; the shards, the dispatcher
and the driver reach it through a proxy that forwards each call.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import ray

from engine import (
    AppendResult,
    Event,
    Flush,
    OpenWriter,
    Owner,
    ShardCheckpoint,
    StoredRow,
)
from stores import HeadPoll, MemoryEventStore, MemorySnapshotStore


@ray.remote(num_cpus=0)
class StoreHost:
    """Holds one in-memory store and runs the calls forwarded to it."""

    def __init__(self, kind: str) -> None:
        self._store: Any = (
            MemoryEventStore() if kind == "events" else MemorySnapshotStore()
        )

    def call(self, method: str, *args: Any) -> Any:
        result = getattr(self._store, method)(*args)
        if isinstance(result, Iterator):
            return list(result)
        return result


class _Proxy:
    def __init__(self, host: Any) -> None:
        self._host = host

    def _call(self, method: str, *args: Any) -> Any:
        return ray.get(self._host.call.remote(method, *args))

    def close(self) -> None:
        """The host outlives its proxies; the engine kills it at stop."""


class HostedEventStore(_Proxy):
    """An :class:`EventStore` living in a :class:`StoreHost`."""

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self._poll = HeadPoll(self.head)

    def append(self, events: Iterable[Event]) -> AppendResult:
        result: AppendResult = self._call("append", list(events))
        return result

    def read_after(self, after: int, limit: int) -> list[StoredRow]:
        rows: list[StoredRow] = self._call("read_after", after, limit)
        return rows

    def read_events_after(self, after: int, limit: int) -> list[Event]:
        events: list[Event] = self._call("read_events_after", after, limit)
        return events

    def head(self) -> int:
        head: int = self._call("head")
        return head

    @property
    def gaps_may_fill(self) -> bool:
        return False

    def open_writers(self) -> list[OpenWriter]:
        return []

    def listen(self) -> None:
        self._poll.listen()

    def wait_for_append(self, timeout: float) -> bool:
        """A short poll of the host's head, up to ``timeout`` seconds."""
        return self._poll.wait(timeout)


class HostedSnapshotStore(_Proxy):
    """A :class:`SnapshotStore` living in a :class:`StoreHost`."""

    def write_flush(self, flush: Flush) -> None:
        self._call("write_flush", flush)

    def read_checkpoints(self) -> list[ShardCheckpoint]:
        checkpoints: list[ShardCheckpoint] = self._call("read_checkpoints")
        return checkpoints

    def reset_layout(self, shard_count: int, sequence_number: int) -> None:
        self._call("reset_layout", shard_count, sequence_number)

    def load_models(
        self, shard: int, shard_count: int
    ) -> Iterator[tuple[str, tuple[Any, ...], dict[str, Any]]]:
        return iter(self._call("load_models", shard, shard_count))

    def get_model(self, projection: str, key: tuple[Any, ...]) -> dict[str, Any] | None:
        state: dict[str, Any] | None = self._call("get_model", projection, key)
        return state

    def iter_models(
        self, projection: str
    ) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
        return iter(self._call("iter_models", projection))

    def begin_generation(self) -> int:
        generation: int = self._call("begin_generation")
        return generation

    def claim_shard(self, generation: int, shard: int) -> Owner:
        owner: Owner = self._call("claim_shard", generation, shard)
        return owner

    def ping(self) -> None:
        self._call("ping")

    def clear(self) -> None:
        self._call("clear")
