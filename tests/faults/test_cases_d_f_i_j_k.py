"""Field cases D, F, I, J and K on a real local Ray and a real redis-server.

D: live on F10, Redis drops every connection and one shard restarts alone;
event 11 is then applied once and nothing before it again. F: a handler
fails on its first attempt at event 4 and the engine dies before the retry
succeeds; after a restart 4 is applied exactly once, and no checkpoint
covered it before. I: Redis refuses
connections around the flush that covers 10. J: the reply of that flush is
lost after Redis ran it. K: the shard that owns u2 dies before its first
flush and rebuilds u2 from the start of the log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import ray
import redis
from flaky_credits import FAILED, RELEASE, credits_seen
from flaky_credits import NAME as CREDITS_SEEN

from actors import Projectionist, wait_for
from engine import (
    DEAD_LETTERS,
    WALLET_CREDITED,
    Event,
    Registry,
    ShardCheckpoint,
    ShardReply,
    pack_key,
    payments_registry,
    shard_of,
    split_batch,
)
from stores import open_snapshot_store

pytestmark = [
    pytest.mark.ray,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.usefixtures("local_ray"),
]

SHARDS = 3
NEVER = 10**9
PATIENCE_S = 120.0
OUTAGE_S = 2.0
F10_COUNTS = {
    ("balance", ("u1", "EUR")): 1,
    ("balance", ("u1", "USD")): 3,
    ("balance", ("u2", "EUR")): 1,
    ("balance", ("u2", "USD")): 1,
    ("balance", ("u3", "USD")): 1,
}


def events_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'events.db'}"


def credited(number: int, user: str, currency: str, amount: str) -> Event:
    data = {"user_id": user, "currency": currency, "amount": Decimal(amount)}
    moment = datetime(2026, 1, 5, 10, 1, tzinfo=UTC)
    return Event(number, f"e-{number}", WALLET_CREDITED, moment, data)


def stored_checkpoints(store_url: str) -> list[ShardCheckpoint]:
    """The checkpoints as the store holds them, read on a new connection."""
    store = open_snapshot_store(store_url)
    try:
        return store.read_checkpoints()
    finally:
        store.close()


def positions(store_url: str) -> list[int]:
    return [c.sequence_number for c in stored_checkpoints(store_url)]


def transaction_counts(engine: Projectionist) -> dict[tuple[str, tuple[Any, ...]], int]:
    return {
        ("balance", key): state["transaction_count"]
        for key, state in engine.export("balance")
    }


def pid_of(shard: Any) -> int:
    pid: int = ray.get(shard.pid.remote(), timeout=PATIENCE_S)
    return pid


def kill_process_of(shard: Any) -> int:
    """SIGKILL the shard's process and wait until Ray has restarted it."""
    killed = pid_of(shard)
    assert killed != os.getpid()
    os.kill(killed, signal.SIGKILL)
    assert wait_for(lambda: pid_of(shard) != killed, PATIENCE_S, interval=0.2)
    return killed


def caught_up_at(engine: Projectionist, head: int) -> Callable[[], bool]:
    def check() -> bool:
        status = engine.status()
        shards = status["shards"]
        return bool(shards) and all(s["checkpoint"] == head for s in shards)

    return check


@pytest.fixture
def started(
    tmp_path: Path,
    redis_prefix_url: str,
    f10_events: list[Event],
    stop_engine: Callable[[Projectionist], None],
) -> Iterator[Projectionist]:
    """A live engine over F10 on Redis, caught up; stopped afterwards."""
    engine = Projectionist(events_url(tmp_path), redis_prefix_url, shards=SHARDS)
    engine.append(f10_events)
    engine.start()
    try:
        assert wait_for(caught_up_at(engine, 10), PATIENCE_S)
        yield engine
    finally:
        stop_engine(engine)


