"""What only the Redis snapshot store does: check its script's reply, keep to
its prefix, never expire, and raise one error type (OwnershipLost aside)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import redis

from engine import (
    ConfigurationError,
    Flush,
    FlushNotConfirmed,
    ModelRecord,
    Owner,
    OwnershipLost,
    ShardCheckpoint,
    SnapshotStoreError,
    pack,
    pack_key,
)
from stores import RedisSnapshotStore


def _flush(shard: int, upto: int, *users: str) -> Flush:
    models = tuple(
        ModelRecord("balance", (user, "USD"), {"balance": Decimal("1.10")})
        for user in users
    )
    return Flush(ShardCheckpoint(shard, 1, upto), models)


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisSnapshotStore]:
    opened = RedisSnapshotStore.from_url(f"{redis_url}?prefix=test-{uuid.uuid4().hex}")
    yield opened
    opened.clear()
    opened.close()


@pytest.fixture
def unreachable(free_loopback_port: int) -> RedisSnapshotStore:
    return RedisSnapshotStore.from_url(f"redis://127.0.0.1:{free_loopback_port}/0")


class _MiscountingScript:
    """Stands in for the registered flush script and writes nothing."""

    def __init__(self, reply: Any) -> None:
        self.reply = reply

    def __call__(self, keys: list[str], args: list[Any]) -> Any:
        return self.reply


@pytest.mark.redis
@pytest.mark.parametrize("reply", [0, 2, None, b"OK"])
def test_a_reply_that_does_not_count_every_field_raises_flush_not_confirmed(
    store: RedisSnapshotStore, monkeypatch: pytest.MonkeyPatch, reply: Any
) -> None:
    monkeypatch.setattr(store, "_flush_script", _MiscountingScript(reply))

    with pytest.raises(FlushNotConfirmed, match="shard 0 up to sequence number 5"):
        store.write_flush(_flush(0, 5, "u1", "u2"))

    assert store.read_checkpoints() == []


def test_flush_not_confirmed_is_a_snapshot_store_error_so_it_is_retried() -> None:
    assert issubclass(FlushNotConfirmed, SnapshotStoreError)


@pytest.mark.redis
def test_flush_arguments_that_do_not_add_up_fail_before_any_write(
    store: RedisSnapshotStore,
) -> None:
    keys = [
        f"{store.prefix}:{name}"
        for name in ("checkpoints", "generation", "owners", "model:balance")
    ]
    field, value = pack_key(("u1", "USD")), pack({"n": 1})

    with pytest.raises(redis.ResponseError, match="do not match"):
        store._flush_script(keys=keys, args=[0, pack([1, 5]), "", "", 2, field, value])

    assert store.read_checkpoints() == []
    assert list(store.iter_models("balance")) == []


@pytest.mark.redis
def test_the_flush_script_writes_models_and_checkpoint_in_one_call(
    store: RedisSnapshotStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    script = store._flush_script

    def counted(keys: list[str], args: list[Any]) -> Any:
        calls.append(len(keys))
        return script(keys=keys, args=args)

    monkeypatch.setattr(store, "_flush_script", counted)
    status = ModelRecord("payment_status", ("u1",), {"total_payments": 1})

    store.write_flush(
        Flush(ShardCheckpoint(0, 1, 3), (*_flush(0, 3, "u1").models, status))
    )

    # The checkpoints, generation and owners keys, and one hash per projection.
    assert calls == [5]
    assert store.get_model("payment_status", ("u1",)) == {"total_payments": 1}


@pytest.mark.redis
def test_models_checkpoints_and_owners_never_expire(store: RedisSnapshotStore) -> None:
    owner = store.claim_shard(store.begin_generation(), 0)
    store.write_flush(Flush(ShardCheckpoint(0, 1, 1), _flush(0, 1, "u1").models, owner))
    client = redis.Redis.from_url(store_url_of(store))

    ttls = [client.ttl(key) for key in client.scan_iter(match=f"{store.prefix}:*")]

    assert len(ttls) == 4
    assert set(ttls) == {-1}
    client.close()


def store_url_of(store: RedisSnapshotStore) -> str:
    options = store._client.connection_pool.connection_kwargs
    return f"redis://{options['host']}:{options['port']}/{options['db']}"


@pytest.mark.redis
def test_clear_leaves_other_prefixes_alone_even_when_they_match_as_globs(
    redis_url: str,
) -> None:
    tag = uuid.uuid4().hex
    wild = RedisSnapshotStore.from_url(f"{redis_url}?prefix=t{tag}*")
    other = RedisSnapshotStore.from_url(f"{redis_url}?prefix=t{tag}x")
    wild.write_flush(_flush(0, 1, "u1"))
    other.write_flush(_flush(0, 2, "u2"))

    wild.clear()

    assert wild.read_checkpoints() == []
    assert other.read_checkpoints() == [ShardCheckpoint(0, 1, 2)]
    assert [key for key, _ in other.iter_models("balance")] == [("u2", "USD")]
    other.clear()


def _calls(store: RedisSnapshotStore) -> list[Any]:
    return [
        store.ping,
        lambda: store.write_flush(_flush(0, 1, "u1")),
        store.begin_generation,
        lambda: store.claim_shard(1, 0),
        store.read_checkpoints,
        lambda: store.reset_layout(2, 0),
        lambda: list(store.load_models(0, 1)),
        lambda: store.get_model("balance", ("u1", "USD")),
        lambda: list(store.iter_models("balance")),
        store.clear,
    ]


@pytest.mark.parametrize("index", range(10))
def test_an_unreachable_server_raises_snapshot_store_error(
    unreachable: RedisSnapshotStore, index: int
) -> None:
    started = time.monotonic()

    with pytest.raises(SnapshotStoreError, match=r"127\.0\.0\.1") as raised:
        _calls(unreachable)[index]()

    assert isinstance(raised.value.__cause__, redis.ConnectionError)
    assert time.monotonic() - started < 5


def _subclasses(root: type[Exception]) -> list[type[Exception]]:
    found = [root]
    for child in root.__subclasses__():
        found.extend(_subclasses(child))
    return found


@pytest.mark.parametrize("error_type", _subclasses(redis.RedisError))
def test_every_redis_error_becomes_a_snapshot_store_error(
    unreachable: RedisSnapshotStore, error_type: type[Exception]
) -> None:
    with pytest.raises(SnapshotStoreError), unreachable._translated("test"):
        # A message that also parses as a cluster redirection (slot, node).
        raise error_type("3999 127.0.0.1:7001")


@pytest.mark.parametrize(
    ("reply", "detail"),
    [
        (
            "FENCED shard=3 generation=2 epoch=5 presented_generation=2 "
            "presented_epoch=4",
            "epoch 5 of generation 2 is current, not epoch 4",
        ),
        (
            "FENCED shard=3 generation=2 epoch=5 presented_generation=1 "
            "presented_epoch=5",
            "generation 2 is current, not 1",
        ),
        (
            "FENCED shard=3 generation=2 presented_generation=1",
            "generation 2 is current, not 1",
        ),
    ],
)
def test_a_fenced_reply_becomes_ownership_lost_and_not_a_snapshot_store_error(
    unreachable: RedisSnapshotStore, reply: str, detail: str
) -> None:
    with (
        pytest.raises(OwnershipLost, match=detail) as raised,
        unreachable._translated("test"),
    ):
        raise redis.ResponseError(reply)

    assert raised.value.shard == 3
    assert not isinstance(raised.value, SnapshotStoreError)


@pytest.mark.parametrize(
    "reply",
    [
        "FENCED",
        "FENCED shard=3 generation=2",
        "FENCED shard=3 generation=2 presented_generation=one",
        "ERR FENCED shard=3 generation=2 presented_generation=1",
        "FENCED shard=3 generation=2 presented_generation=1 and more",
    ],
)
def test_any_other_reply_that_mentions_fencing_stays_a_snapshot_store_error(
    unreachable: RedisSnapshotStore, reply: str
) -> None:
    with pytest.raises(SnapshotStoreError), unreachable._translated("test"):
        raise redis.ResponseError(reply)


def test_only_a_response_error_can_be_a_fenced_reply(
    unreachable: RedisSnapshotStore,
) -> None:
    reply = "FENCED shard=3 generation=2 presented_generation=1"

    with pytest.raises(SnapshotStoreError), unreachable._translated("test"):
        raise redis.ConnectionError(reply)


@pytest.mark.redis
def test_a_fenced_flush_is_answered_by_the_script_with_a_fenced_reply(
    store: RedisSnapshotStore,
) -> None:
    generation = store.begin_generation()
    zombie = store.claim_shard(generation, 0)
    store.claim_shard(generation, 0)
    keys, arguments = store._flush_arguments(
        Flush(ShardCheckpoint(0, 1, 5), _flush(0, 5, "u1").models, zombie)
    )

    with pytest.raises(redis.ResponseError) as raised:
        store._flush_script(keys=keys, args=arguments)

    assert str(raised.value) == (
        "FENCED shard=0 generation=1 epoch=2 presented_generation=1 presented_epoch=1"
    )
    assert store.read_checkpoints() == []
    assert list(store.iter_models("balance")) == []


@pytest.mark.redis
def test_a_claim_of_an_old_generation_is_answered_with_a_fenced_reply(
    store: RedisSnapshotStore,
) -> None:
    store.begin_generation()
    store.begin_generation()
    keys = [f"{store.prefix}:generation", f"{store.prefix}:owners"]

    with pytest.raises(redis.ResponseError) as raised:
        store._claim_script(keys=keys, args=[4, 1])

    assert str(raised.value) == "FENCED shard=4 generation=2 presented_generation=1"
    assert store.claim_shard(2, 4) == Owner(2, 1)


def test_a_client_that_decodes_responses_is_refused(free_loopback_port: int) -> None:
    client = redis.Redis(
        host="127.0.0.1", port=free_loopback_port, decode_responses=True
    )

    with pytest.raises(ConfigurationError, match="decode_responses=False"):
        RedisSnapshotStore(client)


def test_the_prefix_is_taken_out_of_the_url_and_other_options_kept() -> None:
    store = RedisSnapshotStore.from_url(
        "redis://127.0.0.1:1/2?prefix=bench&socket_timeout=3"
    )
    options = store._client.connection_pool.connection_kwargs

    assert store.prefix == "bench"
    assert "prefix" not in options
    assert options["socket_timeout"] == 3.0
    assert options["db"] == 2
