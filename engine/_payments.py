"""The payments projection pack: Balance, WalletSummary and PaymentStatus.

The rules are DESIGN.md's. Money is added with :data:`MONEY`, so a sum that
would need rounding raises rather than drifting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from ._events import (
    PAYMENT_COMPLETED,
    PAYMENT_FAILED,
    PAYMENT_INITIATED,
    WALLET_CREDITED,
    WALLET_DEDUCTED,
    Event,
)
from ._projection import MONEY, Projection, Registry

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
PENDING, COMPLETED, FAILED = "pending", "completed", "failed"


@dataclass(slots=True)
class Balance:
    user_id: str
    currency: str
    balance: Decimal = ZERO
    transaction_count: int = 0
    last_updated: datetime | None = None
    last_event_version: int = 0


@dataclass(slots=True)
class WalletSummary:
    user_id: str
    currency: str
    current_balance: Decimal = ZERO
    total_credits: Decimal = ZERO
    total_debits: Decimal = ZERO
    transaction_count: int = 0
    created_at: datetime | None = None
    last_transaction_at: datetime | None = None
    last_updated: datetime | None = None
    last_event_version: int = 0


@dataclass(slots=True)
class PaymentStatus:
    """Payment counts of one user; ``payments`` remembers each payment's state.

    ``anomalies`` counts terminal events for payments already terminal.
    """

    user_id: str
    total_payments: int = 0
    pending_payments: int = 0
    completed_payments: int = 0
    failed_payments: int = 0
    total_amount: Decimal = ZERO
    last_payment_at: datetime | None = None
    last_updated: datetime | None = None
    anomalies: int = 0
    last_event_version: int = 0
    payments: dict[str, str] = field(default_factory=dict)


def _next_balance(previous: Decimal, event: Event, sign: int) -> Decimal:
    given = event.data.get("new_balance")
    if given is not None:
        return given  # type: ignore[no-any-return]
    amount = event.data["amount"]
    if sign > 0:
        return MONEY.add(previous, amount)
    return MONEY.subtract(previous, amount)


def _apply_balance(model: Balance | None, event: Event, sign: int) -> Balance:
    data = event.data
    if model is None:
        model = Balance(data["user_id"], data["currency"])
    model.balance = _next_balance(model.balance, event, sign)
    model.last_updated = event.created_at
    model.transaction_count += 1
    return model


def _apply_summary(
    model: WalletSummary | None, event: Event, sign: int
) -> WalletSummary:
    data = event.data
    if model is None:
        model = WalletSummary(data["user_id"], data["currency"])
        model.created_at = event.created_at
    model.current_balance = _next_balance(model.current_balance, event, sign)
    if sign > 0:
        model.total_credits = MONEY.add(model.total_credits, data["amount"])
    else:
        model.total_debits = MONEY.add(model.total_debits, data["amount"])
    model.transaction_count += 1
    model.last_transaction_at = event.created_at
    model.last_updated = event.created_at
    return model


def _payment_initiated(model: PaymentStatus | None, event: Event) -> PaymentStatus:
    data = event.data
    model = model or PaymentStatus(data["user_id"])
    model.last_updated = event.created_at
    if data["payment_id"] in model.payments:
        _report_anomaly(model, event, "initiated twice")
        return model
    model.payments[data["payment_id"]] = PENDING
    model.total_payments += 1
    model.pending_payments += 1
    model.total_amount = MONEY.add(model.total_amount, data["amount"])
    model.last_payment_at = event.created_at
    return model


def _payment_ended(
    model: PaymentStatus | None, event: Event, outcome: str
) -> PaymentStatus:
    data = event.data
    model = model or PaymentStatus(data["user_id"])
    model.last_updated = event.created_at
    state = model.payments.get(data["payment_id"])
    if state in (COMPLETED, FAILED):
        _report_anomaly(model, event, f"{outcome} after it was already {state}")
        return model
    if state == PENDING:
        model.pending_payments -= 1
    else:
        model.total_payments += 1
        model.last_payment_at = event.created_at
        if data.get("amount") is not None:
            model.total_amount = MONEY.add(model.total_amount, data["amount"])
    model.payments[data["payment_id"]] = outcome
    if outcome == COMPLETED:
        model.completed_payments += 1
    else:
        model.failed_payments += 1
    return model


def _report_anomaly(model: PaymentStatus, event: Event, what: str) -> None:
    model.anomalies += 1
    logger.warning(
        "anomaly at sequence number %s: payment %s of user %s %s",
        event.sequence_number,
        event.data["payment_id"],
        model.user_id,
        what,
    )


def _by_currency(event: Event) -> tuple[str]:
    return (event.data["currency"],)


def _by_user(event: Event) -> tuple[()]:
    return ()


BALANCE = Projection(
    name="balance",
    model=Balance,
    key_fields=("user_id", "currency"),
    key=_by_currency,
    handlers={
        WALLET_CREDITED: lambda model, event: _apply_balance(model, event, 1),
        WALLET_DEDUCTED: lambda model, event: _apply_balance(model, event, -1),
    },
)

WALLET_SUMMARY = Projection(
    name="summary",
    model=WalletSummary,
    key_fields=("user_id", "currency"),
    key=_by_currency,
    handlers={
        WALLET_CREDITED: lambda model, event: _apply_summary(model, event, 1),
        WALLET_DEDUCTED: lambda model, event: _apply_summary(model, event, -1),
    },
)

PAYMENT_STATUS = Projection(
    name="payments",
    model=PaymentStatus,
    key_fields=("user_id",),
    key=_by_user,
    handlers={
        PAYMENT_INITIATED: _payment_initiated,
        PAYMENT_COMPLETED: lambda model, e: _payment_ended(model, e, COMPLETED),
        PAYMENT_FAILED: lambda model, e: _payment_ended(model, e, FAILED),
    },
    hidden=frozenset({"payments"}),
)


def payments_registry() -> Registry:
    """A registry holding the payments pack, ready for more projections."""
    return Registry((BALANCE, WALLET_SUMMARY, PAYMENT_STATUS))
