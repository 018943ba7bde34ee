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
    """A dead delivery goes back to pending from attempt one; 409 for any other status."""
    async with conn.transaction():
        row: asyncpg.Record | None = await queries.fetchrow(
            conn, "retry_delivery", delivery_id=delivery_id, workspace_id=workspace_id
        )
        if row is not None:
            return row
        status = await queries.fetchval(
            conn, "delivery_status", delivery_id=delivery_id, workspace_id=workspace_id
        )
        if status is None:
            raise NotFound(f"delivery {delivery_id} not found")
        raise Conflict(
            f"cannot retry a delivery that is {status}; only dead deliveries can be retried",
            "invalid-transition",
            delivery_status=status,
        )
