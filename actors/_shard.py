"""The ProjectionShard actor: a thin Ray wrapper around ``ShardCore``."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import ray
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

from engine import (
    FlushPolicy,
    Registry,
    Settings,
    ShardBatch,
    ShardCore,
    ShardReply,
    SnapshotStoreError,
)

from ._refs import StoreRef, open_snapshots

logger = logging.getLogger(__name__)


@ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0)
class ProjectionShard:
    """Owns the read models of the users routed to one shard.

    Ray restarts it after a crash; the constructor then reloads the shard's
    snapshot and checkpoint, and the dispatcher resends what is missing.
    Calls from the dispatcher run one at a time, in the order sent.
    """

    def __init__(
        self,
        shard: int,
        shard_count: int,
        store: StoreRef,
        registry: Registry,
        settings: Settings,
        generation: int,
    ) -> None:
        # Ray never restarts an actor whose constructor raised, so a store
        # that is down while this shard (re)starts is waited for.
        retrying = Retrying(
            retry=retry_if_exception_type(SnapshotStoreError),
            stop=stop_after_delay(settings.flush_patience_seconds),
            wait=wait_exponential_jitter(multiplier=0.1, max=5.0, jitter=0.1),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                self.core = _build(
                    shard, shard_count, store, registry, settings, generation
                )
        epoch = self.core.owner.epoch if self.core.owner else 0
        logger.info(
            "shard %s of %s started at checkpoint %s as epoch %s",
            shard,
            shard_count,
            self.core.durable,
            epoch,
        )

    def apply(
        self, after: int, upto: int, numbers: Sequence[int], payloads: bytes
    ) -> ShardReply:
        return self.core.apply(ShardBatch(after, upto, numbers, payloads))

    def flush(self) -> ShardReply:
        return self.core.flush()

    def tick(self) -> ShardReply:
        return self.core.tick()

    def position(self) -> ShardReply:
        return self.core.reply()

    def pid(self) -> int:
        """The process id, so tests can kill this shard's process."""
        return os.getpid()


def _build(
    shard: int,
    shard_count: int,
    store: StoreRef,
    registry: Registry,
    settings: Settings,
    generation: int,
) -> ShardCore:
    # Claim the shard before loading it: a previous incarnation still
    # running somewhere can no longer flush once this one is owner.
    snapshots = open_snapshots(store)
    owner = snapshots.claim_shard(generation, shard)
    return ShardCore(
        shard,
        shard_count,
        registry,
        snapshots,
        FlushPolicy(settings.checkpoint_interval, settings.flush_interval_ms),
        owner=owner,
        max_retries=settings.max_retries,
        max_unflushed=settings.max_unflushed,
        patience_seconds=settings.flush_patience_seconds,
    )
