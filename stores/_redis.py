"""The Redis snapshot store.

Keys, all under one prefix (``projectionist`` unless the URL says
``?prefix=NAME``):

* ``{prefix}:model:{projection}``: one hash per projection; field = the
  packed key (:func:`engine.pack_key`), value = the packed state.
* ``{prefix}:checkpoints``: one hash; field = the shard number, value =
  msgpack ``[shard_count, sequence_number]``.
* ``{prefix}:generation``: a string counter, the current engine generation
  (absent before the first :meth:`RedisSnapshotStore.begin_generation`).
* ``{prefix}:owners``: one hash; field = the shard number, value = the epoch
  of its current owner.

Nothing expires: a snapshot that vanished would silently rewind a shard.
Every redis-py error is translated in :meth:`RedisSnapshotStore._translated`;
a script's ``FENCED`` reply becomes :class:`engine.OwnershipLost` there, any
other error :class:`engine.SnapshotStoreError`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.typing import EncodableT, FieldT

from engine import (
    ConfigurationError,
    Flush,
    FlushNotConfirmed,
    Owner,
    ShardCheckpoint,
    SnapshotStoreError,
    pack,
    pack_key,
    unpack,
    unpack_key,
)

from ._snapshots import check_claim, check_owner, encode_record, layout, route_of_key

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = "projectionist"
_SCAN_COUNT = 1_000
_GLOB_SPECIALS = frozenset("*?[]\\")
_FENCED_CLAIM = re.compile(
    r"FENCED shard=(-?\d+) generation=(\d+) presented_generation=(-?\d+)"
)
_FENCED_FLUSH = re.compile(
    r"FENCED shard=(-?\d+) generation=(\d+) epoch=(\d+)"
    r" presented_generation=(-?\d+) presented_epoch=(-?\d+)"
)

_FLUSH_SCRIPT = """
-- Write one shard's flush: its models, then its checkpoint, atomically,
-- unless the owner it names has been fenced out.
-- KEYS[1]     the checkpoint hash, {prefix}:checkpoints
-- KEYS[2]     the generation counter, {prefix}:generation
-- KEYS[3]     the owners hash, {prefix}:owners
-- KEYS[4..n]  one model hash per projection in the flush
-- ARGV[1]     the shard number: the checkpoint's and the owner's field
-- ARGV[2]     the checkpoint: msgpack [shard_count, sequence_number]
-- ARGV[3]     the owner's generation, or '' to write without a check
-- ARGV[4]     the owner's epoch, or '' to write without a check
-- ARGV[5..]   for each model hash, in KEYS order: a field count c, then c
--             pairs of packed key and packed state
-- Reply:      the number of hash fields written, the checkpoint included;
--             or, having written nothing, the error 'FENCED shard=S
--             generation=G epoch=E presented_generation=g presented_epoch=e'
--             when the owner presented (g, e) is not the current one (G, E)
-- Arguments that do not add up fail before any write. The checkpoint goes
-- last, so a script that fails part way never advances it. HSET takes at
-- most 500 pairs per call: Lua's unpack is limited by its stack.
local at = 5
for k = 4, #KEYS do
  at = at + 1 + 2 * tonumber(ARGV[at])
end
if at ~= #ARGV + 1 then
  return redis.error_reply('flush arguments do not match their counts')
end
if ARGV[3] ~= '' then
  local generation = tonumber(redis.call('GET', KEYS[2]) or 0)
  local epoch = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or 0)
  if generation ~= tonumber(ARGV[3]) or epoch ~= tonumber(ARGV[4]) then
    return redis.error_reply(string.format(
      'FENCED shard=%s generation=%d epoch=%d presented_generation=%s '
      .. 'presented_epoch=%s', ARGV[1], generation, epoch, ARGV[3], ARGV[4]))
  end
end
at = 5
local written = 0
for k = 4, #KEYS do
  local count = tonumber(ARGV[at])
  at = at + 1
  local done = 0
  while done < count do
    local n = math.min(500, count - done)
    local last = at + 2 * n - 1
    redis.call('HSET', KEYS[k], unpack(ARGV, at, last))
    at = last + 1
    done = done + n
  end
  written = written + count
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return written + 1
"""

_CLAIM_SCRIPT = """
-- Make a new incarnation the owner of one shard, atomically.
-- KEYS[1]  the generation counter, {prefix}:generation
-- KEYS[2]  the owners hash, {prefix}:owners
-- ARGV[1]  the shard number: the owner's field
-- ARGV[2]  the claimer's generation
-- Reply:   the shard's new epoch (1 for its first claim); or, having changed
--          nothing, the error 'FENCED shard=S generation=G
--          presented_generation=g' when g is not the current generation G
local generation = tonumber(redis.call('GET', KEYS[1]) or 0)
if generation ~= tonumber(ARGV[2]) then
  return redis.error_reply(string.format(
    'FENCED shard=%s generation=%d presented_generation=%s',
    ARGV[1], generation, ARGV[2]))
