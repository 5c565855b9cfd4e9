"""A user projection for case F: it records every credit it applies, and its
handler fails on the first attempt at one sequence number only.

Attempts are remembered in files, so they count across processes: the first
attempt creates ``failed`` and raises; every later attempt waits until the
test creates ``release`` and then succeeds, so a test can kill the engine
before a retry succeeds. Ray workers import this module by name, so its
folder must be on their ``PYTHONPATH``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from engine import WALLET_CREDITED, Event, Projection

NAME = "credits_seen"
FAILED = "failed"
RELEASE = "release"
RELEASE_WAIT_S = 120.0
POLL_S = 0.02


@dataclass(slots=True)
class CreditsSeen:
    user_id: str
    applied: list[int] = field(default_factory=list)
    last_event_version: int = 0


class InjectedFailure(RuntimeError):
    """The failure the handler raises on its first attempt."""


def _credit(
    folder: str, failing: int, model: CreditsSeen | None, event: Event
) -> CreditsSeen:
    if event.sequence_number == failing:
        _attempt(Path(folder), failing)
    model = model or CreditsSeen(event.data["user_id"])
    model.applied.append(event.sequence_number)
    return model


def _attempt(folder: Path, failing: int) -> None:
    if not (folder / FAILED).exists():
        (folder / FAILED).touch()
        raise InjectedFailure(f"first attempt at sequence number {failing}")
    deadline = time.monotonic() + RELEASE_WAIT_S
    while not (folder / RELEASE).exists():
        if time.monotonic() > deadline:
            raise InjectedFailure(f"no release for sequence number {failing}")
        time.sleep(POLL_S)


def _by_user(event: Event) -> tuple[()]:
    return ()


def credits_seen(folder: Path, failing: int) -> Projection:
    """The projection, failing at ``failing`` on the first attempt, with its
    markers in ``folder``."""
    return Projection(
        name=NAME,
        model=CreditsSeen,
        key_fields=("user_id",),
        key=_by_user,
        handlers={WALLET_CREDITED: partial(_credit, str(folder), failing)},
    )
