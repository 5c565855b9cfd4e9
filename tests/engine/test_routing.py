"""Routing is a stable CRC-32 of the user id, the same in every process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from engine import route_of, shard_of

# CRC-32 of the UTF-8 ids, computed once and written down.
KNOWN_ROUTES = {
    "u1": 1112514422,
    "u2": 3678850764,
    "u3": 2890006106,
    "user-42": 2097592435,
    "účet-7": 295083919,
}


@pytest.mark.parametrize(("user", "route"), sorted(KNOWN_ROUTES.items()))
def test_the_route_of_a_user_is_the_crc32_of_its_id(user: str, route: int) -> None:
    assert route_of(user) == route


def test_an_event_without_a_user_routes_to_zero() -> None:
    assert route_of(None) == 0
    assert shard_of(None, 8) == 0


@pytest.mark.parametrize("count", [1, 2, 3, 4, 8, 256])
def test_the_shard_is_the_route_modulo_the_shard_count(count: int) -> None:
    for user, route in KNOWN_ROUTES.items():
        assert shard_of(user, count) == route % count


def test_another_process_with_another_hash_seed_routes_the_same() -> None:
    script = "from engine import route_of; print(route_of('u1'), route_of('u3'))"
    environment = {**os.environ, "PYTHONHASHSEED": "12345"}

    output = subprocess.run(
        [sys.executable, "-c", script],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    assert output.split() == [str(KNOWN_ROUTES["u1"]), str(KNOWN_ROUTES["u3"])]
