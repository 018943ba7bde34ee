"""The database wakes the workers when a request can run (migrations/0014): a request
queued while none waits on its chain, a resume or retry, a top-up for requests paused
for credits. Behind a queued request no wake-up is sent (it would not start earlier,
and a NOTIFY serializes commits)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from indexer.db.pool import connect
from indexer.worker import REQUESTS_CHANNEL
from tests.support.factories import make_backfill, make_subscription, make_workspace


@pytest.fixture
async def heard(database_url: str) -> AsyncIterator[list[str]]:
    """The payloads a LISTENing worker receives."""
    payloads: list[str] = []
    listener = await connect(database_url)
    await listener.add_listener(REQUESTS_CHANNEL, lambda *args: payloads.append(args[3]))
    try:
        yield payloads
    finally:
        await listener.close()


async def settle() -> None:
    await asyncio.sleep(0.3)  # notifications arrive after the commit, asynchronously


async def status_of(conn: asyncpg.Connection, request: uuid.UUID, status: str) -> None:
    await conn.execute("UPDATE backfill_requests SET status = $2 WHERE id = $1", request, status)


async def test_the_first_request_waiting_on_a_chain_wakes_the_workers(
    conn: asyncpg.Connection, heard: list[str]
) -> None:
    workspace = await make_workspace(conn)
    on_1 = await make_subscription(conn, workspace, chain_id=1)
    on_5 = await make_subscription(conn, workspace, chain_id=5)

    first = await make_backfill(conn, on_1)
    await settle()
    assert heard == ["1"]

    await make_backfill(conn, on_1)  # behind `first`, still queued: no wake-up
    await make_backfill(conn, on_5)  # another chain's queue is empty: wake-up
    await settle()
    assert heard == ["1", "5"]

    await conn.execute("UPDATE backfill_requests SET status = 'processing' WHERE chain_id = 1")
    await make_backfill(conn, on_1)  # the others run already; this one waits: wake-up
    await settle()
    assert heard == ["1", "5", "1"]
    del first


async def test_a_resume_a_retry_and_a_top_up_wake_the_workers(
    conn: asyncpg.Connection, heard: list[str]
) -> None:
    workspace = await make_workspace(conn, credits=0)
    subscription = await make_subscription(conn, workspace, chain_id=3)
    paused = await make_backfill(conn, subscription, status="paused")
    failed = await make_backfill(
        conn,
        subscription,
        status="failed",
        error="boom",
        cursor=None,
        finished_at=datetime.now(UTC),
    )
    waiting = await make_backfill(conn, subscription, status="paused_credits")
    await settle()
    assert heard == []  # none of them can run

    await status_of(conn, paused, "processing")  # resumed
    await settle()
    assert heard == ["3"]
    await status_of(conn, paused, "processing")  # no change of status: nothing
    await conn.execute(
        "UPDATE backfill_requests SET status = 'queued', finished_at = NULL, cursor = 100"
        " WHERE id = $1",
        failed,
    )  # retried
    await settle()
    assert heard == ["3", "3"]

    await conn.execute("UPDATE workspaces SET credits = 0 WHERE id = $1", workspace)
    await settle()
    assert heard == ["3", "3"]  # no credits added
    await conn.execute("UPDATE workspaces SET credits = 50 WHERE id = $1", workspace)
    await settle()
    assert heard == ["3", "3", "3"]  # `waiting` can go on
    del waiting
