"""A synthetic payments workload, for ``generate``, ``bench`` and tests.

Events are built valid by construction (the tests check them against
``validate_event``); sequence numbers are left for the event store.
"""

from __future__ import annotations

import random
import secrets
from collections import deque
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ._events import (
    PAYMENT_COMPLETED,
    PAYMENT_FAILED,
    PAYMENT_INITIATED,
    WALLET_CREDITED,
    WALLET_DEDUCTED,
    Event,
)

DEFAULT_CURRENCIES = ("USD", "EUR", "CZK", "GBP", "JPY", "CHF")
_START = datetime(2026, 1, 1, tzinfo=UTC)


def generate_events(
    count: int,
    users: int = 100_000,
    currencies: Sequence[str] = DEFAULT_CURRENCIES[:3],
    seed: int | None = None,
) -> Iterator[Event]:
    """Yield ``count`` events over ``users`` users and ``currencies``.

    Half are credits, a quarter debits, the rest payments that start and
    then complete or fail. The same ``seed`` gives the same events, except
    for their ids, which are unique per call.
    """
    rng = random.Random(seed)
    token = secrets.token_hex(4)
    pending: deque[tuple[str, str]] = deque()
    for index in range(count):
        user = f"user-{rng.randrange(users)}"
        data = _data(rng, user, currencies, pending, index)
        yield Event(
            0,
            f"gen-{token}-{index}",
            str(data.pop("event_type")),
            _START + timedelta(seconds=index),
            data,
        )


def _data(
    rng: random.Random,
    user: str,
    currencies: Sequence[str],
    pending: deque[tuple[str, str]],
    index: int,
) -> dict[str, object]:
    roll = rng.random()
    amount = Decimal(rng.randrange(1, 100_000)).scaleb(-2)
    currency = rng.choice(currencies)
    if roll < 0.5:
        kind = WALLET_CREDITED
    elif roll < 0.75:
        kind = WALLET_DEDUCTED
    elif roll < 0.88 or not pending:
        payment = f"pay-{index}"
        pending.append((payment, user))
        return {
            "event_type": PAYMENT_INITIATED,
            "payment_id": payment,
            "user_id": user,
            "currency": currency,
            "amount": amount,
        }
    else:
        payment, owner = pending.popleft()
        kind = PAYMENT_COMPLETED if roll < 0.96 else PAYMENT_FAILED
        return {"event_type": kind, "payment_id": payment, "user_id": owner}
    return {"event_type": kind, "user_id": user, "currency": currency, "amount": amount}