def test_d_dropped_redis_connections_and_a_restarted_shard_apply_11_once(
    started: Projectionist,
    redis_url: str,
    redis_prefix_url: str,
    assert_f10: Callable[..., None],
) -> None:
    engine = started
    assert_f10(engine.export, positions(redis_prefix_url))

    # Redis drops every client connection: the shards', the dispatcher's
    # and the engine's own. SQLite has no connection to drop.
    admin = redis.Redis.from_url(redis_url)
    try:
        dropped = admin.client_kill_filter(_type="normal", skipme=True)
    finally:
        admin.close()
    assert dropped >= SHARDS
    assert transaction_counts(engine) == F10_COUNTS

    # Separately, u1's shard restarts alone and reloads from its checkpoint.
    victim = engine._shards[shard_of("u1", SHARDS)]
    kill_process_of(victim)
    assert ray.get(victim.position.remote()) == ShardReply(
        shard_of("u1", SHARDS), 10, 10
    )

    engine.append([credited(11, "u1", "USD", "1.00")])

    assert wait_for(caught_up_at(engine, 11), PATIENCE_S)
    assert positions(redis_prefix_url) == [11] * SHARDS
    balance = engine.get_balance("u1", "USD")
    assert balance.balance == Decimal("51.00")
    assert balance.transaction_count == 4
    assert balance.last_event_version == 11
    summary = engine.get_wallet_summary("u1", "USD")
    assert (summary.total_credits, summary.transaction_count) == (Decimal("101.00"), 4)
    expected = {**F10_COUNTS, ("balance", ("u1", "USD")): 4}
    assert transaction_counts(engine) == expected


def test_d_a_shard_restarted_while_redis_drops_every_connection_applies_11_once(
    tmp_path: Path,
    redis_proxy: Any,
    redis_url: str,
    f10_events: list[Event],
    stop_engine: Callable[[Projectionist], None],
) -> None:
    engine, direct_url = behind_proxy("d", tmp_path, redis_proxy, redis_url)
    engine.append(f10_events)
    engine.start()
    try:
        assert wait_for(lambda: positions(direct_url) == [10] * SHARDS, PATIENCE_S)
        victim = engine._shards[shard_of("u1", SHARDS)]
        killed = pid_of(victim)

        # Redis drops every connection, and meanwhile u1's shard dies and is
        # restarted: its new incarnation cannot claim the shard or load its
        # snapshot until Redis is back.
        redis_proxy.drop_connections()
        os.kill(killed, signal.SIGKILL)
        assert wait_for(lambda: redis_proxy.dropped > 0, PATIENCE_S)
        time.sleep(OUTAGE_S)
        redis_proxy.accept()
        assert wait_for(lambda: answers(victim), PATIENCE_S, interval=0.2)

        engine.append([credited(11, "u1", "USD", "1.00")])

        assert wait_for(lambda: positions(direct_url) == [11] * SHARDS, PATIENCE_S)
        balance = engine.get_balance("u1", "USD")
        assert (balance.balance, balance.transaction_count) == (Decimal("51.00"), 4)
        stop_engine(engine)
    finally:
        if not redis_proxy.accepting:
            redis_proxy.accept()
        with contextlib.suppress(Exception):
            engine.stop()
        engine.open()
        engine.snapshots.clear()
        engine.stop()


def answers(shard: Any) -> bool:
    """Whether ``shard`` answers now; raises if Ray has given it up."""
    try:
        ray.get(shard.position.remote(), timeout=1.0)
    except ray.exceptions.GetTimeoutError:
        return False
    return True


