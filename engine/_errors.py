"""Every error Projectionist raises on purpose.

ProjectionistError
├── ConfigurationError      a setting or URL that cannot be used
├── InvalidEventError       an event that breaks the event contract
├── EventStoreError         the event store refused or failed an operation
├── SnapshotStoreError      the snapshot store refused or failed an operation
│   └── FlushNotConfirmed   an atomic flush whose reply did not confirm it
├── OwnershipLost           a newer engine or shard owner took over
├── ProjectionFailed        a projection handler raised on an event
└── ModelNotFound           a query for a key that has no read model
"""

from __future__ import annotations


class ProjectionistError(Exception):
    """The root of every error raised on purpose by Projectionist."""


class ConfigurationError(ProjectionistError):
    """A setting, flag or store URL that cannot be used as given."""


class InvalidEventError(ProjectionistError):
    """An event that breaks the event contract.

    ``where`` names the place (file and line, or sequence number) and ``field``
    the offending field when one is to blame.
    """

    def __init__(self, reason: str, *, where: str = "", field: str = "") -> None:
        self.reason = reason
        self.where = where
        self.field = field
        super().__init__(self._describe())

    def __reduce__(self) -> tuple[object, ...]:
        # Crosses process boundaries (Ray) whole, with its fields.
        return (_rebuild_invalid, (self.reason, self.where, self.field))

    def _describe(self) -> str:
        parts = [self.where] if self.where else []
        if self.field:
            parts.append(f"field {self.field!r}")
        prefix = ", ".join(parts)
        return f"{prefix}: {self.reason}" if prefix else self.reason

    def located(self, where: str) -> InvalidEventError:
        """Return a copy that names ``where`` (for example ``file.jsonl line 7``)."""
        return InvalidEventError(self.reason, where=where, field=self.field)


class EventStoreError(ProjectionistError):
    """The event store refused or failed an operation."""


class SnapshotStoreError(ProjectionistError):
    """The snapshot store refused or failed an operation."""


class FlushNotConfirmed(SnapshotStoreError):
    """An atomic flush ran, but its reply did not confirm every write.

    The checkpoint was not advanced; the flush is safe to repeat.
    """


class OwnershipLost(ProjectionistError):
    """A newer owner took a shard over: this one must stop writing.

    Raised by a snapshot store for a flush or claim of a fenced-out owner.
    Never retried.
    """

    def __init__(self, shard: int, detail: str) -> None:
        self.shard = shard
        self.detail = detail
        super().__init__(
            f"shard {shard} now belongs to a newer engine or incarnation "
            f"({detail}); this one stops without writing. Is a second "
            "'projectionist run' using the same stores?"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.shard, self.detail))


class ProjectionFailed(ProjectionistError):
    """A projection handler raised while applying an event."""

    def __init__(self, projection: str, sequence_number: int, cause: str) -> None:
        self.projection = projection
        self.sequence_number = sequence_number
        self.cause = cause
        super().__init__(
            f"projection {projection!r} failed on sequence number "
            f"{sequence_number}: {cause}"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.projection, self.sequence_number, self.cause))


class ModelNotFound(ProjectionistError, LookupError):
    """A query named a key for which no read model exists."""

    def __init__(self, projection: str, key: tuple[object, ...]) -> None:
        self.projection = projection
        self.key = key
        shown = " ".join(str(part) for part in key)
        super().__init__(f"no {projection} read model for {shown}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.projection, self.key))


def _rebuild_invalid(reason: str, where: str, field: str) -> InvalidEventError:
    return InvalidEventError(reason, where=where, field=field)
