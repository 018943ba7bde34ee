"""Follow mode on a real anvil that keeps mining: a request scans its range, then keeps
going as the safe head moves, with no gap and no duplicate, until it is cancelled."""

from __future__ import annotations

import asyncio
import threading

import asyncpg
from prometheus_client import generate_latest

from indexer.window.run import WindowReport
from tests.support import anvil as chain
from tests.support.anvil import AnvilNode
from tests.support.factories import make_workspace
from tests.support.window import (
    create_backfill,
    create_subscription,
    keys_of,
    next_window,
    stored_matches,
    window_pool,
    window_settings,
)

CREDITS = 100_000


async def request_row(conn: asyncpg.Connection, request: object) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM backfill_requests WHERE id = $1", request)
    assert row is not None
    return row


async def test_a_follow_request_keeps_up_with_a_mining_chain_until_cancelled(
    fresh_anvil: AnvilNode, conn: asyncpg.Connection, database_url: str
) -> None:
    url = fresh_anvil.url
    address = chain.deploy_emitter(url)
    low, _ = chain.fill_logs(url, address, 60, per_tx=3, seed=1, txs_per_block=1)
    workspace = await make_workspace(conn, credits=CREDITS)
    subscription = await create_subscription(conn, workspace, addresses=[address])
    request = await create_backfill(conn, subscription, low, chain.block_number(url), follow=True)
    settings = window_settings(url, max_block_range=5)

    # A sender keeps emitting transfers (a block each) while windows run.
    stop = threading.Event()

    def keep_mining() -> None:
        n = 0
        while not stop.is_set():
            chain.emit_transfer(url, address, "0x" + "11" * 20, "0x" + "22" * 20, n)
            n += 1
            stop.wait(0.05)

    miner = threading.Thread(target=keep_mining, daemon=True)
    miner.start()
    reports: list[WindowReport] = []
    async with window_pool(database_url) as pool:
        try:
            for _ in range(25):
                reports.append(await next_window(pool, settings))
        finally:
            stop.set()
            await asyncio.to_thread(miner.join)
        head = chain.block_number(url)
        for _ in range(10):  # the chain stands still: catch up with it
            reports.append(await next_window(pool, settings))
            if (await request_row(conn, request))["cursor"] == head + 1:
                break
        row = await request_row(conn, request)
        assert row["status"] == "following" and row["to_block"] == head
        assert row["cursor"] == head + 1 and row["finished_at"] is None
        expected = keys_of(chain.get_logs(url, low, head, address=address))
        assert len(expected) > 60  # the historical part and what came while following
        assert await stored_matches(conn, subscription) == expected
        assert row["new_matches"] == row["credits_charged"] == len(expected)
        assert row["blocks_scanned"] == head - low + 1
        credits = await conn.fetchval("SELECT credits FROM workspaces WHERE id = $1", workspace)
        assert credits == CREDITS - len(expected)

        # Nothing new on the chain: a window spends only its head read.
        idle = await next_window(pool, settings)
        assert idle.cu_spent == 10 and idle.stats.new_matches == 0
        assert (idle.stats.following, idle.stats.lag_blocks) == (1, 0)
        metrics = generate_latest().decode()
        assert 'logfill_following_lag_blocks{chain_id="1"} 0.0' in metrics
        assert 'logfill_following_requests{chain_id="1"} 1.0' in metrics

        # New blocks after a cancel are not scanned.
        await conn.execute(
            "UPDATE backfill_requests SET status = 'cancelled', cursor = NULL,"
            " finished_at = now() WHERE id = $1",
            request,
        )
        chain.emit_transfer(url, address, "0x" + "11" * 20, "0x" + "22" * 20, 999)
        after = await next_window(pool, settings)
        assert after.cu_spent == 10
        assert await stored_matches(conn, subscription) == expected
        # The queue's gauge follows: none following any more, not the last count.
        metrics = generate_latest().decode()
        assert 'logfill_backfill_requests{chain_id="1",status="following"} 0.0' in metrics
        assert 'logfill_backfill_requests{chain_id="1",status="cancelled"} 1.0' in metrics
