"""The Ray layer of Projectionist: dispatcher, shards, and the embeddable
engine that composes them with the stores."""

import os

# Ray decides at import whether a local Ray may listen beyond loopback;
# set before anything here imports it. See _runtime.ensure_ray.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from ._dispatcher import Dispatcher
from ._runtime import ensure_ray
from ._service import Projectionist, registry_from_settings, wait_for
from ._shard import ProjectionShard

__all__ = [
    "Dispatcher",
    "ProjectionShard",
    "Projectionist",
    "ensure_ray",
    "registry_from_settings",
    "wait_for",
]
