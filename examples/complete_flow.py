"""The complete flow: DESIGN's three queries answered while events flow.

A background writer keeps appending a synthetic workload for 300 other users
while Alice's story is appended a step at a time: a credit, a payment that
starts and completes, a debit for it, another credit. After each step the
example asks the running engine ``get_balance``, ``get_wallet_summary`` and
``get_payment_status`` until the answer includes that step, and prints it
with how long it took. At the end Alice's models must hold exactly the
expected values and every model must match a sequential fold. Run it with

    python -m examples.complete_flow
    python -m examples.complete_flow --event-store postgresql://127.0.0.1/mydb

(temporary SQLite files unless stores are named; exit status 1 on any
difference).
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from actors import Projectionist
from engine import Event, ModelNotFound, generate_events
from examples._on_stores import run_on_stores

PATIENCE_S = 120.0
# A user of this run's own, so the example may run again on the same stores.
ALICE = f"alice-{uuid.uuid4().hex[:8]}"
NOISE_BATCH = 100

STORY: list[tuple[str, dict[str, Any]]] = [
    ("WalletCredited", {"currency": "USD", "amount": Decimal("100.00")}),
    (
        "PaymentInitiated",
        {"payment_id": "payment-1", "currency": "USD", "amount": Decimal("30.00")},
    ),
    ("WalletDeducted", {"currency": "USD", "amount": Decimal("30.00")}),
    ("PaymentCompleted", {"payment_id": "payment-1"}),
    ("WalletCredited", {"currency": "USD", "amount": Decimal("12.34")}),
]
EXPECTED = {
    "balance": Decimal("82.34"),
    "total_credits": Decimal("112.34"),
    "total_debits": Decimal("30.00"),
    "transaction_count": 3,
    "total_payments": 1,
    "completed_payments": 1,
    "pending_payments": 0,
    "total_amount": Decimal("30.00"),
}


def story_event(step: int) -> Event:
    event_type, data = STORY[step]
    moment = datetime(2026, 3, 1, 12, 0, step, tzinfo=UTC)
    data = {"user_id": ALICE, **data}
    if "payment_id" in data:
        data["payment_id"] = f"{ALICE}-{data['payment_id']}"
    return Event(0, f"{ALICE}-{step}", event_type, moment, data)


def keep_writing(engine: Projectionist, stop: threading.Event) -> None:
    """Append the background workload until ``stop`` is set."""
    noise = generate_events(1_000_000, users=300, seed=3)
    while not stop.is_set():
        engine.append([next(noise) for _ in range(NOISE_BATCH)])
        stop.wait(0.02)


def answer(engine: Projectionist) -> dict[str, Any]:
    """The three queries for Alice; models not yet created are left out."""
    found: dict[str, Any] = {}
    queries: list[Callable[[], Any]] = [
        lambda: engine.get_balance(ALICE, "USD"),
        lambda: engine.get_wallet_summary(ALICE, "USD"),
        lambda: engine.get_payment_status(ALICE),
    ]
    for query in queries:
        try:
            found[type(query()).__name__] = query()
        except ModelNotFound:
            continue
    return found


def seen(found: dict[str, Any], number: int) -> bool:
    versions = [model.last_event_version for model in found.values()]
    return max(versions, default=0) >= number


def wait_for_step(engine: Projectionist, number: int) -> dict[str, Any] | None:
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        found = answer(engine)
        if seen(found, number):
            return found
        time.sleep(0.005)
    return None


def describe(found: dict[str, Any]) -> str:
    parts = []
    if "Balance" in found:
        parts.append(f"balance {found['Balance'].balance}")
    if "WalletSummary" in found:
        summary = found["WalletSummary"]
        parts.append(f"credits {summary.total_credits} debits {summary.total_debits}")
    if "PaymentStatus" in found:
        status = found["PaymentStatus"]
        parts.append(
            f"payments {status.total_payments} (pending {status.pending_payments}, "
            f"completed {status.completed_payments})"
        )
    return "; ".join(parts)


def final_values(found: dict[str, Any]) -> dict[str, Any]:
    balance, summary = found["Balance"], found["WalletSummary"]
    payments = found["PaymentStatus"]
    return {
        "balance": balance.balance,
        "total_credits": summary.total_credits,
        "total_debits": summary.total_debits,
        "transaction_count": summary.transaction_count,
        "total_payments": payments.total_payments,
        "completed_payments": payments.completed_payments,
        "pending_payments": payments.pending_payments,
        "total_amount": payments.total_amount,
    }


def tell_story(engine: Projectionist) -> dict[str, Any] | None:
    found: dict[str, Any] | None = None
    for step in range(len(STORY)):
        began = time.monotonic()
        number = engine.append([story_event(step)]).last
        found = wait_for_step(engine, number)
        if found is None:
            print(f"step {step + 1} (event {number}) never became visible")
            return None
        waited = (time.monotonic() - began) * 1000
        print(
            f"{STORY[step][0]:<17} event {number:>6}, answered after "
            f"{waited:4.0f} ms: {describe(found)}"
        )
    return found


def main(event_store: str, store: str) -> bool:
    """Run the flow on the two stores; ``True`` when every check holds."""
    engine = Projectionist(event_store, store, shards=2)
    stop = threading.Event()
    writer = threading.Thread(target=keep_writing, args=(engine, stop))
    try:
        engine.start()
        writer.start()
        found = tell_story(engine)
        stop.set()
        writer.join()
        if not engine.wait_until_visible(engine.events.head(), PATIENCE_S):
            print("the log's last events never became visible")
            return False
        logged = engine.events.read_events_after(0, 10_000_000)
        compared, differences = engine.differences_from_fold(logged)
    finally:
        stop.set()
        engine.stop()
    exact = found is not None and final_values(found) == EXPECTED
    print(
        f"Alice's read models {'hold' if exact else 'DO NOT hold'} the expected "
        f"values; {compared} read models checked against a fold: "
        f"{differences} differences"
    )
    return exact and differences == 0


if __name__ == "__main__":
    sys.exit(run_on_stores(main, __doc__.splitlines()[0]))
