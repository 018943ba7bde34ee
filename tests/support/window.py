"""Helpers for window tests: settings, a pool, running windows until requests settle."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from indexer.db.pool import create_pool
from indexer.domain import TERMINAL
from indexer.settings import ChainSettings, Settings
from indexer.window.run import WindowReport, run_window


def window_settings(rpc_url: str, chain_id: int = 1, **chain: Any) -> Settings:
    """Settings with one chain on `rpc_url`; no confirmations (anvil's head is final),
    no verification of calls near the head (anvil is one node: it never lags behind
    itself; tests of nodes behind the head turn it on) and no reorg checks (tests of
    reorgs turn them on), so CU counts stay simple."""
    chain_config = {
        "rpc_url": rpc_url,
        "confirmations": 0,
        "tick_seconds": 0.2,
        "verify_depth_blocks": 0,
        "reorg_check_blocks": 0,
        **chain,
    }
    return Settings(
        chains={chain_id: ChainSettings.model_validate(chain_config)}, worker_metrics_port=0
    )


@asynccontextmanager
async def window_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=4, timeout=10)
    try:
        yield pool
    finally:
        await pool.close()


async def next_window(pool: asyncpg.Pool, settings: Settings, chain_id: int = 1) -> WindowReport:
    """The next window of the only worker: it gets the lease once a tick has passed
    since its previous window started (one window per tick)."""
    tick = settings.chains[chain_id].tick_seconds
    deadline = asyncio.get_running_loop().time() + 2 * tick + 5
    while True:
        report = await run_window(pool, settings, chain_id, "test-worker")
        if report is not None:
            return report
        assert asyncio.get_running_loop().time() < deadline, "the only worker never got the lease"
        await asyncio.sleep(tick / 10)


async def run_until_settled(
    pool: asyncpg.Pool,
    settings: Settings,
    request_ids: Sequence[uuid.UUID],
    *,
    chain_id: int = 1,
    max_windows: int = 200,
    settled: Collection[str] = TERMINAL,
) -> list[WindowReport]:
    """Run windows back to back (one worker) until every request is in `settled`."""
    reports: list[WindowReport] = []
    for _ in range(max_windows):
        statuses = await pool.fetch(
            "SELECT status FROM backfill_requests WHERE id = ANY($1::uuid[])", list(request_ids)
        )
        if all(row["status"] in settled for row in statuses):
            return reports
        reports.append(await next_window(pool, settings, chain_id))
    raise AssertionError(f"requests not settled after {max_windows} windows")


async def create_subscription(
    conn: asyncpg.Connection,
    workspace_id: uuid.UUID,
    *,
    chain_id: int = 1,
    addresses: Sequence[str] = (),
    topics: Sequence[Any] = (),
    webhook_url: str | None = None,
    event_abis: Sequence[dict[str, Any]] = (),
) -> uuid.UUID:
    subscription_id: uuid.UUID = await conn.fetchval(
        """
        INSERT INTO subscriptions (workspace_id, chain_id, addresses, topics, webhook_url,
                                   webhook_secret, event_abis)
        VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id
        """,
        workspace_id,
        chain_id,
        [bytes.fromhex(a[2:]) for a in addresses],
        list(topics),
        webhook_url,
        "whsec_dGVzdHNlY3JldA==" if webhook_url else None,
        list(event_abis),
    )
    return subscription_id


async def create_backfill(
    conn: asyncpg.Connection,
    subscription_id: uuid.UUID,
    from_block: int,
    to_block: int,
    *,
    order: str = "asc",
    **columns: Any,
) -> uuid.UUID:
    row = await conn.fetchrow(
        "SELECT workspace_id, chain_id FROM subscriptions WHERE id = $1", subscription_id
    )
    assert row is not None
    values = {
        "workspace_id": row["workspace_id"],
        "subscription_id": subscription_id,
        "chain_id": row["chain_id"],
        "from_block": from_block,
        "to_block": to_block,
        "block_order": order,
        "cursor": to_block if order == "desc" else from_block,
        **columns,
    }
    names = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    request_id: uuid.UUID = await conn.fetchval(
        f"INSERT INTO backfill_requests ({names}) VALUES ({params}) RETURNING id",
        *values.values(),
    )
    return request_id


async def stored_matches(
    conn: asyncpg.Connection, subscription_id: uuid.UUID
) -> list[tuple[str, int]]:
    """(block hash, log index) of a subscription's stored matches, in chain order."""
    rows = await conn.fetch(
        """
        SELECT l.block_hash, l.log_index FROM matches m
        JOIN subscriptions s ON s.id = m.subscription_id
        JOIN logs l ON l.chain_id = s.chain_id AND l.block_number = m.block_number
                   AND l.log_index = m.log_index
        WHERE m.subscription_id = $1 ORDER BY m.block_number, m.log_index
        """,
        subscription_id,
    )
    return [("0x" + r["block_hash"].hex(), r["log_index"]) for r in rows]


def keys_of(raw_logs: Sequence[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(raw["blockHash"], int(raw["logIndex"], 16)) for raw in raw_logs]
