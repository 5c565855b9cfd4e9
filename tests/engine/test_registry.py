"""Projections are registered, not wired into the engine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from engine import (
    MONEY,
    ConfigurationError,
    Event,
    Projection,
    Registry,
    fold,
    payments_registry,
    validate_event,
)


@dataclass(slots=True)
class CreditCount:
    user_id: str
    credits: int = 0
    credited: Decimal = Decimal(0)
    last_event_version: int = 0


def _count_credit(model: CreditCount | None, event: Event) -> CreditCount:
    model = model or CreditCount(event.data["user_id"])
    model.credits += 1
    model.credited = MONEY.add(model.credited, event.data["amount"])
    return model


CREDIT_COUNT = Projection(
    name="credit_count",
    model=CreditCount,
    key_fields=("user_id",),
    key=lambda event: (),
    handlers={"WalletCredited": _count_credit},
)


def credited(number: int, user: str, amount: str) -> Event:
    return validate_event(
        {
            "sequence_number": number,
            "event_type": "WalletCredited",
            "created_at": datetime(2026, 1, 5, tzinfo=UTC),
            "data": {"user_id": user, "currency": "USD", "amount": amount},
        }
    )


def test_a_projection_of_our_own_runs_beside_the_payments_pack() -> None:
    registry = payments_registry()
    registry.register(CREDIT_COUNT)

    projector = fold(
        registry,
        [credited(1, "u1", "1.50"), credited(2, "u1", "2.25"), credited(3, "u2", "1")],
    )

    ours = projector.models["credit_count"]
    assert ours[("u1",)] == CreditCount("u1", 2, Decimal("3.75"), 2)
    assert ours[("u2",)].credits == 1
    assert projector.models["balance"][("u1", "USD")].balance == Decimal("3.75")


def test_the_engine_sets_last_event_version_for_a_projection_of_our_own() -> None:
    registry = Registry((CREDIT_COUNT,))

    projector = fold(registry, [credited(7, "u1", "1")])

    assert projector.models["credit_count"][("u1",)].last_event_version == 7


def test_a_projection_name_already_registered_is_refused() -> None:
    registry = payments_registry()
    twin = Projection(
        name="balance",
        model=CreditCount,
        key_fields=("user_id",),
        key=lambda event: (),
        handlers={},
    )

    with pytest.raises(ConfigurationError, match="balance"):
        registry.register(twin)
    assert registry.get("balance").model is not CreditCount


def test_key_fields_that_do_not_start_with_user_id_are_refused() -> None:
    @dataclass
    class ByCurrency:
        currency: str
        user_id: str
        last_event_version: int = 0

    with pytest.raises(ConfigurationError, match="user_id"):
        Projection(
            name="by_currency",
            model=ByCurrency,
            key_fields=("currency", "user_id"),
            key=lambda event: (),
            handlers={},
        )


def test_empty_key_fields_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="user_id"):
        Projection(
            name="keyless",
            model=CreditCount,
            key_fields=(),
            key=lambda event: (),
            handlers={},
        )


def test_a_model_without_last_event_version_is_refused() -> None:
    @dataclass
    class Versionless:
        user_id: str

    with pytest.raises(ConfigurationError, match="last_event_version"):
        Projection(
            name="versionless",
            model=Versionless,
            key_fields=("user_id",),
            key=lambda event: (),
            handlers={},
        )


def test_asking_for_an_unregistered_projection_names_the_registered_ones() -> None:
    with pytest.raises(ConfigurationError) as caught:
        payments_registry().get("nothing")

    assert "'nothing'" in str(caught.value)
    assert all(name in str(caught.value) for name in ("balance", "summary", "payments"))


def test_an_event_type_without_handlers_has_no_routes() -> None:
    registry = payments_registry()

    assert registry.handlers_for("AccountOpened") == ()
    assert {p.name for p, _ in registry.handlers_for("WalletCredited")} == {
        "balance",
        "summary",
    }