end
return redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
"""


class RedisSnapshotStore:
    """Read models, checkpoints and shard owners in Redis, under one key prefix.

    ``client`` must return bytes (``decode_responses=False``). Use
    :meth:`from_url` to build one from a ``redis://`` or ``rediss://`` URL.
    """

    def __init__(self, client: redis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        options = client.connection_pool.connection_kwargs
        if options.get("decode_responses"):
            raise ConfigurationError(
                "the Redis snapshot store needs a client with "
                "decode_responses=False: keys and states are binary"
            )
        self.prefix = prefix
        self._client = client
        self._where = f"{options.get('host')}:{options.get('port')}/{options.get('db')}"
        self._checkpoints_key = f"{prefix}:checkpoints"
        self._generation_key = f"{prefix}:generation"
        self._owners_key = f"{prefix}:owners"
        self._flush_script = client.register_script(_FLUSH_SCRIPT)
        self._claim_script = client.register_script(_CLAIM_SCRIPT)

    @classmethod
    def from_url(cls, url: str) -> RedisSnapshotStore:
        """Connect (lazily) to ``redis://host:port/db?prefix=NAME``.

        The connection is made by the first command; :meth:`ping` checks it.
        """
        address, prefix = _split_prefix(url)
        try:
            client = redis.Redis.from_url(
                address,
                decode_responses=False,
                retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
            )
        except (ValueError, TypeError) as error:
            raise ConfigurationError(f"invalid Redis URL: {error}") from None
        store = cls(client, prefix)
        logger.info("using Redis snapshot store %s, prefix %s", store._where, prefix)
        return store

    @contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        """Turn a script's ``FENCED`` reply raised inside into OwnershipLost,
        and any other redis-py error into SnapshotStoreError."""
        try:
            yield
        except redis.RedisError as error:
            _raise_if_fenced(error)
            raise SnapshotStoreError(
                f"the Redis snapshot store at {self._where} could not {action}: "
                f"{type(error).__name__}: {error}"
            ) from error

    def _model_key(self, projection: str) -> str:
        return f"{self.prefix}:model:{projection}"

    def write_flush(self, flush: Flush) -> None:
        """Write the models and the checkpoint in one script, if ``flush.owner``
        is unset or still the shard's current owner, and check that its reply
        counts every field.

        Raises :class:`engine.FlushNotConfirmed` when the count differs,
        :class:`engine.OwnershipLost` (nothing written) for a fenced-out owner,
        and ``TypeError`` before anything is sent for a state the codec refuses.
        """
        keys, arguments = self._flush_arguments(flush)
        expected = len(flush.models) + 1
        with self._translated("write a flush"):
            written = self._flush_script(keys=keys, args=arguments)
        checkpoint = flush.checkpoint
        if written != expected:
            raise FlushNotConfirmed(
                f"the Redis snapshot store at {self._where} confirmed {written!r} "
                f"of {expected} fields for shard {checkpoint.shard} up to "
                f"sequence number {checkpoint.sequence_number}; the flush is "
                "safe to repeat"
            )
        logger.debug(
            "flushed %s models of shard %s", len(flush.models), checkpoint.shard
        )

    def _flush_arguments(self, flush: Flush) -> tuple[list[str], list[Any]]:
        # Group the fields by projection: one hash, one count, many pairs.
        fields: dict[str, list[bytes]] = {}
        for projection, key, _route, state in map(encode_record, flush.models):
            fields.setdefault(projection, []).extend((key, state))

        checkpoint = flush.checkpoint
        owner = flush.owner
        keys = [
            self._checkpoints_key,
            self._generation_key,
            self._owners_key,
            *map(self._model_key, fields),
        ]
        arguments: list[Any] = [
            checkpoint.shard,
            pack([checkpoint.shard_count, checkpoint.sequence_number]),
            "" if owner is None else owner.generation,
            "" if owner is None else owner.epoch,
        ]
        for pairs in fields.values():
            arguments.append(len(pairs) // 2)
            arguments.extend(pairs)
        return keys, arguments

    def begin_generation(self) -> int:
        """Start the next generation (1 for a new prefix) and return it."""
        with self._translated("begin a generation"):
            generation = self._client.incr(self._generation_key)
        logger.info("began generation %s under prefix %s", generation, self.prefix)
        return int(generation)

    def claim_shard(self, generation: int, shard: int) -> Owner:
        """Give ``shard`` its next epoch (1 for its first claim) within
        ``generation``, which must be the current one, in one script."""
        keys = [self._generation_key, self._owners_key]
        with self._translated("claim a shard"):
            epoch = self._claim_script(keys=keys, args=[shard, generation])
        return Owner(generation, int(epoch))

    def read_checkpoints(self) -> list[ShardCheckpoint]:
        """Every stored shard checkpoint, in shard order."""
        with self._translated("read checkpoints"):
            stored = self._client.hgetall(self._checkpoints_key)
        checkpoints = [
            ShardCheckpoint(int(shard), *unpack(cast(bytes, value)))
            for shard, value in stored.items()
        ]
        return sorted(checkpoints, key=lambda checkpoint: checkpoint.shard)

    def reset_layout(self, shard_count: int, sequence_number: int) -> None:
        """Replace all checkpoints by a new layout in one MULTI/EXEC."""
        values: dict[FieldT, EncodableT] = {
            c.shard: pack([c.shard_count, c.sequence_number])
            for c in layout(shard_count, sequence_number)
        }
        with self._translated("reset the layout"):
            transaction = self._client.pipeline(transaction=True)
            transaction.delete(self._checkpoints_key)
            transaction.hset(self._checkpoints_key, mapping=values)
            transaction.execute()

    def load_models(
        self, shard: int, shard_count: int
    ) -> Iterator[tuple[str, tuple[Any, ...], dict[str, Any]]]:
        """Yield ``(projection, key, state)`` for the models of ``shard``."""
        for projection in self._projections():
            for field, value in self._fields(self._model_key(projection)):
                key = unpack_key(field)
                if route_of_key(key) % shard_count == shard:
                    yield projection, key, unpack(value)

    def get_model(self, projection: str, key: tuple[Any, ...]) -> dict[str, Any] | None:
        """The state of one model, or ``None`` when there is none."""
        with self._translated("read a model"):
            state = self._client.hget(self._model_key(projection), pack_key(key))
        return None if state is None else unpack(cast(bytes, state))

    def iter_models(
        self, projection: str
    ) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
        """Yield ``(key, state)`` for every model of ``projection``."""
        for field, value in self._fields(self._model_key(projection)):
            yield unpack_key(field), unpack(value)

    def _fields(self, hash_key: str) -> Iterator[tuple[bytes, bytes]]:
        # HSCAN may return a field twice while Redis rehashes; yield it once.
        seen: set[bytes] = set()
        with self._translated("read models"):
            for field, value in self._client.hscan_iter(hash_key, count=_SCAN_COUNT):
                if field not in seen:
                    seen.add(field)
                    yield field, value

    def _projections(self) -> list[str]:
        start = len(self._model_key(""))
        pattern = _escape_glob(self._model_key("")) + "*"
        with self._translated("list projections"):
            found = set(self._client.scan_iter(match=pattern, count=_SCAN_COUNT))
        return sorted(key.decode("utf-8")[start:] for key in found)

    def ping(self) -> None:
        """Raise :class:`engine.SnapshotStoreError` when Redis does not answer."""
        with self._translated("answer a ping"):
            self._client.ping()

    def clear(self) -> None:
        """Delete this prefix's models, checkpoints and owners, and no other
        key; generations start over."""
        keys = [self._model_key(name) for name in self._projections()]
        with self._translated("clear the store"):
            self._client.delete(
                self._checkpoints_key, self._generation_key, self._owners_key, *keys
            )

    def close(self) -> None:
        with self._translated("close the connection"):
            self._client.close()


def _raise_if_fenced(error: redis.RedisError) -> None:
    """Raise the :class:`engine.OwnershipLost` that a script's ``FENCED``
    reply stands for; return for any other error, a malformed reply included.

    The reply names the current and the presented owner, so the error reads
    exactly as the other stores' do (see :func:`check_owner`).
    """
    if not isinstance(error, redis.ResponseError):
        return
    text = str(error)
    if claim := _FENCED_CLAIM.fullmatch(text):
        shard, current, presented = map(int, claim.groups())
        check_claim(shard, current, presented)
    elif flush := _FENCED_FLUSH.fullmatch(text):
        shard, generation, epoch, presented, presented_epoch = map(int, flush.groups())
        current_owner = Owner(generation, epoch)
        check_owner(shard, current_owner, Owner(presented, presented_epoch))


def _split_prefix(url: str) -> tuple[str, str]:
    """Take the ``prefix`` parameter out of ``url``: redis-py must not see it."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefixes = [value for name, value in query if name == "prefix"]
    prefix = prefixes[-1] if prefixes else DEFAULT_PREFIX
    if not prefix:
        raise ConfigurationError(
            f"the Redis URL {parts.scheme}://{parts.hostname} has an empty "
            "prefix; give ?prefix=NAME or leave it out"
        )
    rest = urlencode([(name, value) for name, value in query if name != "prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


def _escape_glob(text: str) -> str:
    return "".join("\\" + c if c in _GLOB_SPECIALS else c for c in text)
