"""A workspace as its owner sees and changes it through the API."""

from __future__ import annotations

import uuid

import asyncpg

from indexer.db import Connection
from indexer.errors import NotFound
from indexer.queries import QUERIES


async def get_workspace(conn: Connection, workspace_id: uuid.UUID) -> asyncpg.Record:
    row: asyncpg.Record | None = await conn.fetchrow(QUERIES["get_workspace"], workspace_id)
    if row is None:
        raise NotFound(f"workspace {workspace_id} not found")
    return row


async def update_workspace(
    conn: Connection, workspace_id: uuid.UUID, *, backfill_webhooks: bool | None
) -> asyncpg.Record:
    """Change the owner's settings; fields left None keep their value."""
    if backfill_webhooks is not None:
        await conn.execute(QUERIES["set_backfill_webhooks"], workspace_id, backfill_webhooks)
    return await get_workspace(conn, workspace_id)
