"""Webhook deliveries as their owner sees them: the history and a manual retry.

The delivery job (`indexer.webhooks`) sends and retries outbox rows; this
module only reads them and puts a dead one back in its queue.
"""

from __future__ import annotations

import uuid

import asyncpg

from indexer.db import queries
from indexer.db.pool import Connection
from indexer.domain import DeliveryStatus
from indexer.errors import NotFound
from indexer.pagination import decode_cursor, encode_cursor
from indexer.refusals import Conflict
from indexer.subscriptions import require_subscription


async def list_deliveries(
    conn: Connection,
    workspace_id: uuid.UUID,
    subscription_id: uuid.UUID,
    *,
    status: DeliveryStatus | None,
    limit: int,
    after: str | None,
) -> tuple[list[asyncpg.Record], str | None]:
    """A subscription's deliveries, newest first."""
    await require_subscription(conn, workspace_id, subscription_id)
    before = decode_cursor(after, "deliveries", (int,))[0] if after is not None else None
    rows = await queries.fetch(
        conn,
        "list_deliveries",
        subscription_id=subscription_id,
        workspace_id=workspace_id,
        status=status,
        before_seq=before,
        limit=limit + 1,
    )
    page = rows[:limit]
    cursor = encode_cursor("deliveries", page[-1]["seq"]) if len(rows) > limit else None
    return page, cursor


async def retry_delivery(
    conn: Connection, workspace_id: uuid.UUID, delivery_id: uuid.UUID
) -> asyncpg.Record:
    """A dead delivery goes back to pending from attempt one.

    Refused (409) when it is not dead, and when its subscription's webhook is
    disabled or removed: the delivery job would mark it dead again at once, so
    the owner is told what to fix instead of seeing a retry that did nothing.
    """
    async with conn.transaction():
        row: asyncpg.Record | None = await queries.fetchrow(
            conn, "retry_delivery", delivery_id=delivery_id, workspace_id=workspace_id
        )
        if row is not None:
            return row
        state = await queries.fetchrow(
            conn, "delivery_retry_state", delivery_id=delivery_id, workspace_id=workspace_id
        )
        if state is None:
            raise NotFound(f"delivery {delivery_id} not found")
        status = state["status"]
        if status != "dead":
            raise Conflict(
                f"cannot retry a delivery that is {status}; only dead deliveries can be retried",
                "invalid-transition",
                delivery_status=status,
            )
        subscription = state["subscription_id"]
        if not state["has_webhook"]:
            raise Conflict(
                f"subscription {subscription} has no webhook URL; set one with "
                f"PATCH /v1/subscriptions/{subscription}, then retry",
                "webhook-disabled",
                delivery_status=status,
                webhook_disabled_reason="the subscription has no webhook URL",
            )
        reason = state["webhook_disabled_reason"] or "disabled"
        raise Conflict(
            f"the webhook of subscription {subscription} is disabled ({reason}); set its "
            f"webhook_url again with PATCH /v1/subscriptions/{subscription} to re-enable it, "
            "then retry",
            "webhook-disabled",
            delivery_status=status,
            webhook_disabled_reason=reason,
        )
