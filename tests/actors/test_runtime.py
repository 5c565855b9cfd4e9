"""Starting a local Ray keeps it on loopback; checked without starting one."""

from __future__ import annotations

import os
import subprocess
import sys

# Calls ensure_ray with ray.init replaced, and prints whether Ray would have
# been told to listen beyond loopback when ray.init was called.
PROBE = """
{first_import}
import ray
import ray._private.ray_constants as constants
from unittest import mock

from actors import ensure_ray
from engine import ConfigurationError, Settings

seen = []
def pretend_init(*args, **kwargs):
    seen.append("beyond-loopback" if constants.ENABLE_RAY_CLUSTER else "loopback-only")

with mock.patch.object(ray, "init", pretend_init), \\
        mock.patch.object(ray, "is_initialized", lambda: False):
    try:
        ensure_ray(Settings())
    except ConfigurationError as error:
        seen.append("refused: " + str(error))
print(seen)
"""


def probe(first_import: str) -> str:
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_ADDRESS")
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(first_import=first_import)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout.strip()


def test_a_local_ray_started_by_the_engine_listens_on_loopback_only() -> None:
    assert probe("import actors") == "['loopback-only']"


def test_a_ray_imported_before_the_engine_is_refused_rather_than_exposed() -> None:
    seen = probe("import ray")

    assert seen.startswith("['refused: ")
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0" in seen
    assert "beyond-loopback" not in seen
