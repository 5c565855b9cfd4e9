"""Starting or joining Ray, kept on loopback when local."""

from __future__ import annotations

import logging
import os
import sys

import ray
from ray._private import ray_constants

from engine import ConfigurationError, Settings

logger = logging.getLogger(__name__)

_LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def ensure_ray(settings: Settings) -> bool:
    """Start a local Ray, or join ``settings.ray_address``; reuse a running one.

    A local Ray binds every port to 127.0.0.1 and keeps Ray's token
    authentication on. Returns ``True`` when this call started Ray, so the
    caller knows to shut it down.
    """
    if ray.is_initialized():
        return False
    if settings.ray_address:
        logger.info("joining the Ray cluster at %s", settings.ray_address)
        ray.init(address=settings.ray_address, logging_level=logging.WARNING)
        return True
    _prepare_local_environment()
    _refuse_open_listeners()
    num_cpus = settings.num_cpus or os.cpu_count() or 1
    logger.info("starting a local Ray with %s CPUs on loopback", num_cpus)
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=True,
    )
    return True


def _refuse_open_listeners() -> None:
    # Ray read the setting when it was imported; too late to change now.
    if getattr(ray_constants, "ENABLE_RAY_CLUSTER", False):
        raise ConfigurationError(
            "Ray was imported before Projectionist could keep a local Ray on "
            f"127.0.0.1; set {_LOOPBACK_ONLY}=0 in the environment, or import "
            "actors before ray"
        )


def _prepare_local_environment() -> None:
    # Ray's workers inherit this environment: loopback-only listeners, and
    # the driver's import path so user projections import in every worker.
    os.environ.setdefault(_LOOPBACK_ONLY, "0")
    paths = [os.getcwd(), *([sys.path[0]] if sys.path and sys.path[0] else [])]
    current = os.environ.get("PYTHONPATH", "")
    merged = os.pathsep.join(dict.fromkeys([*current.split(os.pathsep), *paths]))
    os.environ["PYTHONPATH"] = merged.strip(os.pathsep)
