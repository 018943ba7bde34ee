"""Customers' subscriptions: filters, webhook endpoint and secret, stored events.

The storage format is the one the window reads (`load_window_subscriptions`):
addresses as bytea[], topics as a jsonb positional array of null | [lowercase
hex], event_abis as ABI event entries. Event signatures set topic0, so the
filter a customer sees in `topics` is the one the window scans with.

A webhook URL is checked when it is set (`WebhookTargets`), here rather than in
the HTTP handler, so every caller (the API, a dashboard) refuses the same URLs.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple

import asyncpg

from indexer.db import queries
from indexer.db.pool import Connection
from indexer.errors import NotFound
from indexer.event_signatures import ParsedEvent, parse_event_signature
from indexer.pagination import decode_cursor, encode_cursor
from indexer.refusals import Conflict, FieldError, InvalidFields
from indexer.settings import Settings
from indexer.webhooks.ssrf import (
    SET_TIME_DNS_TIMEOUT_SECONDS,
    Resolver,
    WebhookRefused,
    check_target,
    system_resolve,
)

WEBHOOK_SECRET_PREFIX = "whsec_"
Topics = list[list[str] | None]
# How a subscription's deliveries go out: "independent" (each sent and retried on
# its own, several at once) or "strict" (one at a time in block order; a failing
# delivery holds back the later ones). See claim_deliveries in sql/webhooks.sql.
WebhookOrdering = Literal["independent", "strict"]
DEFAULT_WEBHOOK_ORDERING: WebhookOrdering = "independent"


def generate_webhook_secret() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of 24 random bytes."""
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


@dataclass(frozen=True)
class SubscriptionSpec:
    """Validated fields of a create; `None` in a patch means "leave as is"."""

    chain_id: int | None = None
    name: str | None = None
    addresses: Sequence[str] | None = None  # checksummed 0x hex
    topics: Topics | None = None  # lowercase 0x hex, positional
    events: Sequence[str] | None = None
    webhook_url: str | None = None
    webhook_ordering: WebhookOrdering | None = None
    stored_events: bool | None = None
    fields_set: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class WebhookTargets:
    """How a webhook URL is checked when it is set: the send-time SSRF rules, ahead of time.

    The resolver is a field so that tests (and callers without DNS) can answer for
    it; the default is the system's, within a short timeout because the customer
    is waiting for the answer.
    """

    allow_private: bool
    resolve: Resolver = system_resolve
    dns_timeout: float = SET_TIME_DNS_TIMEOUT_SECONDS

    @classmethod
    def from_settings(
        cls, settings: Settings, resolve: Resolver = system_resolve
    ) -> WebhookTargets:
        return cls(settings.webhook_allow_private, resolve)

    async def check(self, url: str) -> None:
        """422 naming `/webhook_url` when no delivery to `url` could be sent."""
        try:
            await check_target(
                url,
                allow_private=self.allow_private,
                resolve=self.resolve,
                dns_timeout=self.dns_timeout,
            )
        except WebhookRefused as exc:
            detail = str(exc).removeprefix("refused: ")
            raise InvalidFields.one("/webhook_url", detail) from None


@dataclass(frozen=True)
class Filter:
    """What the window stores for a subscription's filter."""

    addresses: list[bytes]
    topics: Topics
    events: list[str]
    event_abis: list[dict[str, Any]]

    def columns(self) -> dict[str, Any]:
        """The filter's columns, by the names the queries take."""
        return {
            "addresses": self.addresses,
            "topics": self.topics,
            "events": self.events,
            "event_abis": self.event_abis,
        }


def not_found(subscription_id: uuid.UUID) -> NotFound:
    return NotFound(f"subscription {subscription_id} not found")


async def require_subscription(
    conn: Connection, workspace_id: uuid.UUID, subscription_id: uuid.UUID
) -> asyncpg.Record:
    """The workspace's subscription; another workspace's answers like an unknown one."""
    owner: asyncpg.Record | None = await queries.fetchrow(
        conn, "subscription_exists", subscription_id=subscription_id, workspace_id=workspace_id
    )
    if owner is None:
        raise not_found(subscription_id)
    return owner


