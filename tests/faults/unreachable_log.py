"""An event store that is unreachable while a marker file exists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine import EventStoreError
from stores import open_event_store


class UnreachableWhileMarked:
    """Wraps the event store at ``url``: every read raises
    :class:`EventStoreError`, as after the store's own reconnects ran out,
    while the file ``marker`` exists, and notes each refused call in the
    file ``marker`` + ``.refused``, one method name per line."""

    def __init__(self, url: str, marker: str) -> None:
        self.url = url
        self.marker = marker
        self.store: Any = None

    def __reduce__(self) -> tuple[Any, ...]:
        return (UnreachableWhileMarked, (self.url, self.marker))

    def _open(self) -> Any:
        if self.store is None:
            self.store = open_event_store(self.url)
        return self.store

    def _check(self, method: str) -> None:
        if Path(self.marker).exists():
            with open(f"{self.marker}.refused", "a", encoding="utf-8") as notes:
                notes.write(method + "\n")
            raise EventStoreError(f"could not read events at {self.url}: unreachable")

    def read_after(self, after: int, limit: int) -> Any:
        self._check("read_after")
        return self._open().read_after(after, limit)

    def head(self) -> int:
        self._check("head")
        head: int = self._open().head()
        return head

    def __getattr__(self, name: str) -> Any:
        if name in ("url", "marker", "store"):
            raise AttributeError(name)
        return getattr(self._open(), name)
