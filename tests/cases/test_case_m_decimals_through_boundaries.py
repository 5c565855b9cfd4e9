"""Case M: amounts that arrive as JSON numbers, through import, a Redis
flush and a restart from the snapshot. Expected: u1/USD exactly 0, u2/EUR
48.717983, u3/USD 12345678901234567.89; never a rounded value."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from actors import Projectionist
from engine import (
    FlushPolicy,
    JsonLinesReader,
    ShardCore,
    payments_registry,
    shard_of,
)
from stores import open_event_store, open_snapshot_store

pytestmark = [
    pytest.mark.ray,
    pytest.mark.redis,
    pytest.mark.usefixtures("local_ray"),
]

AMOUNTS = [
    ("WalletCredited", "u1", "USD", "0.1"),
    ("WalletCredited", "u1", "USD", "0.1"),
    ("WalletCredited", "u1", "USD", "0.1"),
    ("WalletDeducted", "u1", "USD", "0.3"),
    ("WalletCredited", "u2", "EUR", "48.717983"),
    ("WalletCredited", "u3", "USD", "12345678901234567.89"),
]
EXPECTED = {
    ("u1", "USD"): "0.0",
    ("u2", "EUR"): "48.717983",
    ("u3", "USD"): "12345678901234567.89",
}
SHARDS = 2


def json_number_lines() -> list[str]:
    """The six events with each amount written as a bare JSON number."""
    return [
        f'{{"sequence_number": {n}, "event_id": "m-{n}", "event_type": "{kind}", '
        f'"created_at": "2026-01-05T10:00:0{n}Z", "data": {{"user_id": "{user}", '
        f'"currency": "{currency}", "amount": {amount}}}}}'
        for n, (kind, user, currency, amount) in enumerate(AMOUNTS, start=1)
    ]


@pytest.fixture
def urls(tmp_path: Path, redis_url: str) -> Iterator[tuple[str, str]]:
    events_url = f"sqlite:///{tmp_path / 'events.db'}"
    store_url = f"{redis_url}?prefix=case-m-{uuid.uuid4().hex}"
    yield events_url, store_url
    store = open_snapshot_store(store_url)
    store.clear()
    store.close()


def import_file(path: Path, events_url: str) -> None:
    store = open_event_store(events_url)
    with path.open(encoding="utf-8") as lines:
        store.append(JsonLinesReader(lines, str(path), store.head()))
    store.close()


def assert_exact(balances: dict[tuple[str, str], Decimal]) -> None:
    assert {key: str(value) for key, value in balances.items()} == EXPECTED
    zero = balances[("u1", "USD")]
    assert zero == 0
    assert not zero.is_signed()


def test_m_json_number_amounts_stay_exact_through_redis_and_a_restart(
    tmp_path: Path, urls: tuple[str, str]
) -> None:
    events_url, store_url = urls
    source = tmp_path / "json-numbers.jsonl"
    source.write_text("\n".join(json_number_lines()) + "\n", encoding="utf-8")

    import_file(source, events_url)
    status = Projectionist(events_url, store_url, shards=SHARDS).run_until_caught_up()
    assert [shard["checkpoint"] for shard in status["shards"]] == [6, 6]

    # Restart from the snapshot: a second engine loads it and applies nothing.
    restarted = Projectionist(events_url, store_url, shards=SHARDS)
    restarted.run_until_caught_up()
    assert_exact({key: restarted.get_balance(*key).balance for key in EXPECTED})
    summary = restarted.get_wallet_summary("u1", "USD")
    assert (str(summary.total_credits), str(summary.total_debits)) == ("0.3", "0.3")
    restarted.stop()


def test_m_shards_reloaded_from_the_redis_snapshot_hold_the_exact_amounts(
    tmp_path: Path, urls: tuple[str, str]
) -> None:
    events_url, store_url = urls
    source = tmp_path / "json-numbers.jsonl"
    source.write_text("\n".join(json_number_lines()) + "\n", encoding="utf-8")
    import_file(source, events_url)
    Projectionist(events_url, store_url, shards=SHARDS).run_until_caught_up()

    store = open_snapshot_store(store_url)
    policy = FlushPolicy(10**9, 10**9)
    cores = [
        ShardCore(shard, SHARDS, payments_registry(), store, policy)
        for shard in range(SHARDS)
    ]

    balances = {
        key: cores[shard_of(key[0], SHARDS)].projector.models["balance"][key].balance
        for key in EXPECTED
    }
    assert_exact(balances)
    assert {core.durable for core in cores} == {6}
    store.close()
