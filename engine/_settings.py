"""Settings: flags first, then the environment, then defaults.

Environment names of the original system keep working (``READ_MODEL_*``,
``REDIS_READ_MODEL_*``); names of our own start with ``PROJECTIONIST_``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from ._errors import ConfigurationError

DEFAULT_EVENT_STORE = "sqlite:///projectionist-events.db"
DEFAULT_SNAPSHOT_STORE = "sqlite:///projectionist-models.db"


def _env(*names: str) -> Any:
    return AliasChoices(*names)


class Settings(BaseSettings):
    """Every knob of the engine, with its environment name."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore")

    event_store_url: str = Field(
        DEFAULT_EVENT_STORE, validation_alias=_env("EVENT_STORE_URL")
    )
    store_url: str | None = Field(None, validation_alias=_env("READ_MODEL_STORE_URL"))
    store_type: Literal["memory", "redis", "sql"] | None = Field(
        None, validation_alias=_env("READ_MODEL_STORE_TYPE")
    )
    redis_host: str = Field("127.0.0.1", validation_alias=_env("REDIS_READ_MODEL_HOST"))
    redis_port: int = Field(6379, validation_alias=_env("REDIS_READ_MODEL_PORT"))
    redis_db: int = Field(0, ge=0, validation_alias=_env("REDIS_READ_MODEL_DB"))
    redis_ttl: int = Field(0, ge=0, validation_alias=_env("REDIS_READ_MODEL_TTL"))
    batch_size: int = Field(
        20_000, ge=1, validation_alias=_env("READ_MODEL_BATCH_SIZE")
    )
    max_retries: int = Field(5, ge=0, validation_alias=_env("READ_MODEL_MAX_RETRIES"))
    checkpoint_interval: int = Field(
        200_000, ge=1, validation_alias=_env("READ_MODEL_CHECKPOINT_INTERVAL")
    )
    max_unflushed: int = Field(
        1_000_000, ge=1, validation_alias=_env("PROJECTIONIST_MAX_UNFLUSHED_EVENTS")
    )
    flush_patience_seconds: float = Field(
        300.0, gt=0, validation_alias=_env("PROJECTIONIST_FLUSH_PATIENCE_SECONDS")
    )
    flush_interval_ms: int = Field(
        1_000, ge=1, validation_alias=_env("PROJECTIONIST_FLUSH_INTERVAL_MS")
    )
    shards: int = Field(2, ge=1, le=256, validation_alias=_env("PROJECTIONIST_SHARDS"))
    max_in_flight: int = Field(
        4, ge=1, validation_alias=_env("PROJECTIONIST_MAX_IN_FLIGHT")
    )
    poll_interval_ms: int = Field(
        100, ge=1, validation_alias=_env("PROJECTIONIST_POLL_INTERVAL_MS")
    )
    gap_timeout_ms: int = Field(
        10_000, ge=0, validation_alias=_env("PROJECTIONIST_GAP_TIMEOUT_MS")
    )
    lag_threshold_seconds: float = Field(
        30.0, gt=0, validation_alias=_env("PROJECTIONIST_LAG_THRESHOLD_SECONDS")
    )
    num_cpus: int | None = Field(
        None, ge=1, validation_alias=_env("PROJECTIONIST_NUM_CPUS")
    )
    ray_address: str | None = Field(None, validation_alias=_env("RAY_ADDRESS"))
    projections: str = Field("", validation_alias=_env("PROJECTIONIST_PROJECTIONS"))

    @property
    def snapshot_store_url(self) -> str:
        """The snapshot store URL: ``store_url`` when given (a flag or
        READ_MODEL_STORE_URL), else one built from the original settings
        READ_MODEL_STORE_TYPE and REDIS_READ_MODEL_*."""
        if self.store_url:
            return self.store_url
        if self.store_type == "memory":
            return "memory://"
        if self.store_type == "redis":
            return f"redis://{self.redis_host}:{self.redis_port}/{self.redis_db}"
        return DEFAULT_SNAPSHOT_STORE

    @property
    def projection_paths(self) -> list[str]:
        """Extra projections to register, as ``module:attribute`` paths."""
        return [part.strip() for part in self.projections.split(",") if part.strip()]


def load_settings(**flags: Any) -> Settings:
    """Settings from ``flags`` (``None`` means not given), the environment,
    and defaults, in that order."""
    given = {name: value for name, value in flags.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "settings"
        raise ConfigurationError(f"{where}: {first['msg']}") from None
