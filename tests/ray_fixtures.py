"""Shared fixtures: a real local Ray per test module, on loopback only,
and the base log F10 read from the shared folder."""

from __future__ import annotations

import os

# Ray decides at import whether to listen beyond loopback: say no before
# anything in this run imports it.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import ray

from actors import Projectionist
from engine import Event, parse_json_line

CASES = Path(__file__).resolve().parents[1].parent / "shared" / "cases"
KEY_FIELDS = {"balance": 2, "summary": 2, "payments": 1}


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray for the whole module, every listener on 127.0.0.1."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        addresses = {node["NodeManagerAddress"] for node in ray.nodes()}
        assert addresses == {"127.0.0.1"}, f"Ray is not on loopback: {addresses}"
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def f10_events() -> list[Event]:
    path = CASES / "f10.jsonl"
    if not path.exists():
        pytest.skip(f"the field cases are missing: no {path}")
    lines = path.read_text(encoding="utf-8").splitlines()
    return [parse_json_line(line) for line in lines if line.strip()]


@pytest.fixture(scope="session")
def f10_expected() -> dict[str, Any]:
    path = CASES / "f10-expected.json"
    if not path.exists():
        pytest.skip(f"the field cases are missing: no {path}")
    expected: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return expected


Export = Callable[[str], list[tuple[tuple[Any, ...], dict[str, Any]]]]


def check_models(
    expected: dict[str, Any], export: Export, checkpoints: list[int]
) -> None:
    """Assert that ``export`` serves exactly the read models of ``expected``
    (shaped like f10-expected.json; decimals compared as numbers, never
    floats) and that every checkpoint is its checkpoint."""
    for kind, width in KEY_FIELDS.items():
        found = dict(export(kind))
        wanted = {
            tuple(row[f] for f in ("user_id", "currency")[:width]): row
            for row in expected[kind]
        }
        assert sorted(found) == sorted(wanted), kind
        for key, row in wanted.items():
            for field, value in row.items():
                assert _same(found[key][field], value), (kind, key, field)
    assert checkpoints, "no checkpoint was stored"
    assert set(checkpoints) == {expected["checkpoint"]}


@pytest.fixture(scope="session")
def assert_f10(f10_expected: dict[str, Any]) -> Callable[..., None]:
    """A check that ``export`` serves exactly F10's read models and every
    checkpoint is 10."""

    def check(export: Export, checkpoints: list[int]) -> None:
        check_models(f10_expected, export, checkpoints)

    return check


@pytest.fixture(scope="session")
def assert_f10_by_query(f10_expected: dict[str, Any]) -> Callable[..., None]:
    """A check that the engine's query methods answer every F10 read model."""

    def check(engine: Projectionist) -> None:
        for row in f10_expected["balance"]:
            model = engine.get_balance(row["user_id"], row["currency"])
            for field, value in row.items():
                assert _same(getattr(model, field), value), ("balance", row, field)
        for row in f10_expected["summary"]:
            model = engine.get_wallet_summary(row["user_id"], row["currency"])
            for field, value in row.items():
                assert _same(getattr(model, field), value), ("summary", row, field)
        for row in f10_expected["payments"]:
            model = engine.get_payment_status(row["user_id"])
            for field, value in row.items():
                assert _same(getattr(model, field), value), ("payments", row, field)

    return check


def _same(found: object, wanted: object) -> bool:
    if isinstance(wanted, str) and not isinstance(found, str):
        return isinstance(found, Decimal) and found == Decimal(wanted)
    return found == wanted


@pytest.fixture(scope="session")
def stop_engine() -> Callable[[Projectionist], None]:
    """``engine.stop()``: flushes, ends the actors, raises what ended a run."""

    def stop(engine: Projectionist) -> None:
        engine.stop()

    return stop
