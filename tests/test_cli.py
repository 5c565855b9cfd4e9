"""The ``projectionist`` console script, driven as a user drives it."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

CASES = Path(__file__).resolve().parents[1].parent / "shared" / "cases"
OWN_SETTINGS = ("READ_MODEL_", "REDIS_READ_MODEL_", "PROJECTIONIST_")

Run = Callable[..., subprocess.CompletedProcess[str]]


def console_script() -> str:
    beside = Path(sys.executable).with_name("projectionist")
    found = str(beside) if beside.exists() else shutil.which("projectionist")
    if found is None:
        pytest.skip("the projectionist console script is not installed")
    return found


def environment(folder: Path) -> dict[str, str]:
    """This test's stores only, and a local Ray kept on loopback."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(OWN_SETTINGS)
        and name not in ("EVENT_STORE_URL", "RAY_ADDRESS")
    }
    return {
        **kept,
        "EVENT_STORE_URL": f"sqlite:///{folder / 'events.db'}",
        "READ_MODEL_STORE_URL": f"sqlite:///{folder / 'models.db'}",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }


def runner(folder: Path) -> Run:
    script = console_script()

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [script, *args],
            cwd=folder,
            env=environment(folder),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture
def cli(tmp_path: Path) -> Run:
    return runner(tmp_path)


def event_line(number: int | None, **data: Any) -> str:
    event: dict[str, Any] = {
        "event_id": f"e-{number}" if number else f"e-{uuid.uuid4().hex}",
        "event_type": "WalletCredited",
        "created_at": "2026-01-05T10:00:00Z",
        "data": {"user_id": "u1", "currency": "USD", "amount": "1.00", **data},
    }
    if number is not None:
        event["sequence_number"] = number
    return json.dumps(event)


