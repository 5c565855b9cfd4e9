"""Poison events through the command line: parked by ``run``, listed,
replayed by ``dead-letters retry`` once the handler is fixed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def run(
    folder: Path, *args: str, fixed: bool = False
) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("projectionist")
    found = str(script) if script.exists() else shutil.which("projectionist")
    if found is None:
        pytest.skip("the projectionist console script is not installed")
    environment = {
        **os.environ,
        "EVENT_STORE_URL": f"sqlite:///{folder / 'events.db'}",
        "READ_MODEL_STORE_URL": f"sqlite:///{folder / 'models.db'}",
        "PROJECTIONIST_PROJECTIONS": "poison_projection:FRAGILE",
        "PYTHONPATH": str(folder),
        "READ_MODEL_MAX_RETRIES": "2",
        "PROJECTIONIST_TEST_HANDLER_FIXED": "1" if fixed else "0",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }
    return subprocess.run(
        [found, *args],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def credit(number: int, user: str) -> str:
    return json.dumps(
        {
            "sequence_number": number,
            "event_type": "WalletCredited",
            "created_at": "2026-01-05T10:00:00Z",
            "data": {"user_id": user, "currency": "USD", "amount": "1.00"},
        }
    )


@pytest.mark.ray
def test_a_poison_user_is_parked_listed_and_replayed(tmp_path: Path) -> None:
    # The projection module sits beside the stores, where Ray's workers look.
    shutil.copy(TESTS / "poison_projection.py", tmp_path)
    users = ["good", "bad", "good", "bad", "other"]
    lines = [credit(n, user) for n, user in enumerate(users, start=1)]
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    assert run(tmp_path, "import", "events.jsonl").returncode == 0

    ran = run(tmp_path, "run", "--until-caught-up")
    listed = run(tmp_path, "dead-letters", "list", "--json")
    missing = run(tmp_path, "query", "balance", "bad", "USD")
    good = run(tmp_path, "query", "balance", "good", "USD", "--json")

    assert ran.returncode == 0, ran.stderr
    parked = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(p["user_id"], p["sequence_number"]) for p in parked] == [
        ("bad", 2),
        ("bad", 4),
    ]
    assert missing.returncode != 0
    assert json.loads(good.stdout)["balance"] == "2.00"

    retried = run(tmp_path, "dead-letters", "retry", "bad", fixed=True)
    after = run(tmp_path, "query", "balance", "bad", "USD", "--json")
    left = run(tmp_path, "dead-letters", "list", "--json")

    assert retried.returncode == 0, retried.stderr
    assert "2 parked events replayed" in retried.stdout
    assert json.loads(after.stdout)["balance"] == "2.00"
    assert json.loads(after.stdout)["transaction_count"] == 2
    assert left.stdout.strip() == ""
