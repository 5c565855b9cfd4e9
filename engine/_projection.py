"""Projections: a read model, its key, and a handler per event type.

A projection is registered, not wired into the engine. Every read model
belongs to one user: its full key is ``(user_id, *key(event))``, so the shard
that owns the user owns the model. Handlers receive the current model (or
``None`` for a key not seen before) and the event, and return the model to
keep. The engine, not the handler, sets ``last_event_version``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Context, DivisionByZero, Inexact, InvalidOperation, Overflow
from typing import Any, Protocol

from ._errors import ConfigurationError
from ._events import Event

MONEY = Context(prec=80, traps=[InvalidOperation, Inexact, Overflow, DivisionByZero])
"""Arithmetic for money: wide enough for any valid amount, and any rounding
raises instead of silently changing a balance."""


class ReadModel(Protocol):
    """What the engine needs of a read model: the position it has reached."""

    last_event_version: int


Handler = Callable[[Any, Event], Any]
KeyFunction = Callable[[Event], tuple[Any, ...]]


@dataclass(frozen=True)
class Projection:
    """One kind of read model.

    ``model`` is a dataclass with a ``last_event_version`` field and one field
    per name in ``key_fields``; ``key`` returns the key parts that follow the
    user id; ``hidden`` names fields kept in snapshots but not shown in
    queries and exports.
    """

    name: str
    model: type[Any]
    key_fields: tuple[str, ...]
    key: KeyFunction
    handlers: Mapping[str, Handler]
    hidden: frozenset[str] = field(default_factory=frozenset)
    _names: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = tuple(f.name for f in dataclasses.fields(self.model))
        object.__setattr__(self, "_names", names)
        missing = {"last_event_version", *self.key_fields} - set(names)
        if missing:
            raise ConfigurationError(
                f"projection {self.name!r}: model {self.model.__name__} lacks "
                f"fields {sorted(missing)}"
            )
        if not self.key_fields or self.key_fields[0] != "user_id":
            raise ConfigurationError(
                f"projection {self.name!r}: key_fields must start with 'user_id'"
            )

    def to_state(self, model: Any) -> dict[str, Any]:
        """Every field of ``model``, for a snapshot."""
        return {name: getattr(model, name) for name in self._names}

    def from_state(self, state: Mapping[str, Any]) -> Any:
        """Rebuild a model from :meth:`to_state`'s output."""
        return self.model(**state)

    def to_public(self, state: Mapping[str, Any]) -> dict[str, Any]:
        """A snapshot's fields as queries and exports show them."""
        return {k: v for k, v in state.items() if k not in self.hidden}


class Registry:
    """The projections an engine runs, looked up by event type in the loop."""

    def __init__(self, projections: tuple[Projection, ...] = ()) -> None:
        self._projections: dict[str, Projection] = {}
        self._by_type: dict[str, tuple[tuple[Projection, Handler], ...]] = {}
        for projection in (*_reserved(), *projections):
            self.register(projection)

    def register(self, projection: Projection) -> None:
        """Add ``projection``; its name must not be taken."""
        if projection.name in self._projections:
            raise ConfigurationError(
                f"a projection named {projection.name!r} is already registered"
            )
        self._projections[projection.name] = projection
        for event_type, handler in projection.handlers.items():
            routes = self._by_type.get(event_type, ())
            self._by_type[event_type] = (*routes, (projection, handler))

    def get(self, name: str) -> Projection:
        try:
            return self._projections[name]
        except KeyError:
            known = ", ".join(sorted(self._projections))
            raise ConfigurationError(
                f"no projection named {name!r}; registered: {known}"
            ) from None

    def handlers_for(self, event_type: str) -> tuple[tuple[Projection, Handler], ...]:
        """The (projection, handler) pairs for ``event_type``; empty if none."""
        return self._by_type.get(event_type, ())

    def names(self) -> list[str]:
        return list(self._projections)

    def __iter__(self) -> Iterator[Projection]:
        return iter(self._projections.values())

    def __len__(self) -> int:
        return len(self._projections)


def _reserved() -> tuple[Projection, ...]:
    # Dead letters and quarantines are in every registry (see _parking).
    from ._parking import RESERVED

    return RESERVED
