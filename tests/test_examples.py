"""Every example runs to the end, from the repository root, as documented."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
import redis

from engine import MONEY, WALLET_CREDITED, WALLET_DEDUCTED, generate_events

REPO = Path(__file__).resolve().parents[1]
BANK_LOG = REPO.parent / "shared" / "data" / "czech-bank" / "trans.asc"
OWN_SETTINGS = ("READ_MODEL_", "REDIS_READ_MODEL_", "PROJECTIONIST_")

pytestmark = pytest.mark.ray


def environment() -> dict[str, str]:
    """No store settings from outside, and a local Ray kept on loopback."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(OWN_SETTINGS)
        and name not in ("EVENT_STORE_URL", "RAY_ADDRESS")
    }
    return {**kept, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=REPO,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def bank_accounts(path: Path) -> tuple[set[str], int]:
    """The accounts of the well-formed records, and the number of the last
    line (the file is cut in the middle of its last record)."""
    accounts: set[str] = set()
    with path.open(encoding="utf-8", newline="") as file:
        rows = csv.reader(file, delimiter=";", quotechar='"')
        header = next(rows)
        for row in rows:
            if len(row) == len(header):
                accounts.add(row[header.index("account_id")])
        last_line = rows.line_num
    return accounts, last_line


@pytest.mark.redis
def test_the_bank_log_example_matches_every_account_of_the_bank(
    redis_url: str,
) -> None:
    if not BANK_LOG.exists():
        pytest.skip(f"the bank's log is missing: no {BANK_LOG}")
    accounts, last_line = bank_accounts(BANK_LOG)

    result = run(
        sys.executable, "-m", "examples.bank_log", str(BANK_LOG), "--redis", redis_url
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    count = len(accounts)
    assert f"{count} of {count} accounts match the bank's own figures" in result.stdout
    invalid = [line for line in result.stdout.splitlines() if "invalid record" in line]
    assert len(invalid) == 1
    assert f"{BANK_LOG} line {last_line}:" in invalid[0]
    client = redis.Redis.from_url(redis_url)
    assert list(client.scan_iter(match="bank-*")) == []
    client.close()


def test_the_daily_volume_example_prints_the_volume_of_each_currency_and_day() -> None:
    expected: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for event in generate_events(5_000, users=200, seed=11):
        if event.event_type in (WALLET_CREDITED, WALLET_DEDUCTED):
            key = (event.created_at.date().isoformat(), event.data["currency"])
            expected[key] = MONEY.add(expected[key], event.data["amount"])

    result = run(sys.executable, "-m", "examples.daily_volume")

    assert result.returncode == 0, result.stderr[-3000:]
    printed = {}
    for line in result.stdout.splitlines():
        match = re.fullmatch(r"(\d{4}-\d{2}-\d{2}) ([A-Z]{3}) (-?\d+(?:\.\d+)?)", line)
        if match:
            printed[(match[1], match[2])] = Decimal(match[3])
    assert printed == dict(expected)


def test_the_demo_command_checks_every_model_against_the_fold() -> None:
    script = Path(sys.executable).with_name("projectionist")
    command = str(script) if script.exists() else shutil.which("projectionist")
    assert command, "the projectionist console script is not installed"

    result = run(command, "demo")

    assert result.returncode == 0, result.stderr[-3000:]
    assert "demo passed" in result.stdout
    match = re.search(r"(\d+) of (\d+) read models match", result.stdout)
    assert match is not None, result.stdout
    assert match[1] == match[2]
    assert int(match[2]) > 0


def test_the_failure_recovery_example_ends_with_no_difference_from_the_fold() -> None:
    result = run(
        sys.executable,
        "-m",
        "examples.failure_recovery",
        "--events",
        "40000",
        "--kills",
        "1",
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "restarted: caught up at 40000 of 40000" in result.stdout
    assert re.search(
        r"\b\d+ read models checked against a fold: 0 differences", result.stdout
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def log_options(request: pytest.FixtureRequest) -> list[str]:
    """No option (temporary SQLite files), or a PostgreSQL table of its own."""
    if request.param == "sqlite":
        return []
    database: str = request.getfixturevalue("postgres_url")
    return ["--event-store", f"{database}?table=example_{uuid.uuid4().hex[:12]}"]


def test_the_eventual_consistency_example_matches_the_fold_after_live_events(
    log_options: list[str],
) -> None:
    result = run(sys.executable, "-m", "examples.eventual_consistency", *log_options)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "20000 events in the log before the engine starts" in result.stdout
    assert re.search(r"5000 live events appended; the last one, 25000", result.stdout)
    assert re.search(
        r"\b\d+ read models checked against a fold: 0 differences", result.stdout
    )


def test_the_complete_flow_example_answers_each_step_while_events_flow(
    log_options: list[str],
) -> None:
    result = run(sys.executable, "-m", "examples.complete_flow", *log_options)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    answers = re.findall(r"answered after +\d+ ms: (.*)", result.stdout)
    assert answers[0] == "balance 100.00; credits 100.00 debits 0"
    assert answers[-1] == (
        "balance 82.34; credits 112.34 debits 30.00; "
        "payments 1 (pending 0, completed 1)"
    )
    assert "Alice's read models hold the expected values" in result.stdout
    assert re.search(r"0 differences", result.stdout)


def test_the_eventsourcing_log_example_matches_every_wallets_aggregate() -> None:
    result = run(sys.executable, "-m", "examples.eventsourcing_log")

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"projected up to notification 2040 with 2 shards", result.stdout)
    assert re.search(r"\b\d+ unmapped \(opened, relabelled\)", result.stdout)
    assert "40 of 40 wallets match their aggregate's" in result.stdout
