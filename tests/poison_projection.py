"""A projection that fails for the user ``bad`` until
``PROJECTIONIST_TEST_HANDLER_FIXED=1`` is set: a poison event on demand."""

from __future__ import annotations

import os
from dataclasses import dataclass

from engine import WALLET_CREDITED, Event, Projection


@dataclass(slots=True)
class Credits:
    user_id: str
    count: int = 0
    last_event_version: int = 0


def _count(model: Credits | None, event: Event) -> Credits:
    fixed = os.environ.get("PROJECTIONIST_TEST_HANDLER_FIXED") == "1"
    if event.data["user_id"] == "bad" and not fixed:
        raise RuntimeError("the handler cannot take this user yet")
    model = model or Credits(event.data["user_id"])
    model.count += 1
    return model


FRAGILE = Projection(
    name="credits",
    model=Credits,
    key_fields=("user_id",),
    key=lambda event: (),
    handlers={WALLET_CREDITED: _count},
)
