"""The command line the live examples share: two store URLs, or temporary
SQLite files."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path


def run_on_stores(main: Callable[[str, str], bool], description: str) -> int:
    """Call ``main(event_store, store)`` with the URLs given by
    ``--event-store`` and ``--store``, else with SQLite files in a temporary
    folder; the exit status: 0 when ``main`` returned ``True``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--event-store", help="event store URL (default: temporary)")
    parser.add_argument("--store", help="snapshot store URL (default: temporary)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as made:
        folder = Path(made)
        ok = main(
            options.event_store or f"sqlite:///{folder / 'events.db'}",
            options.store or f"sqlite:///{folder / 'models.db'}",
        )
    return 0 if ok else 1
