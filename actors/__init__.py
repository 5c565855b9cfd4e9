"""The Ray layer of Projectionist: dispatcher, shards, and the embeddable
engine that composes them with the stores."""

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
