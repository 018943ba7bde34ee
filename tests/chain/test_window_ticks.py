"""A tick's budget is shared by the windows that start in it (real anvil, PostgreSQL).

A window that follows the tick's last one (a request became runnable meanwhile) may
spend only what the tick has left, uses the heads that tick read, and waits for its
turn; the next tick brings a whole budget again.
"""

from __future__ import annotations

import asyncpg

from indexer.window.run import run_window
from tests.support.chain import LogCorpus
from tests.support.factories import make_workspace
from tests.support.window import create_backfill, create_subscription, window_pool, window_settings

SPAN = 5
BUDGET = 250  # the head (10 CU) and four eth_getLogs calls (60 CU each)


async def test_a_following_window_spends_what_its_tick_has_left_and_the_next_tick_all(
    log_corpus: LogCorpus, conn: asyncpg.Connection, database_url: str
) -> None:
    workspace = await make_workspace(conn, credits=100_000)
    address = log_corpus.contracts[0]
    subscription = await create_subscription(conn, workspace, addresses=[address])
    low = log_corpus.from_block
    settings = window_settings(
        log_corpus.url, max_block_range=SPAN, window_budget_cu=BUDGET, tick_seconds=60
    )
    first = await create_backfill(conn, subscription, low, low + 2 * SPAN - 1)  # two calls

    async with window_pool(database_url) as pool:
        tick = await run_window(pool, settings, 1, "w")
        assert tick is not None and tick.budget_cu == BUDGET and tick.cu_spent == 10 + 2 * 60
        # Nothing was waiting: without a wake-up, no window until the next tick.
        assert await run_window(pool, settings, 1, "w") is None

        # A request queued now: a window follows on the 120 CU left, without reading
        # the head again, and stops where the budget does.
        # (Another contract: the first's blocks are in the log cache for its filter.)
        other = await create_subscription(conn, workspace, addresses=[log_corpus.contracts[1]])
        second = await create_backfill(conn, other, low, low + 6 * SPAN - 1)  # six calls
        follower = await run_window(pool, settings, 1, "w", follow=True)
        assert follower is not None
        assert (follower.budget_cu, follower.cu_spent, follower.calls) == (120, 120, 2)
        assert await run_window(pool, settings, 1, "w", follow=True) is None  # spent
        assert await run_window(pool, settings, 1, "other-worker", follow=True) is None

        # A minute later (the tick moved back instead): a whole budget, the head read.
        await conn.execute(
            """
            UPDATE chain_state SET window_started_at = window_started_at - interval '1 minute',
                                   lease_expires_at = lease_expires_at - interval '1 minute'
            """
        )
        next_tick = await run_window(pool, settings, 1, "other-worker", follow=True)
        assert next_tick is not None and next_tick.budget_cu == BUDGET
        assert next_tick.cu_spent == 10 + 4 * 60

    rows = await conn.fetch("SELECT tick_started_at, cu_spent FROM windows ORDER BY id")
    assert [r["cu_spent"] for r in rows] == [130, 120, 250]
    assert rows[0]["tick_started_at"] == rows[1]["tick_started_at"] != rows[2]["tick_started_at"]
    statuses = await conn.fetch(
        "SELECT status FROM backfill_requests WHERE id = ANY($1::uuid[]) ORDER BY created_at",
        [first, second],
    )
    assert [r["status"] for r in statuses] == ["completed", "completed"]


async def test_a_window_in_flight_is_never_followed(
    log_corpus: LogCorpus, conn: asyncpg.Connection, database_url: str
) -> None:
    """Until the tick's window has ended, a wake-up on another worker starts nothing."""
    workspace = await make_workspace(conn, credits=100_000)
    subscription = await create_subscription(conn, workspace, addresses=[log_corpus.contracts[0]])
    await create_backfill(conn, subscription, log_corpus.from_block, log_corpus.from_block + 9)
    settings = window_settings(log_corpus.url, max_block_range=SPAN, tick_seconds=60)
    async with window_pool(database_url) as pool:
        # The leader's window is open (taken, not ended), as while it scans.
        await conn.execute(
            """
            INSERT INTO chain_state (chain_id, leader, lease_expires_at, window_started_at)
            VALUES (1, 'leader', now() + interval '30 seconds', now())
            ON CONFLICT (chain_id) DO UPDATE SET leader = 'leader',
                lease_expires_at = now() + interval '30 seconds', window_started_at = now(),
                window_ended_at = NULL
            """
        )
        assert await run_window(pool, settings, 1, "w", follow=True) is None