def build_filter(addresses: Sequence[str], topics: Topics, events: Sequence[str]) -> Filter:
    """Topics with topic0 set from the events; 422 naming each bad field."""
    parsed: list[ParsedEvent] = []
    errors: list[FieldError] = []
    for position, signature in enumerate(events):
        try:
            parsed.append(parse_event_signature(signature))
        except ValueError as exc:
            errors.append(FieldError(f"/events/{position}", str(exc)))
    if parsed and topics and topics[0] is not None:
        errors.append(FieldError("/topics/0", "events set topic0: leave topics[0] null"))
    if errors:
        raise InvalidFields(errors)
    merged: Topics = list(topics)
    if parsed:
        topic0 = sorted({event.topic0 for event in parsed})
        merged = [topic0, *merged[1:]]
    while merged and merged[-1] is None:
        merged.pop()
    unique = {event.signature: event for event in parsed}
    return Filter(
        [bytes.fromhex(a[2:]) for a in dict.fromkeys(a.lower() for a in addresses)],
        merged,
        list(unique),
        [event.abi for event in unique.values()],
    )


def _check_chain(chain_id: int, chains: Collection[int]) -> None:
    if chain_id not in chains:
        known = ", ".join(str(c) for c in sorted(chains)) or "none"
        raise InvalidFields.one(
            "/chain_id", f"chain {chain_id} is not configured here (configured: {known})"
        )


async def create_subscription(
    conn: Connection,
    workspace_id: uuid.UUID,
    spec: SubscriptionSpec,
    chains: Collection[int],
    *,
    targets: WebhookTargets,
) -> asyncpg.Record:
    """A new subscription; its webhook URL is checked last (the only check that waits on DNS)."""
    assert spec.chain_id is not None
    _check_chain(spec.chain_id, chains)
    built = build_filter(spec.addresses or (), spec.topics or [], spec.events or ())
    if spec.webhook_url:
        await targets.check(spec.webhook_url)
    secret = generate_webhook_secret() if spec.webhook_url else None
    row: asyncpg.Record | None = await queries.fetchrow(
        conn,
        "insert_subscription",
        workspace_id=workspace_id,
        chain_id=spec.chain_id,
        name=spec.name,
        **built.columns(),
        webhook_url=spec.webhook_url,
        webhook_secret=secret,
        webhook_ordering=spec.webhook_ordering or DEFAULT_WEBHOOK_ORDERING,
        stored_events=True if spec.stored_events is None else spec.stored_events,
    )
    assert row is not None
    return row


async def get_subscription(
    conn: Connection, workspace_id: uuid.UUID, subscription_id: uuid.UUID
) -> asyncpg.Record:
    row: asyncpg.Record | None = await queries.fetchrow(
        conn, "get_subscription", subscription_id=subscription_id, workspace_id=workspace_id
    )
    if row is None:
        raise not_found(subscription_id)
    return row


async def list_subscriptions(
    conn: Connection, workspace_id: uuid.UUID, *, limit: int, after: str | None
) -> tuple[list[asyncpg.Record], str | None]:
    created_at, last_id = None, None
    if after is not None:
        stamp, text_id = decode_cursor(after, "subscriptions", (str, str))
        created_at, last_id = _parse_key(stamp, text_id)
    rows = await queries.fetch(
        conn,
        "list_subscriptions",
        workspace_id=workspace_id,
        after_created_at=created_at,
        after_id=last_id,
        limit=limit + 1,
    )
    page, more = rows[:limit], len(rows) > limit
    cursor = None
    if more:
        last = page[-1]
        cursor = encode_cursor("subscriptions", last["created_at"].isoformat(), str(last["id"]))
    return page, cursor


def _parse_key(stamp: str, text_id: str) -> tuple[datetime, uuid.UUID]:
    try:
        return datetime.fromisoformat(stamp), uuid.UUID(text_id)
    except ValueError:
        raise InvalidFields.one("after", "not a cursor of this list", parameter=True) from None


def _user_topics(row: asyncpg.Record) -> Topics:
    """The topics the customer gave: topic0 is the events' when there are events."""
    topics: Topics = list(row["topics"])
    if row["events"] and topics:
        topics[0] = None
    return topics


