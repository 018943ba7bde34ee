"""Request and response models of the v1 API (pydantic v2).

Request models validate JSON strictly (no "1" for 1, no "true" for true) and
refuse unknown fields, so a typo is a 422 rather than a silently ignored
option. Their JSON Schema is what `/openapi.json` publishes, so the document
and the validation are one thing.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from eth_utils.address import is_checksum_address, to_checksum_address
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
)
from yarl import URL

from indexer.domain import BackfillStatus, DeliveryStatus, Order
from indexer.pagination import DEFAULT_LIMIT, MAX_LIMIT
from indexer.subscriptions import WebhookOrdering

MAX_BLOCK = 2**63 - 1
_HEX_BLOCK = re.compile(r"^0x[0-9a-fA-F]{1,15}$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_TOPIC = re.compile(r"^0x[0-9a-fA-F]{64}$")
# RFC 3986 characters only: international domain names are given in punycode.
_URL = re.compile(r"^https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+$")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
MAX_ADDRESSES = 10000
MAX_EVENTS = 50


def _block_number(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= MAX_BLOCK:
            raise ValueError(f"a block number is between 0 and {MAX_BLOCK}")
        return value
    if isinstance(value, str) and _HEX_BLOCK.match(value):
        return int(value, 16)
    raise ValueError("a block number is a non-negative integer or a 0x hex string")


def _to_block(value: Any) -> int | str:
    return value if value in ("safe", "follow") else _block_number(value)


_BLOCK_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"type": "integer", "minimum": 0, "maximum": MAX_BLOCK},
        {"type": "string", "pattern": _HEX_BLOCK.pattern},
    ]
}
BlockNumber = Annotated[int, PlainValidator(_block_number), WithJsonSchema(_BLOCK_SCHEMA)]
ToBlock = Annotated[
    int | Literal["safe", "follow"],
    PlainValidator(_to_block),
    WithJsonSchema(
        {"oneOf": [*_BLOCK_SCHEMA["oneOf"], {"type": "string", "enum": ["safe", "follow"]}]}
    ),
]


def _address(value: Any) -> str:
    """0x + 40 hex; mixed case must be a valid EIP-55 checksum. Returned checksummed."""
    if not isinstance(value, str) or not _ADDRESS.match(value):
        raise ValueError("an address is 0x followed by 40 hex digits")
    body = value[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise ValueError("mixed-case address with a wrong EIP-55 checksum")
    return to_checksum_address(value)


def _topic(value: Any) -> str:
    if not isinstance(value, str) or not _TOPIC.match(value):
        raise ValueError("a topic is 0x followed by 64 hex digits")
    return value.lower()


def _topic_position(value: Any) -> list[str] | None:
    """null (any), one topic, or a non-empty OR-list of topics; stored as null or a list."""
    if value is None:
        return None
    if isinstance(value, list):
        if not 1 <= len(value) <= 100:
            raise ValueError("an OR-list holds 1 to 100 topics")
        return sorted({_topic(item) for item in value})
    return [_topic(value)]


def _webhook_url(value: Any) -> str:
    """An absolute http(s) URL with a host, no credentials and no fragment."""
    if not isinstance(value, str) or not 1 <= len(value) <= 2048:
        raise ValueError("a webhook URL is a string of at most 2048 characters")
    if not _URL.match(value) or _BAD_ESCAPE.search(value):
        raise ValueError(
            "the webhook URL must be an absolute http(s) URL of RFC 3986 characters "
            "(international domain names in punycode)"
        )
    try:
        url = URL(value)
    except (ValueError, TypeError):
        raise ValueError("not a valid URL") from None
    if url.scheme not in ("http", "https") or not url.host or not value.startswith(url.scheme):
        raise ValueError("the webhook URL must be an absolute http:// or https:// URL")
    if url.user is not None or url.password is not None:
        raise ValueError("the webhook URL must not carry credentials; deliveries are signed")
    if url.fragment:
        raise ValueError("the webhook URL must not have a #fragment")
    return str(url)


_TOPIC_SCHEMA = {"type": "string", "pattern": _TOPIC.pattern}
Address = Annotated[
    str,
    PlainValidator(_address),
    WithJsonSchema({"type": "string", "pattern": _ADDRESS.pattern}),
]
TopicPosition = Annotated[
    list[str] | None,
    PlainValidator(_topic_position),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "null"},
                _TOPIC_SCHEMA,
                {"type": "array", "items": _TOPIC_SCHEMA, "minItems": 1, "maxItems": 100},
            ]
        }
    ),
]
WebhookUrl = Annotated[
    str,
    PlainValidator(_webhook_url),
    WithJsonSchema({"type": "string", "format": "uri", "pattern": _URL.pattern, "maxLength": 2048}),
]
# PostgreSQL text and jsonb cannot hold U+0000.
_NO_NUL = r"^[^\x00]*$"
EventSignature = Annotated[str, StringConstraints(min_length=1, max_length=1000, pattern=_NO_NUL)]
Name = Annotated[str, StringConstraints(max_length=200, pattern=_NO_NUL)]
LabelKey = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=_NO_NUL)]
LabelValue = Annotated[str, StringConstraints(max_length=500, pattern=_NO_NUL)]


class RequestModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


# --- requests ------------------------------------------------------------------------


class WorkspacePatch(RequestModel):
    backfill_webhooks: bool | None = None


_WEBHOOK_ORDERING = (
    "independent (default): each delivery is sent and retried on its own, several at once, "
    "so a failing one holds back nothing; order events by block_number and log_index. "
    "strict: one delivery at a time in block order; a failing one holds back the later ones."
)


class SubscriptionCreate(RequestModel):
    chain_id: Annotated[int, Field(gt=0, le=MAX_BLOCK)]
    name: Name | None = None
    addresses: Annotated[list[Address], Field(max_length=MAX_ADDRESSES)] = []
    topics: Annotated[list[TopicPosition], Field(max_length=4)] = []
    events: Annotated[list[EventSignature], Field(max_length=MAX_EVENTS)] = []
    webhook_url: WebhookUrl | None = None
    webhook_ordering: WebhookOrdering = Field("independent", description=_WEBHOOK_ORDERING)
    stored_events: bool = True


class SubscriptionPatch(RequestModel):
    """Fields given replace the stored ones; `null` clears the name or the webhook."""

    name: Name | None = None
    addresses: Annotated[list[Address], Field(max_length=MAX_ADDRESSES)] | None = None
    topics: Annotated[list[TopicPosition], Field(max_length=4)] | None = None
    events: Annotated[list[EventSignature], Field(max_length=MAX_EVENTS)] | None = None
    webhook_url: WebhookUrl | None = None
    webhook_ordering: WebhookOrdering | None = Field(None, description=_WEBHOOK_ORDERING)
    stored_events: bool | None = None


class BackfillCreate(RequestModel):
    subscription_id: uuid.UUID
    from_block: BlockNumber | None = None
    to_block: ToBlock | None = None
    labels: Annotated[dict[LabelKey, LabelValue], Field(max_length=50)] = {}
    order: Order = "asc"
    rescan: bool = False
    redeliver: bool = False
    dry_run: bool = False


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    after: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None


class BackfillPageQuery(PageQuery):
    status: BackfillStatus | None = None


class DeliveryPageQuery(PageQuery):
    status: DeliveryStatus | None = None


class EventPageQuery(PageQuery):
    """Block bounds of an event listing; `limit` sizes JSON pages, an export streams all."""

    from_block: Annotated[int, Field(ge=0, le=MAX_BLOCK)] | None = None
    to_block: Annotated[int, Field(ge=0, le=MAX_BLOCK)] | None = None


# --- responses -----------------------------------------------------------------------


class Workspace(BaseModel):
    id: uuid.UUID
    name: str
    plan: str
    backfill_enabled: bool
    max_backfill_blocks: int | None
    api_requests_per_minute: int
    credits: int
    backfill_webhooks: bool


class Subscription(BaseModel):
    id: uuid.UUID
    chain_id: int
    name: str | None
    addresses: list[str]
    topics: list[list[str] | None]
    events: list[str]
    webhook_url: str | None
    webhook_disabled_at: datetime | None
    webhook_disabled_reason: str | None
    webhook_ordering: WebhookOrdering = Field(description=_WEBHOOK_ORDERING)
    stored_events: bool
    created_at: datetime
    updated_at: datetime


class SubscriptionWithSecret(Subscription):
    """`webhook_secret` is shown when it is created (here) and never again."""

    webhook_secret: str | None


class SubscriptionList(BaseModel):
    items: list[Subscription]
    next: str | None


class Backfill(BaseModel):
    id: uuid.UUID
    subscription_id: uuid.UUID
    chain_id: int
    status: BackfillStatus
    from_block: int
    to_block: int
    order: Order
    cursor: int | None = Field(description="The next block to scan; null once terminal.")
    follow: bool = Field(
        description="Follows the chain: after `to_block` (the safe head so far) it keeps "
        "scanning new safe blocks until cancelled or paused; `following` once caught up."
    )
    lag_blocks: int | None = Field(
        description="A follow request's safe blocks not scanned yet (null otherwise)."
    )
    lag_seconds: float | None = Field(
        description="`lag_blocks` at the chain's seconds per block (null until known)."
    )
    progress: float = Field(ge=0, le=1)
    blocks_scanned: int
    blocks_total: int
    matches: int
    new_matches: int
    duplicate_matches: int
    matches_removed: int = Field(
        description="Its stored matches a reorg below the safe head orphaned: removed "
        "from the events, refunded (a `reorg_refund` ledger line) and announced with a "
        "`backfill.matches.removed` webhook; the blocks were scanned again."
    )
    credits_charged: int
    cu_spent: int
    windows: int
    rescan: bool
    redeliver: bool
    labels: dict[str, str]
    estimated_start_at: datetime | None = Field(
        description="When its first window is expected (queued), or was (processing); "
        "null when it cannot run (paused, blocked, terminal)."
    )
    estimated_finish_at: datetime | None = Field(
        description="When it is expected to finish, refreshed by every window; "
        "null unless queued or processing."
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    error: str | None = Field(description="Why it failed (status failed).")
    last_transient_error: str | None = Field(
        description="Provider trouble holding it back (retried by the next window); "
        "cleared once it makes progress."
    )
    last_transient_error_at: datetime | None
    blocked_reason: str | None = Field(
        description="Why it is blocked: its plan no longer includes backfill, or its "
        "subscription stores no events; it goes on by itself once that holds again."
    )


class BackfillList(BaseModel):
    items: list[Backfill]
    next: str | None


class DryRunResult(BaseModel):
    dry_run: Literal[True] = True
    blocks: int
    already_covered_blocks: int
    cached_blocks: int = Field(
        description="Blocks left to scan that the chain's log cache already holds for "
        "this filter: read from the database, at no CU."
    )
    estimated_calls: int
    estimated_cu: int = Field(
        description="At most what the request will spend: its eth_getLogs calls and a head "
        "read per window. A window that follows another within its tick (a request "
        "started as soon as it was queued) uses the heads that tick read, at no CU."
    )
    estimated_windows: int
    estimated_start_at: datetime
    estimated_finish_at: datetime
    following_cu_per_hour: int | None = Field(
        None,
        description="A follow request (`to_block: follow`): the CU an hour of following "
        "costs after the blocks above, at the chain's recent pace of blocks and logs "
        "(null until a worker has seen the chain move).",
    )


class Decoded(BaseModel):
    event: str
    args: dict[str, Any]


class WebhookEvent(BaseModel):
    """One event of a webhook body: a stored event without its listing fields."""

    id: str = Field(description="Stable: the same for the same log (chain, block hash, index).")
    block_number: int
    block_hash: str
    transaction_hash: str
    transaction_index: int
    log_index: int
    address: str
    topics: list[str]
    data: str
    decoded: Decoded | None = None


class Event(WebhookEvent):
    """A stored event: as webhooks carry it, with the request it was found under."""

    backfill_id: uuid.UUID | None
    stored_at: datetime


class WebhookBody(BaseModel):
    """What logfill POSTs to a subscription's `webhook_url` (Standard Webhooks signed)."""

    type: Literal["backfill.matches", "backfill.matches.removed"] = Field(
        description="`backfill.matches`: new matches. `backfill.matches.removed`: matches "
        "delivered before whose blocks a reorg below the safe head replaced; the events "
        "are the ones delivered then (same ids): delete them."
    )
    subscription_id: uuid.UUID
    backfill_id: uuid.UUID | None = Field(
        description="The request the matches were found under (null: none)."
    )
    chain_id: int
    events: list[WebhookEvent] = Field(description="In block order, at most 100 a delivery.")


class EventList(BaseModel):
    items: list[Event]
    next: str | None


class RemovedEvent(Event):
    reorg_id: int = Field(description="The repair that removed it (one per reorg found).")
    removed_at: datetime


class RemovedEventList(BaseModel):
    items: list[RemovedEvent]
    next: str | None


class Delivery(BaseModel):
    id: uuid.UUID
    subscription_id: uuid.UUID
    backfill_id: uuid.UUID | None
    status: DeliveryStatus
    event_count: int
    first_block: int
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


class DeliveryList(BaseModel):
    items: list[Delivery]
    next: str | None


class FieldProblem(BaseModel):
    pointer: str | None = Field(None, description="JSON pointer into the request body")
    parameter: str | None = Field(None, description="name of the query parameter")
    header: str | None = Field(None, description="name of the request header")
    detail: str


class Problem(BaseModel):
    """RFC 9457 problem details; extension members may follow."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldProblem] | None = None


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    schema_version: str | None
