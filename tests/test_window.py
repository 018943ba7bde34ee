"""Backfill windows against a real anvil and a real PostgreSQL."""

from __future__ import annotations

import asyncpg

from tests.chain import anvil as chain
from tests.chain_fixtures import LogCorpus, anvil, log_corpus  # noqa: F401
from tests.factories import make_workspace
from tests.window_helpers import (
    create_backfill,
    create_subscription,
    keys_of,
    run_until_settled,
    stored_matches,
    window_pool,
    window_settings,
)

# ruff: noqa: F811


async def test_a_backfill_stores_exactly_what_eth_get_logs_returns(
    log_corpus: LogCorpus, conn: asyncpg.Connection, database_url: str
) -> None:
    workspace = await make_workspace(conn, credits=10_000)
    address = log_corpus.contracts[0]
    subscription = await create_subscription(conn, workspace, addresses=[address])
    low, high = log_corpus.from_block, log_corpus.to_block
    request = await create_backfill(conn, subscription, low, high)
    settings = window_settings(log_corpus.url, max_block_range=7)

    async with window_pool(database_url) as pool:
        await run_until_settled(pool, settings, [request])

    expected = keys_of(chain.get_logs(log_corpus.url, low, high, address=address))
    assert expected and await stored_matches(conn, subscription) == expected
    row = await conn.fetchrow("SELECT * FROM backfill_requests WHERE id = $1", request)
    assert row is not None
    assert row["status"] == "completed" and row["cursor"] is None
    assert row["new_matches"] == row["credits_charged"] == len(expected)
    assert row["blocks_scanned"] == high - low + 1
    credits = await conn.fetchval("SELECT credits FROM workspaces WHERE id = $1", workspace)
    assert credits == 10_000 - len(expected)
