"""The fold: applying events to read models, once each.

A :class:`Projector` holds the read models of one shard (or, for a plain
sequential fold, of the whole log). Each model remembers the sequence
number of the last event applied to it, so an event delivered again, after
a restart, a retry or a change of shard count, changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ._errors import ProjectionFailed
from ._events import Event
from ._parking import DEAD_LETTERS, QUARANTINE, Quarantine, dead_letter
from ._projection import Projection, Registry
from ._stores import ModelRecord

logger = logging.getLogger(__name__)


class Projector:
    """Read models in memory, with the set of those changed since the last
    :meth:`mark_clean`."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.models: dict[str, dict[tuple[Any, ...], Any]] = {
            projection.name: {} for projection in registry
        }
        self._dirty: set[tuple[str, tuple[Any, ...]]] = set()
        self._quarantined = self.models[QUARANTINE.name]
        self._unknown: set[str] = set()

    def load(
        self, projection: str, key: tuple[Any, ...], state: Mapping[str, Any]
    ) -> None:
        """Put a model read from a snapshot in place, clean. Models of a
        projection no longer registered stay in the store, untouched."""
        table = self.models.get(projection)
        if table is None:
            if projection not in self._unknown:
                self._unknown.add(projection)
                logger.warning(
                    "ignoring stored models of %r: not registered", projection
                )
            return
        table[key] = self.registry.get(projection).from_state(dict(state))

    def apply(self, event: Event) -> None:
        """Apply ``event`` to every model it touches that has not seen it.

        Events of one user must arrive in sequence order; an event at or
        below a model's ``last_event_version`` is skipped for that model.
        """
        handlers = self.registry.handlers_for(event.event_type)
        if not handlers:
            return
        user_id = event.data.get("user_id")
        if self._quarantined and self.is_quarantined(user_id):
            self.park(event, "its user is quarantined")
            return
        number = event.sequence_number
        for projection, handler in handlers:
            key = (user_id, *projection.key(event))
            table = self.models[projection.name]
            current = table.get(key)
            if current is not None and current.last_event_version >= number:
                continue
            table[key] = self._run(projection, handler, current, event)
            self._dirty.add((projection.name, key))

    @staticmethod
    def _run(projection: Projection, handler: Any, current: Any, event: Event) -> Any:
        try:
            model = handler(current, event)
        except Exception as error:
            raise ProjectionFailed(
                projection.name, event.sequence_number, repr(error)
            ) from error
        model.last_event_version = event.sequence_number
        return model

    def is_quarantined(self, user_id: object) -> bool:
        quarantine = self._quarantined.get((user_id,))
        return quarantine is not None and bool(quarantine.active)

    def mark_dirty(self, projection: str, key: tuple[Any, ...]) -> None:
        """Count a model changed outside :meth:`apply` in the next flush."""
        self._dirty.add((projection, key))

    def park(self, event: Event, reason: str) -> None:
        """Park ``event`` as a dead letter and quarantine its user, so every
        later event of that user is parked too."""
        user_id = event.data["user_id"]
        key = (user_id, event.sequence_number)
        self.models[DEAD_LETTERS.name][key] = dead_letter(event, reason)
        self._dirty.add((DEAD_LETTERS.name, key))
        if not self.is_quarantined(user_id):
            number = event.sequence_number
            quarantine = Quarantine(user_id, number, reason, True, number)
            self._quarantined[(user_id,)] = quarantine
            self._dirty.add((QUARANTINE.name, (user_id,)))

    def apply_all(self, events: Iterable[Event]) -> None:
        for event in events:
            self.apply(event)

    def dirty_records(self) -> tuple[ModelRecord, ...]:
        """The state of every changed model. The states share containers
        with the live models: encode them before the next :meth:`apply`."""
        records = []
        for name, key in self._dirty:
            projection = self.registry.get(name)
            state = projection.to_state(self.models[name][key])
            records.append(ModelRecord(name, key, state))
        return tuple(records)

    def mark_clean(self) -> None:
        """Forget which models changed: call only once they are durable."""
        self._dirty.clear()

    @property
    def dirty_count(self) -> int:
        return len(self._dirty)

    def states(
        self, projection: str
    ) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
        """Every model of ``projection`` as ``(key, state)``, in key order."""
        registered = self.registry.get(projection)
        table = self.models[projection]
        for key in sorted(table):
            yield key, registered.to_state(table[key])


def fold(registry: Registry, events: Iterable[Event]) -> Projector:
    """The reference result: every event applied in order in one process."""
    projector = Projector(registry)
    projector.apply_all(events)
    return projector
