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
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from indexer.errors import ConfigError

DEFAULT_CU_WEIGHTS: dict[str, int] = {
    "eth_getLogs": 60,
    "eth_getBlockByNumber": 20,
    "eth_blockNumber": 10,
}
DEFAULT_METHOD_CU = 10

PostgresUrl = Annotated[str, Field(pattern=r"^postgres(ql)?://")]

# Where a chain's safe head is, for the chains logfill knows, when its settings give
# neither `confirmations` nor `use_finalized_tag` (README, "Chain defaults"). Scanning
# only up to the safe head is what keeps reorgs out of stored matches, so chains with
# a finality gadget use its "finalized" block; other chains keep 12 confirmations.
KNOWN_CHAINS: dict[int, dict[str, object]] = {
    1: {
        "use_finalized_tag": True
    },  # Ethereum: 2 epochs (~13 min); reverting it slashes 1/3 of stake
    11155111: {"use_finalized_tag": True},  # Sepolia
    17000: {"use_finalized_tag": True},  # Holesky
    560048: {"use_finalized_tag": True},  # Hoodi
    10: {"use_finalized_tag": True},  # OP Mainnet: its batch is in a finalized L1 block
    8453: {"use_finalized_tag": True},  # Base (OP Stack), likewise
    42161: {"use_finalized_tag": True},  # Arbitrum One, likewise
    137: {"use_finalized_tag": True},  # Polygon PoS: milestones finalize in seconds to minutes
    56: {"use_finalized_tag": True},  # BNB Smart Chain: fast finality votes
    31337: {"confirmations": 0},  # anvil, hardhat: one local node, no reorgs
    1337: {"confirmations": 0},  # geth --dev, ganache
}


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
    # Logs the scanner may expect in flight at once (from the logs per block it has
    # seen): a further call goes out only while the calls in flight are expected to
    # hold fewer (one call always may), and a call asks for fewer blocks than
    # max_block_range where the chain is so dense that one answer would bring more.
    max_logs_in_flight: Annotated[int, Field(ge=1)] = 15_000
    # Matches one commit may find at most (its logs times the subscriptions served): a
    # bigger answer is committed in whole-block parts, so what is matched, staged and
    # written at once stays bounded whatever the call's size or the requests served.
    max_matches_per_commit: Annotated[int, Field(ge=1)] = 10_000
    max_addresses_per_call: Annotated[int, Field(ge=1)] = 1000
    # A window's leader holds the chain this long past its last commit; if it
    # dies, another worker takes over once the lease has run out.
    lease_seconds: Annotated[float, Field(gt=0)] = 30.0
    # eth_getLogs calls ending within this many blocks of the head are verified: the
    # same batch asks for the call's last block, and an answer from a node that has
    # not seen it (null) is not taken as "no logs" but asked again (20 CU more a
    # call). Providers balance calls over nodes, and a node behind answers blocks it
    # has not seen with []. 0: never verify.
    verify_depth_blocks: Annotated[int, Field(ge=0)] = 1000
    # Reorgs deeper than the safe head (docs/architecture.md, "Reorgs"): calls ending
    # within this many blocks below the safe head are verified too, their last
    # block's header recorded, and each window that scans reads the recorded ones
    # again (20 CU a block, one batch). None: twice `confirmations`, at least 64
    # (the blocks since the last finalized one, with the finalized tag). 0: no checks.
    reorg_check_blocks: Annotated[int | None, Field(ge=0)] = None
    # A reorg replacing more blocks than this stops the chain's windows (error log,
    # `logfill_chain_halted`, the requests' `last_transient_error`) until an
    # operator runs `logfill admin chain resume`.
    max_reorg_depth: PositiveInt = 256

    @field_validator("cu_weights")
    @classmethod
    def _fill_default_weights(cls, weights: dict[str, int]) -> dict[str, int]:
        """A partial mapping overrides only the methods it names."""
        return {**DEFAULT_CU_WEIGHTS, **weights}

    def cu_cost(self, method: str) -> int:
        return self.cu_weights.get(method, DEFAULT_METHOD_CU)

    def reorg_zone(self) -> int:
        """How many blocks below the safe head are checked for reorgs (0: none)."""
        if self.reorg_check_blocks is not None:
            return self.reorg_check_blocks
        return max(2 * self.confirmations, 64)

    def verified_depth(self, head: int, safe_head: int | None) -> int:
        """Calls ending within this many blocks of `head` are verified (0: none): near
        the head (`verify_depth_blocks`) and in the reorg check zone."""
        depth = self.verify_depth_blocks
        if self.reorg_zone() and safe_head is not None:
            depth = max(depth, head - safe_head + self.reorg_zone())
        return depth

    def reorg_check_cu(self) -> int:
        """What a window that scans near the safe head usually pays for the reorg check:
        the newest block checked before and the newest recorded since (0: no checks)."""
        return 2 * self.cu_cost("eth_getBlockByNumber") if self.reorg_zone() else 0

    def head_read_cu(self) -> int:
        """What a window pays to read the heads, once per window."""
        cost = self.cu_cost("eth_blockNumber")
        if self.use_finalized_tag:
            cost += self.cu_cost("eth_getBlockByNumber")
        return cost


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
    # Largest request body the API reads (bytes); larger ones answer 413.
    api_max_body_bytes: Annotated[int, Field(ge=1024, le=10 * 1024 * 1024)] = 64 * 1024
    # How long an API process trusts a key it has looked up (a revoked key works
    # for at most this long in a process that saw it recently).
    api_key_cache_seconds: Annotated[float, Field(ge=0)] = 10.0
    # Every this many seconds an API process tells PostgreSQL it is alive and reads how
    # many are; a key's requests per minute are shared out among them.
    api_presence_seconds: Annotated[float, Field(gt=0, le=300)] = 5.0
    # The dashboard (served by `logfill api` and `logfill run` at /dashboard): how long
    # a sign-in lasts, and whether its cookie is marked Secure ("auto": when the
    # request came over https, as aiohttp sees it; "always" behind a TLS proxy).
    dashboard_enabled: bool = True
    dashboard_session_seconds: Annotated[int, Field(ge=60, le=30 * 86400)] = 12 * 3600
    dashboard_secure_cookies: Literal["auto", "always", "never"] = "auto"
    # How long a rotated-out webhook secret keeps signing deliveries alongside the new one.
    webhook_secret_grace_seconds: Annotated[int, Field(ge=0)] = 86400
    maintenance_interval_seconds: Annotated[float, Field(gt=0)] = 600.0
    # The chain's log cache (docs/architecture.md): a fragment's blocks neither read
    # nor extended for this many days are forgotten by maintenance.
    log_cache_days: Annotated[float, Field(gt=0)] = 30.0

    # Backfill matches per webhook delivery (one outbox row, one POST).
    webhook_max_events_per_delivery: Annotated[int, Field(ge=1, le=10000)] = 100
    # Largest webhook body (bytes): a batch that would be larger is split in several
    # deliveries; one event larger than this still goes out, alone.
    webhook_max_body_bytes: Annotated[int, Field(ge=1024)] = 256 * 1024
    # Seconds before each attempt; the first attempt goes out as soon as the outbox row
    # is committed, so the first entry must be 0. Its length is the number of attempts;
    # after the last one fails the delivery is dead. Svix's schedule with two short
    # early retries (1 s, 30 s): a receiver's one-off failure costs seconds, not the
    # 5 minutes of the next step, while a receiver that is down still gets the long
    # tail (dead about 27.6 h after the first attempt). Env: "0,1,5,30,300,...".
    webhook_retry_schedule: Annotated[tuple[float, ...], NoDecode] = Field(
        default=(0, 1, 5, 30, 300, 1800, 7200, 18000, 36000, 36000)
    )
    # Each retry delay is scaled by a random factor in [1 - jitter, 1 + jitter] so that
    # deliveries failed together do not come back together.
    webhook_retry_jitter: Annotated[float, Field(ge=0, le=1)] = 0.2
    # Longest Retry-After (429/503) honoured; it can push a retry later, never earlier.
    webhook_max_retry_after_seconds: Annotated[float, Field(ge=0)] = 36000.0
    webhook_connect_timeout_seconds: Annotated[float, Field(gt=0)] = 5.0
    # Wall time of one attempt: connect, send, and reading the (capped) answer.
    webhook_timeout_seconds: Annotated[float, Field(gt=0)] = 15.0
    # A claimed delivery is this worker's for this long; a dead worker's deliveries are
    # sent again once it has run out. Must outlast an attempt.
    webhook_lease_seconds: Annotated[float, Field(gt=0)] = 60.0
    # Subscriptions with webhook_ordering "strict": how many of its first pending
    # deliveries may be in flight at once; 1 keeps them in block order.
    webhook_concurrency_per_subscription: Annotated[int, Field(ge=1, le=100)] = 1
    # Subscriptions with webhook_ordering "independent" (the default): deliveries of
    # one subscription in flight at once, all workers together. A bound, so that one
    # subscription's backlog neither floods its receiver nor takes every slot.
    webhook_max_in_flight_per_subscription: Annotated[int, Field(ge=1, le=100)] = 8
    # Deliveries in flight at once in one worker, all subscriptions together.
    webhook_max_in_flight: Annotated[int, Field(ge=1, le=1000)] = 32
    # Seconds between outbox polls when there is nothing to send.
    webhook_poll_seconds: Annotated[float, Field(gt=0)] = 1.0
    # Local development, the demo and tests only: allow http:// and loopback/private
    # targets (cloud metadata addresses stay refused).
    webhook_allow_private: bool = False

    @field_validator("chains")
    @classmethod
    def _known_chain_defaults(cls, chains: dict[int, ChainSettings]) -> dict[int, ChainSettings]:
        """A known chain whose settings say nothing of its safe head gets its default."""
        return {
            chain_id: chain.model_copy(update=KNOWN_CHAINS[chain_id])
            if chain_id in KNOWN_CHAINS
            and not {"confirmations", "use_finalized_tag"} & chain.model_fields_set
            else chain
            for chain_id, chain in chains.items()
        }

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _parse_retry_schedule(cls, value: object) -> object:
        """Operators write the schedule as "0,5,300"; JSON lists work too."""
        if isinstance(value, str):
            text = value.strip().strip("[]")
            return tuple(float(part) for part in text.split(",") if part.strip())
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _check_retry_schedule(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or value[0] != 0 or any(delay < 0 for delay in value):
            raise ValueError("must be delays in seconds, >= 0, starting with 0")
        return value

    @field_validator("webhook_lease_seconds")
    @classmethod
    def _lease_outlasts_attempt(cls, value: float, info: ValidationInfo) -> float:
        """A lease that ran out mid-attempt would let a second worker send it too."""
        timeout = info.data.get("webhook_timeout_seconds")
        if timeout is not None and value <= timeout:
            raise ValueError(f"must be longer than LOGFILL_WEBHOOK_TIMEOUT_SECONDS ({timeout})")
        return value

    # `logfill worker` serves Prometheus metrics here (0: not served). `logfill
    # run` serves them on the API's /metrics instead. A worker that finds the port
    # taken (a second worker on the host) warns and runs without serving metrics.
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