def test_f_an_engine_killed_before_4s_retry_applies_4_once_after_restart(
    tmp_path: Path,
    f10_events: list[Event],
    assert_f10: Callable[..., None],
    stop_engine: Callable[[Projectionist], None],
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    registry = payments_registry()
    registry.register(credits_seen(markers, failing=4))
    models_url = f"sqlite:///{tmp_path / 'models.db'}"
    options = {"shards": SHARDS, "batch_size": 2, "checkpoint_interval": 1}
    first = Projectionist(
        events_url(tmp_path), models_url, registry=registry, **options
    )
    first.append(f10_events)
    first.prepare()
    owner = shard_of("u1", SHARDS)
    errors: list[BaseException] = []
    runner = threading.Thread(target=_start, args=(first, errors), daemon=True)
    runner.start()

    # The first attempt at 4 fails; the retry waits for a release that the
    # kill comes before. Other shards go on and flush.
    assert wait_for((markers / FAILED).exists, PATIENCE_S)
    assert wait_for(lambda: _stored(models_url).get(0, 0) >= 9, PATIENCE_S)
    assert_nothing_durable_covers_4(models_url, registry, owner)

    # The process dies: every actor of the engine ends at once, unflushed.
    for handle in [first._dispatcher, *first._shards]:
        ray.kill(handle, no_restart=True)
    runner.join(PATIENCE_S)
    assert not runner.is_alive()
    assert errors, "the catch-up went on without its actors"
    assert_nothing_durable_covers_4(models_url, registry, owner)

    (markers / RELEASE).touch()
    second = Projectionist(
        events_url(tmp_path), models_url, registry=registry, **options
    )
    try:
        second.start(live=False)
        assert_f10(second.export, positions(models_url))
        seen = dict(second.export(CREDITS_SEEN))
        assert {key: state["applied"] for key, state in seen.items()} == {
            ("u1",): [1, 4],
            ("u2",): [2, 9],
            ("u3",): [6],
        }
        assert second.get_balance("u1", "EUR").transaction_count == 1
        assert second.export(DEAD_LETTERS.name) == []
    finally:
        stop_engine(second)


def assert_nothing_durable_covers_4(
    models_url: str, registry: Registry, owner: int
) -> None:
    """No checkpoint of u1's shard covers 4, and no durable model of that
    shard has seen an event past its checkpoint."""
    checkpoint = _stored(models_url).get(owner, 0)
    assert checkpoint < 4
    store = open_snapshot_store(models_url)
    try:
        for projection in registry:
            for key, state in store.iter_models(projection.name):
                if shard_of(key[0], SHARDS) == owner:
                    assert state["last_event_version"] <= checkpoint, key
    finally:
        store.close()


def behind_proxy(
    case: str, folder: Path, proxy: Any, redis_url: str, **settings: Any
) -> tuple[Projectionist, str]:
    """An engine whose Redis is reached through ``proxy``, under a prefix of
    its own, and the direct URL of that prefix for checking behind it."""
    prefix = f"faults-{case}-{os.getpid()}-{time.monotonic_ns()}"
    engine = Projectionist(
        events_url(folder),
        f"{proxy.url}?prefix={prefix}",
        shards=SHARDS,
        **settings,
    )
    return engine, f"{redis_url}?prefix={prefix}"


def _stored(store_url: str) -> dict[int, int]:
    return {c.shard: c.sequence_number for c in stored_checkpoints(store_url)}


def test_i_redis_refusing_connections_around_the_last_flush_still_stores_f10(
    tmp_path: Path,
    redis_proxy: Any,
    redis_url: str,
    f10_events: list[Event],
    assert_f10: Callable[..., None],
    stop_engine: Callable[[Projectionist], None],
) -> None:
    engine, direct_url = behind_proxy(
        "i",
        tmp_path,
        redis_proxy,
        redis_url,
        checkpoint_interval=NEVER,
        flush_interval_ms=NEVER,
    )
    engine.append(f10_events)
    engine.prepare()
    errors: list[BaseException] = []
    try:
        # Redis goes away; the catch-up applies 1..10 and reaches its flush.
        redis_proxy.refuse()
        runner = threading.Thread(target=_start, args=(engine, errors), daemon=True)
        runner.start()
        assert wait_for(lambda: _all_applied(engine, 10), PATIENCE_S, interval=0.1)

        # The flush that covers 10 keeps failing while Redis is away.
        time.sleep(OUTAGE_S)
        assert stored_checkpoints(direct_url) == []
        assert runner.is_alive()

        redis_proxy.accept()
        runner.join(PATIENCE_S)
        assert not runner.is_alive()
        assert not errors, errors

        # Reported done: every model is there with its checkpoint.
        store = open_snapshot_store(direct_url)
        try:
            assert_f10(_exporter(store), positions(direct_url))
        finally:
            store.close()
    finally:
        if not redis_proxy.accepting:
            redis_proxy.accept()
        stop_engine(engine)

    # A fresh engine with nothing but Redis serves F10.
    fresh = Projectionist(f"sqlite:///{tmp_path / 'empty.db'}", direct_url)
    try:
        fresh.start(live=False)
        assert_f10(fresh.export, positions(direct_url))
        assert fresh.get_balance("u1", "USD").balance == Decimal("50.00")
    finally:
        stop_engine(fresh)
        fresh.open()
        fresh.snapshots.clear()
        fresh.stop()


def test_j_a_flush_whose_reply_was_lost_is_repeated_without_counting_twice(
    tmp_path: Path,
    redis_proxy: Any,
    redis_url: str,
    f10_events: list[Event],
    assert_f10: Callable[..., None],
    stop_engine: Callable[[Projectionist], None],
) -> None:
    engine, direct_url = behind_proxy(
        "j",
        tmp_path,
        redis_proxy,
        redis_url,
        checkpoint_interval=NEVER,
        flush_interval_ms=NEVER,
    )
    engine.append(f10_events)
    try:
        engine.prepare()
        # u1's models travel as the msgpack string "u1" inside the script's
        # arguments: the first flush carrying them runs, its reply is lost.
        redis_proxy.lose_reply_once(pack_key(("u1",))[1:])
        engine.start(live=False)
        assert redis_proxy.replies_lost == 1

        assert_f10(engine.export, positions(direct_url))
        balance = engine.get_balance("u1", "USD")
        assert (balance.balance, balance.transaction_count) == (Decimal("50.00"), 3)
    finally:
        stop_engine(engine)
        engine.open()
        engine.snapshots.clear()
        engine.stop()


def test_k_the_shard_of_u2_killed_before_its_first_flush_rebuilds_u2_from_0(
    tmp_path: Path,
    redis_prefix_url: str,
    f10_events: list[Event],
    assert_f10: Callable[..., None],
    stop_engine: Callable[[Projectionist], None],
) -> None:
    shards = 2
    engine = Projectionist(
        events_url(tmp_path),
        redis_prefix_url,
        shards=shards,
        checkpoint_interval=NEVER,
        flush_interval_ms=NEVER,
    )
    engine.append(f10_events)
    try:
        engine.prepare()
        owner = shard_of("u2", shards)
        victim = engine._shards[owner]

        # Every shard applies 1..10 as the dispatcher would send them; none
        # flushes, so the store has neither a checkpoint nor a model.
        rows = engine.events.read_after(0, 10)
        batches = split_batch(rows, 0, shards)
        assert {2, 5, 7, 9} <= set(batches[owner].sequence_numbers)
        ray.get(
            [
                shard.apply.remote(b.after, b.upto, b.sequence_numbers, b.payloads)
                for shard, b in zip(engine._shards, batches, strict=True)
            ]
        )
        assert ray.get(victim.position.remote()) == ShardReply(owner, 10, 0)
        assert stored_checkpoints(redis_prefix_url) == []

        kill_process_of(victim)
        assert ray.get(victim.position.remote()) == ShardReply(owner, 0, 0)

        engine.start(live=False)
        assert_f10(engine.export, positions(redis_prefix_url))
        assert engine.get_balance("u2", "EUR").transaction_count == 1
        payments = engine.get_payment_status("u2")
        assert (payments.total_payments, payments.completed_payments) == (1, 1)
    finally:
        stop_engine(engine)


def _start(engine: Projectionist, errors: list[BaseException]) -> None:
    try:
        engine.start(live=False)
    except BaseException as error:
        errors.append(error)


def _all_applied(engine: Projectionist, head: int) -> bool:
    status = ray.get(engine._dispatcher.status.remote(), timeout=PATIENCE_S)
    shards = status["shards"]
    return len(shards) == SHARDS and all(s["applied"] == head for s in shards)


def _exporter(store: Any) -> Callable[[str], list[tuple[Any, Any]]]:
    registry = payments_registry()

    def export(name: str) -> list[tuple[Any, Any]]:
        projection = registry.get(name)
        rows = store.iter_models(name)
        return sorted((key, projection.to_public(state)) for key, state in rows)

    return export
