"""A projection of our own, registered beside the payments pack.

DailyVolume, key (user_id, currency, day): the money a user moved in one
currency on one day, in and out. Run it with

    projectionist run --projections examples.daily_volume:DAILY_VOLUME
    projectionist export daily_volume --projections examples.daily_volume:DAILY_VOLUME

or, from Python, ``python -m examples.daily_volume``, which also sums the
per-user models into a volume per currency and day.
"""

from __future__ import annotations

import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from actors import Projectionist
from engine import (
    MONEY,
    WALLET_CREDITED,
    WALLET_DEDUCTED,
    Event,
    Projection,
    generate_events,
    payments_registry,
)


@dataclass(slots=True)
class DailyVolume:
    user_id: str
    currency: str
    day: str
    credited: Decimal = Decimal(0)
    debited: Decimal = Decimal(0)
    transfers: int = 0
    last_event_version: int = 0


def _credited(model: DailyVolume | None, event: Event) -> DailyVolume:
    model = model or _new(event)
    model.credited = MONEY.add(model.credited, event.data["amount"])
    model.transfers += 1
    return model


def _debited(model: DailyVolume | None, event: Event) -> DailyVolume:
    model = model or _new(event)
    model.debited = MONEY.add(model.debited, event.data["amount"])
    model.transfers += 1
    return model


def _new(event: Event) -> DailyVolume:
    data = event.data
    return DailyVolume(data["user_id"], data["currency"], _day(event))


def _day(event: Event) -> str:
    return event.created_at.date().isoformat()


DAILY_VOLUME = Projection(
    name="daily_volume",
    model=DailyVolume,
    key_fields=("user_id", "currency", "day"),
    key=lambda event: (event.data["currency"], _day(event)),
    handlers={WALLET_CREDITED: _credited, WALLET_DEDUCTED: _debited},
)


def main(folder: Path) -> dict[tuple[str, str], Decimal]:
    """Project a generated workload with DailyVolume registered, and print
    the total volume per currency and day."""
    registry = payments_registry()
    registry.register(DAILY_VOLUME)
    engine = Projectionist(
        f"sqlite:///{folder / 'events.db'}",
        f"sqlite:///{folder / 'models.db'}",
        registry=registry,
        shards=2,
    )
    engine.append(generate_events(5_000, users=200, seed=11))
    engine.run_until_caught_up()
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for _, state in engine.export("daily_volume"):
        day_key = (state["currency"], state["day"])
        totals[day_key] = MONEY.add(
            totals[day_key], state["credited"] + state["debited"]
        )
    for (currency, day), volume in sorted(totals.items()):
        print(f"{day} {currency} {volume}")
    return dict(totals)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as made:
        main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(made))