def stored_rows(folder: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(folder / "events.db") as connection:
        rows = connection.execute(
            "SELECT sequence_number, event_id FROM events ORDER BY sequence_number"
        )
        return list(rows)


def head(cli: Run) -> int:
    result = cli("status", "--json")
    assert result.returncode == 0, result.stderr
    value: int = json.loads(result.stdout)["head"]
    return value


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


@pytest.fixture
def three_imported(cli: Run, tmp_path: Path) -> list[tuple[int, str]]:
    """Events 1..3 already in the event store."""
    (tmp_path / "good.jsonl").write_text(
        "".join(event_line(n) + "\n" for n in (1, 2, 3)), encoding="utf-8"
    )
    result = cli("import", "good.jsonl")
    assert result.returncode == 0, result.stderr
    assert "imported 3 events (sequence numbers 1..3)" in result.stdout
    return stored_rows(tmp_path)


# import: all or nothing, with one clear line per error

BAD_LINES = {
    "malformed JSON": ('{"sequence_number": 5, "event_type": ', "not valid JSON"),
    "amount 12.3.4": (event_line(5, amount="12.3.4"), "data.amount"),
    "amount NaN": (event_line(5, amount="NaN"), "data.amount"),
    "bare NaN": (event_line(5).replace('"1.00"', "NaN"), "NaN"),
    "negative amount": (event_line(5, amount="-5.00"), "greater than zero"),
    "zero amount": (event_line(5, amount="0"), "greater than zero"),
    "currency usd": (event_line(5, currency="usd"), "data.currency"),
    "missing user_id": (
        event_line(5).replace('"user_id": "u1", ', ""),
        "data.user_id",
    ),
    "sequence number repeated": (event_line(4), "sequence_number"),
    "created_at without offset": (
        event_line(5).replace("10:00:00Z", "10:00:00"),
        "created_at",
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD_LINES))
def test_import_of_a_file_with_a_bad_line_fails_naming_file_line_and_reason(
    cli: Run, tmp_path: Path, three_imported: list[tuple[int, str]], kind: str
) -> None:
    text, reason = BAD_LINES[kind]
    lines = [event_line(4), text, event_line(6)]
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")

    error = one_error_line(cli("import", "bad.jsonl"))

    assert "bad.jsonl line 2" in error
    assert reason in error
    assert stored_rows(tmp_path) == three_imported
    assert head(cli) == 3


def test_import_refuses_a_sequence_number_at_or_below_the_head(
    cli: Run, tmp_path: Path, three_imported: list[tuple[int, str]]
) -> None:
    (tmp_path / "old.jsonl").write_text(event_line(3) + "\n", encoding="utf-8")

    error = one_error_line(cli("import", "old.jsonl"))

    assert "old.jsonl line 1" in error
    assert "sequence_number" in error
    assert stored_rows(tmp_path) == three_imported


def test_import_names_the_line_of_an_event_id_already_in_the_store(
    cli: Run, tmp_path: Path, three_imported: list[tuple[int, str]]
) -> None:
    again = json.loads(event_line(2))
    del again["sequence_number"]
    (tmp_path / "again.jsonl").write_text(json.dumps(again) + "\n", encoding="utf-8")

    error = one_error_line(cli("import", "again.jsonl"))

    assert stored_rows(tmp_path) == three_imported
    assert "event_id" in error
    assert "again.jsonl line 1" in error


def test_import_with_skip_invalid_keeps_the_valid_lines_and_reports_the_rest(
    cli: Run, tmp_path: Path, three_imported: list[tuple[int, str]]
) -> None:
    lines = [
        event_line(4),
        "{oops",
        event_line(5),
        event_line(6, currency="usd"),
        event_line(7),
        event_line(7),
        event_line(8, amount="12.3.4"),
        event_line(9),
    ]
    (tmp_path / "mixed.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = cli("import", "--skip-invalid", "mixed.jsonl")

    assert result.returncode == 0, result.stderr
    assert "imported 4 events (sequence numbers 4..9); rejected 4" in result.stdout
    rejected = [line for line in result.stderr.splitlines() if "rejected" in line]
    assert [line.split(",")[0].split(": ")[1] for line in rejected] == [
        f"mixed.jsonl line {n}" for n in (2, 4, 6, 7)
    ]
    assert [n for n, _ in stored_rows(tmp_path)] == [1, 2, 3, 4, 5, 7, 9]


def test_errors_show_a_traceback_only_with_debug(cli: Run, tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text("{oops\n", encoding="utf-8")

    plain = cli("import", "bad.jsonl")
    debug = cli("--debug", "import", "bad.jsonl")

    assert "bad.jsonl line 1" in one_error_line(plain)
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr
    assert "bad.jsonl line 1" in debug.stderr


def test_an_unusable_store_url_is_one_line_without_a_traceback(cli: Run) -> None:
    error = one_error_line(cli("--event-store", "ftp://somewhere", "status"))

    assert "ftp" in error


# generate


def test_generate_appends_a_workload_to_the_event_store(cli: Run) -> None:
    result = cli("generate", "--events", "500", "--users", "50", "--seed", "3")

    assert result.returncode == 0, result.stderr
    assert "generated 500 events (1..500)" in result.stdout
    assert head(cli) == 500


def test_generate_to_a_file_writes_json_lines_that_import_back(
    cli: Run, tmp_path: Path
) -> None:
    result = cli("generate", "--events", "40", "--users", "5", "--output", "w.jsonl")
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "w.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 40
    assert all(isinstance(json.loads(line)["data"]["user_id"], str) for line in lines)

    imported = cli("import", "w.jsonl")

    assert imported.returncode == 0, imported.stderr
    assert "imported 40 events (sequence numbers 1..40)" in imported.stdout


# run, status, query, export: one projected store shared by these tests


@pytest.fixture(scope="module")
def projected(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """F10 imported and projected once with ``run --until-caught-up``."""
    source = CASES / "f10.jsonl"
    if not source.exists():
        pytest.skip(f"the field cases are missing: no {source}")
    cli = runner(tmp_path_factory.mktemp("projected"))
    imported = cli("import", str(source))
    assert imported.returncode == 0, imported.stderr

    result = cli("run", "--until-caught-up", "--shards", "2")

    assert result.returncode == 0, result.stderr
    assert "caught up: head 10, shard checkpoints 10, 10" in result.stdout
    return cli


@pytest.mark.ray
def test_status_after_run_shows_the_head_and_every_shard_checkpoint(
    projected: Run,
) -> None:
    found = json.loads(projected("status", "--json").stdout)
    text = projected("status").stdout

    assert found["head"] == 10
    assert found["lag_events"] == 0
    assert [
        (s["shard"], s["shard_count"], s["checkpoint"]) for s in found["shards"]
    ] == [
        (0, 2, 10),
        (1, 2, 10),
    ]
    assert "head        10" in text
    assert "shard 1/2  checkpoint 10" in text


@pytest.mark.ray
def test_query_json_prints_decimals_as_strings(projected: Run) -> None:
    result = projected("query", "balance", "u1", "USD", "--json")

    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)
    assert model["balance"] == "50.00"
    assert model["transaction_count"] == 3
    assert model["last_event_version"] == 8
    assert model["last_updated"] == "2026-01-05T10:00:08Z"


@pytest.mark.ray
def test_query_of_payments_shows_counts_but_not_the_hidden_fields(
    projected: Run,
) -> None:
    model = json.loads(projected("query", "payments", "u2", "--json").stdout)

    assert model["total_amount"] == "10.00"
    assert (model["completed_payments"], model["pending_payments"]) == (1, 0)
    assert "payments" not in model


@pytest.mark.ray
def test_query_text_shows_one_field_per_line(projected: Run) -> None:
    result = projected("query", "summary", "u1", "USD")

    fields = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert fields["total_debits"] == "50.00"
    assert fields["current_balance"] == "50.00"


@pytest.mark.ray
@pytest.mark.parametrize(
    "key", [("balance", "nobody", "USD"), ("summary", "u3", "EUR"), ("payments", "u1")]
)
def test_query_for_a_missing_key_says_so_and_fails(
    projected: Run, key: tuple[str, ...]
) -> None:
    error = one_error_line(projected("query", *key))

    assert f"no {key[0]} read model for {' '.join(key[1:])}" in error


@pytest.mark.ray
def test_export_prints_every_model_as_json_lines_sorted_by_key(projected: Run) -> None:
    result = projected("export", "balance")

    rows = [json.loads(line) for line in result.stdout.splitlines()]
    keys = [(row["user_id"], row["currency"]) for row in rows]
    assert keys == sorted(keys)
    assert keys == [
        ("u1", "EUR"),
        ("u1", "USD"),
        ("u2", "EUR"),
        ("u2", "USD"),
        ("u3", "USD"),
    ]
    assert [row["balance"] for row in rows] == [
        "20.00",
        "50.00",
        "50.00",
        "40.00",
        "5.00",
    ]


@pytest.mark.ray
def test_export_of_payments_lists_each_user_with_payments(projected: Run) -> None:
    rows = [
        json.loads(line) for line in projected("export", "payments").stdout.splitlines()
    ]

    assert [row["user_id"] for row in rows] == ["u2", "u3"]
    assert [row["pending_payments"] for row in rows] == [0, 1]


# bench


def bench_figures_are_complete(
    figures: dict[str, Any], events: int, shards: list[int]
) -> None:
    assert figures["events"] == events
    assert set(figures["import"]) == {"seconds", "events_per_second"}
    assert [run["shards"] for run in figures["catch_up"]] == shards
    for run in figures["catch_up"]:
        assert set(run) == {"shards", "seconds", "events_per_second", "checkpoints"}
        assert isinstance(run["events_per_second"], int)
        assert run["checkpoints"] == [events] * run["shards"]


def leftover_keys(redis_url: str, pattern: str) -> list[bytes]:
    client = redis.Redis.from_url(redis_url)
    try:
        return list(client.scan_iter(match=pattern))
    finally:
        client.close()


@pytest.mark.ray
@pytest.mark.redis
def test_bench_prints_one_json_object_of_figures_and_leaves_redis_clean(
    cli: Run, redis_url: str
) -> None:
    store = f"{redis_url}?prefix=cli-bench-{uuid.uuid4().hex[:8]}"

    result = cli(
        "bench",
        *("--events", "20000", "--users", "2000", "--shards", "1,2"),
        *("--json", "--store", store),
    )

    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    bench_figures_are_complete(json.loads(line), 20000, [1, 2])
    assert leftover_keys(redis_url, "bench-*") == []


@pytest.mark.ray
@pytest.mark.redis
def test_bench_takes_the_store_before_the_command_too(cli: Run, redis_url: str) -> None:
    store = f"{redis_url}?prefix=cli-bench-{uuid.uuid4().hex[:8]}"

    result = cli(
        *("--store", store, "bench"),
        *("--events", "2000", "--users", "200", "--shards", "1", "--json"),
    )

    assert result.returncode == 0, result.stderr
    bench_figures_are_complete(json.loads(result.stdout), 2000, [1])
    assert leftover_keys(redis_url, "bench-*") == []


@pytest.mark.ray
@pytest.mark.redis
@pytest.mark.postgres
def test_bench_live_prints_latency_figures_and_leaves_no_table_or_keys(
    cli: Run, redis_url: str, postgres_url: str
) -> None:
    result = cli(
        "bench",
        *("--live", "--rates", "200,400", "--seconds", "1", "--json"),
        *("--event-store", postgres_url, "--store", redis_url),
    )

    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["event_store"] == "postgresql"
    assert [run["rate"] for run in figures["runs"]] == [200, 400]
    for run in figures["runs"]:
        assert run["events"] == run["rate"]
        assert run["never_visible"] == 0
        latency = run["latency_ms"]
        assert 0 < latency["p50"] <= latency["p99"] <= latency["max"]
    assert leftover_keys(redis_url, "bench_*") == []
    with psycopg.connect(postgres_url) as connection:
        tables = connection.execute(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE 'bench%'"
        ).fetchall()
    assert tables == []


def test_bench_live_refuses_rates_that_are_not_positive_numbers(cli: Run) -> None:
    result = cli("bench", "--live", "--rates", "1000,fast")

    assert result.returncode == 2
    assert "--rates" in result.stderr
    assert "'1000,fast'" in result.stderr


@pytest.mark.ray
@pytest.mark.postgres
def test_run_on_postgresql_reports_the_holes_it_passed(
    cli: Run, tmp_path: Path, postgres_url: str
) -> None:
    log = f"{postgres_url}?table=cli_{uuid.uuid4().hex[:12]}"
    source = tmp_path / "holes.jsonl"
    source.write_text(
        "\n".join(event_line(n) for n in (1, 2, 4, 5, 9)) + "\n", encoding="utf-8"
    )
    imported = cli("import", str(source), "--event-store", log)
    assert imported.returncode == 0, imported.stderr

    result = cli("run", "--until-caught-up", "--event-store", log)

    assert result.returncode == 0, result.stderr
    assert "caught up: head 9, shard checkpoints 9, 9" in result.stdout
    assert "4 missing sequence numbers passed as permanent holes" in result.stdout
    balance = cli("query", "balance", "u1", "USD", "--json", "--event-store", log)
    assert json.loads(balance.stdout)["balance"] == "5.00"


def test_bench_live_refuses_a_memory_snapshot_store(cli: Run) -> None:
    result = cli("bench", "--live", "--store", "memory://")

    assert result.returncode != 0
    assert "not memory://" in result.stderr
