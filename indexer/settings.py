"""Settings from the environment (prefix LOGFILL_) and an optional `.env` file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import platformdirs
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from indexer.errors import ConfigError

DEFAULT_CU_WEIGHTS: dict[str, int] = {
    "eth_getLogs": 60,
    "eth_getBlockByNumber": 20,
    "eth_blockNumber": 10,
}
DEFAULT_METHOD_CU = 10

PostgresUrl = Annotated[str, Field(pattern=r"^postgres(ql)?://")]


class ChainSettings(BaseModel):
    """How one chain is reached and how much a window may spend on it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rpc_url: AnyHttpUrl
    max_block_range: PositiveInt = 2000
    confirmations: Annotated[int, Field(ge=0)] = 12
    use_finalized_tag: bool = False
    cu_weights: dict[str, PositiveInt] = Field(default_factory=lambda: dict(DEFAULT_CU_WEIGHTS))
    window_budget_cu: PositiveInt = 12000
    tick_seconds: Annotated[float, Field(gt=0)] = 5.0
    request_timeout_seconds: Annotated[float, Field(gt=0)] = 30.0
    connect_timeout_seconds: Annotated[float, Field(gt=0)] = 5.0
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 5
    max_retry_after_seconds: Annotated[float, Field(ge=0)] = 30.0
    max_calls_in_flight: Annotated[int, Field(ge=1, le=64)] = 4
    max_addresses_per_call: Annotated[int, Field(ge=1)] = 1000
    # A window's leader holds the chain this long past its last commit; if it
    # dies, another worker takes over once the lease has run out.
    lease_seconds: Annotated[float, Field(gt=0)] = 30.0

    @field_validator("cu_weights")
    @classmethod
    def _fill_default_weights(cls, weights: dict[str, int]) -> dict[str, int]:
        """A partial mapping overrides only the methods it names."""
        return {**DEFAULT_CU_WEIGHTS, **weights}

    def cu_cost(self, method: str) -> int:
        return self.cu_weights.get(method, DEFAULT_METHOD_CU)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LOGFILL_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    database_url: PostgresUrl | None = None
    data_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir("logfill")))
    db_pool_min_size: Annotated[int, Field(ge=0)] = 1
    db_pool_max_size: PositiveInt = 10
    db_connect_timeout_seconds: Annotated[float, Field(gt=0)] = 10.0

    api_host: str = "127.0.0.1"
    api_port: Annotated[int, Field(ge=0, le=65535)] = 8080

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"

    chains: dict[PositiveInt, ChainSettings] = Field(default_factory=dict)

    idempotency_ttl_seconds: PositiveInt = 86400
    maintenance_interval_seconds: Annotated[float, Field(gt=0)] = 600.0

    # Backfill matches per webhook delivery (one outbox row, one POST).
    webhook_max_events_per_delivery: Annotated[int, Field(ge=1, le=10000)] = 100
    # `logfill worker` serves Prometheus metrics here (0: not served). `logfill
    # run` serves them on the API's /metrics instead.
    worker_metrics_port: Annotated[int, Field(ge=0, le=65535)] = 9101
    # How this worker is named in window leases and the windows audit trail
    # (default: hostname:pid:random). Must differ between live workers.
    worker_name: Annotated[str, Field(min_length=1, max_length=200)] | None = None

    @field_validator("data_dir")
    @classmethod
    def _expand_data_dir(cls, value: Path) -> Path:
        return value.expanduser()


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning any validation problem into one clear line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None
    except SettingsError as exc:
        raise ConfigError(f"invalid settings: {exc}") from None


def describe_validation_error(exc: ValidationError) -> str:
    """Name each bad setting as the operator spells it (LOGFILL_CHAINS[1].rpc_url)."""
    problems = []
    for error in exc.errors():
        location = list(error["loc"])
        name = f"LOGFILL_{str(location[0]).upper()}" if location else "LOGFILL_*"
        for part in location[1:]:
            name += f"[{part}]" if isinstance(part, int) or str(part).isdigit() else f".{part}"
        problems.append(f"invalid setting {name}: {error['msg']}")
    return "; ".join(problems)
