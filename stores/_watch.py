"""A wake-up for event stores that cannot notify: a short poll of the head."""

from __future__ import annotations

import time
from collections.abc import Callable

POLL_SECONDS = 0.05


class HeadPoll:
    """Watches a store's head, reading it every :data:`POLL_SECONDS`.

    ``head`` returns the store's greatest visible sequence number.
    """

    def __init__(self, head: Callable[[], int]) -> None:
        self._head = head
        self._seen = 0

    def listen(self) -> None:
        """Remember the head now; later waits report any growth past it."""
        self._seen = self._head()

    def wait(self, timeout: float) -> bool:
        """Return ``True`` as soon as the head has grown since the last call
        (or :meth:`listen`), ``False`` after ``timeout`` seconds without."""
        deadline = time.monotonic() + timeout
        while True:
            head = self._head()
            if head > self._seen:
                self._seen = head
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(POLL_SECONDS, remaining))