class WebhookColumns(NamedTuple):
    """A subscription's webhook columns after a patch (the query's parameter names)."""

    webhook_url: str | None = None
    webhook_secret: str | None = None
    previous_webhook_secret: str | None = None
    previous_secret_expires_at: datetime | None = None
    webhook_disabled_at: datetime | None = None
    webhook_disabled_reason: str | None = None


def _webhook_columns(row: asyncpg.Record, spec: SubscriptionSpec) -> WebhookColumns:
    """The webhook columns after a patch.

    A first URL gets a new secret; another URL keeps the secret; null clears
    both secrets. Setting the URL (even to the same value) re-enables a webhook
    the delivery job had disabled.
    """
    if "webhook_url" not in spec.fields_set:
        return WebhookColumns(*(row[name] for name in WebhookColumns._fields))
    if spec.webhook_url is None:
        return WebhookColumns()
    if row["webhook_secret"] is None:
        return WebhookColumns(spec.webhook_url, generate_webhook_secret())
    return WebhookColumns(
        spec.webhook_url,
        row["webhook_secret"],
        row["previous_webhook_secret"],
        row["previous_secret_expires_at"],
    )


async def update_subscription(
    conn: Connection,
    workspace_id: uuid.UUID,
    subscription_id: uuid.UUID,
    spec: SubscriptionSpec,
    *,
    targets: WebhookTargets,
) -> tuple[asyncpg.Record, bool]:
    """PATCH: absent fields keep their value; a new filter resets coverage.

    Also says whether a new webhook secret was generated (shown in this answer only).
    A webhook URL given is checked before the row is locked: DNS may take a while,
    and nobody else should wait on it.
    """
    if "webhook_url" in spec.fields_set and spec.webhook_url is not None:
        await targets.check(spec.webhook_url)
    async with conn.transaction():
        row = await queries.fetchrow(
            conn, "lock_subscription", subscription_id=subscription_id, workspace_id=workspace_id
        )
        if row is None:
            raise not_found(subscription_id)
        given = spec.fields_set
        events = list(spec.events or []) if "events" in given else list(row["events"])
        topics = list(spec.topics or []) if "topics" in given else _user_topics(row)
        addresses = (
            list(spec.addresses or [])
            if "addresses" in given
            else ["0x" + a.hex() for a in row["addresses"]]
        )
        built = build_filter(addresses, topics, events)
        webhook = _webhook_columns(row, spec)
        updated: asyncpg.Record | None = await queries.fetchrow(
            conn,
            "update_subscription",
            subscription_id=subscription_id,
            workspace_id=workspace_id,
            name=spec.name if "name" in given else row["name"],
            **built.columns(),
            **webhook._asdict(),
            webhook_ordering=spec.webhook_ordering or row["webhook_ordering"],
            stored_events=row["stored_events"]
            if spec.stored_events is None
            else spec.stored_events,
        )
        if (built.addresses, built.topics) != (list(row["addresses"]), list(row["topics"])):
            await queries.execute(
                conn, "reset_subscription_coverage", subscription_id=subscription_id
            )
    assert updated is not None, "the row is locked"
    new_secret = webhook.webhook_secret
    return updated, updated["webhook_secret"] != row["webhook_secret"] and new_secret is not None


async def delete_subscription(
    conn: Connection, workspace_id: uuid.UUID, subscription_id: uuid.UUID
) -> None:
    if (
        await queries.fetchval(
            conn, "delete_subscription", subscription_id=subscription_id, workspace_id=workspace_id
        )
        is None
    ):
        raise not_found(subscription_id)


async def rotate_webhook_secret(
    conn: Connection, workspace_id: uuid.UUID, subscription_id: uuid.UUID, grace_seconds: int
) -> asyncpg.Record:
    """A new secret now; the old one stays valid for the grace period (receivers switch over)."""
    row: asyncpg.Record | None = await queries.fetchrow(
        conn,
        "rotate_webhook_secret",
        subscription_id=subscription_id,
        workspace_id=workspace_id,
        new_secret=generate_webhook_secret(),
        grace_seconds=float(grace_seconds),
    )
    if row is None:
        await get_subscription(conn, workspace_id, subscription_id)  # 404 if not ours
        raise Conflict(
            "subscription has no webhook_url: there is no secret to rotate",
            "no-webhook",
        )
    return row
