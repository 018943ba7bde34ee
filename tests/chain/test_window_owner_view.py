"""What a request's owner sees while windows run it (issue: the owner's experience).

Against the scripted fake provider: provider trouble shows on the resource with
its time; a request that loses its right to run (plan downgraded, stored events
turned off) stops charging at its next commit, says why, and goes on once the
rule holds again; a pause for credits in the middle of a block does not count
the matches paid before it twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp import web

from api.render import backfill as render_backfill
from indexer.accounts import add_credits
from indexer.backfills import get_backfill
from tests.support.factories import make_workspace
from tests.support.fake_provider import (
    ADDRESS_A,
    Behaviour,
    Exchange,
    FakeProvider,
    JsonCall,
    SyntheticChain,
    answer,
    http_error,
)
from tests.support.window import (
    create_backfill,
    create_subscription,
    next_window,
    run_until_settled,
    window_pool,
    window_settings,
)


def after(change: Awaitable[object]) -> Behaviour:
    """Answer correctly, once `change` (the owner's, made while the window runs) is done."""

    async def behave(exchange: Exchange) -> web.StreamResponse:
        await change
        return await answer()(exchange)

    return behave


async def resource(conn: asyncpg.Connection, workspace: uuid.UUID, request: uuid.UUID) -> Any:
    """The request as GET /v1/backfill/{id} shows it."""
    return render_backfill(await get_backfill(conn, workspace, request))


async def test_provider_trouble_shows_on_the_request_with_its_time(
    conn: asyncpg.Connection, database_url: str
) -> None:
    outage = {"on": True}

    def down(call: JsonCall) -> Any:
        return http_error(503) if outage["on"] else None

    workspace = await make_workspace(conn, credits=1_000_000)
    subscription = await create_subscription(conn, workspace, addresses=[ADDRESS_A])
    request = await create_backfill(conn, subscription, 1_000, 1_999)
    before = datetime.now(UTC)
    async with (
        FakeProvider(chain=SyntheticChain(), rule=down) as fake,
        window_pool(database_url) as pool,
    ):
        settings = window_settings(fake.url, max_attempts=1)
        await next_window(pool, settings)  # the node is down: not even the head answers
        shown = await resource(conn, workspace, request)
        assert shown.status == "queued" and shown.error is None
        assert shown.last_transient_error is not None and "503" in shown.last_transient_error
        assert shown.last_transient_error_at is not None
        assert before <= shown.last_transient_error_at <= datetime.now(UTC)

        outage["on"] = False
        await run_until_settled(pool, settings, [request])

    done = await resource(conn, workspace, request)
    assert done.status == "completed"
    assert done.last_transient_error is None and done.last_transient_error_at is None
    assert done.estimated_start_at is None and done.estimated_finish_at is None  # terminal


async def test_a_downgraded_plan_stops_charging_at_the_next_commit_and_an_upgrade_resumes(
    conn: asyncpg.Connection, database_url: str
) -> None:
    commits = {"n": 0}
    workspace = await make_workspace(conn, credits=1_000_000)
    subscription = await create_subscription(conn, workspace, addresses=[ADDRESS_A])
    request = await create_backfill(conn, subscription, 1_000, 5_999)

    def downgrade_after_first_call(call: JsonCall) -> Any:
        if call["method"] == "eth_getLogs":
            commits["n"] += 1
            if commits["n"] == 3:  # while the window runs (a chunk committed): to free
                return after(
                    conn.execute("UPDATE workspaces SET plan = 'free' WHERE id = $1", workspace)
                )
        return None

    async with (
        FakeProvider(chain=SyntheticChain(), rule=downgrade_after_first_call) as fake,
        window_pool(database_url) as pool,
    ):
        settings = window_settings(fake.url, max_block_range=100, max_calls_in_flight=1)
        await next_window(pool, settings)
        blocked = await resource(conn, workspace, request)
        assert blocked.status == "blocked"
        assert blocked.blocked_reason is not None and "plan (free)" in blocked.blocked_reason
        assert blocked.estimated_finish_at is None
        charged = blocked.credits_charged
        assert 0 < blocked.blocks_scanned < 5_000  # stopped mid-way, at a commit

        # More windows while blocked: nothing is scanned or charged.
        await next_window(pool, settings)
        still = await resource(conn, workspace, request)
        assert (still.status, still.credits_charged, still.cursor) == (
            "blocked",
            charged,
            blocked.cursor,
        )
        balance = await conn.fetchval("SELECT credits FROM workspaces WHERE id = $1", workspace)
        assert balance == 1_000_000 - charged

        await conn.execute("UPDATE workspaces SET plan = 'pro' WHERE id = $1", workspace)
        await run_until_settled(pool, settings, [request])

    done = await resource(conn, workspace, request)
    assert done.status == "completed" and done.blocked_reason is None
    expected = SyntheticChain().count(1_000, 5_999)
    assert done.new_matches == done.credits_charged == done.matches == expected


async def test_stored_events_turned_off_mid_run_blocks_the_request(
    conn: asyncpg.Connection, database_url: str
) -> None:
    workspace = await make_workspace(conn, credits=1_000_000)
    subscription = await create_subscription(conn, workspace, addresses=[ADDRESS_A])
    request = await create_backfill(conn, subscription, 1_000, 5_999)
    calls = {"n": 0}

    def switch_off(call: JsonCall) -> Any:
        if call["method"] == "eth_getLogs":
            calls["n"] += 1
            if calls["n"] == 3:
                return after(
                    conn.execute(
                        "UPDATE subscriptions SET stored_events = false WHERE id = $1", subscription
                    )
                )
        return None

    async with (
        FakeProvider(chain=SyntheticChain(), rule=switch_off) as fake,
        window_pool(database_url) as pool,
    ):
        settings = window_settings(fake.url, max_block_range=100, max_calls_in_flight=1)
        await next_window(pool, settings)
        blocked = await resource(conn, workspace, request)
        stored = await conn.fetchval(
            "SELECT count(*) FROM matches WHERE subscription_id = $1", subscription
        )

    assert blocked.status == "blocked"
    assert blocked.blocked_reason is not None and "stored_events" in blocked.blocked_reason
    assert stored == blocked.new_matches == blocked.credits_charged  # nothing stored after it
    assert blocked.blocks_scanned < 5_000


async def test_a_credit_pause_mid_block_counts_nothing_twice(
    conn: asyncpg.Connection, database_url: str
) -> None:
    def two_per_block(block: int) -> int:
        return 2

    chain = SyntheticChain(logs_per_block=two_per_block)
    workspace = await make_workspace(conn, credits=5)  # 2 + 2 + 1: the third block is split
    subscription = await create_subscription(conn, workspace, addresses=[ADDRESS_A])
    request = await create_backfill(conn, subscription, 1_000, 1_009)
    async with FakeProvider(chain=chain) as fake, window_pool(database_url) as pool:
        settings = window_settings(fake.url, max_block_range=10)
        await run_until_settled(pool, settings, [request], settled=("paused_credits",))
        paused = await resource(conn, workspace, request)
        assert (paused.cursor, paused.new_matches, paused.matches) == (1_002, 5, 5)
        await add_credits(conn, workspace, 100)
        await run_until_settled(pool, settings, [request])

    done = await resource(conn, workspace, request)
    assert done.status == "completed"
    assert (done.matches, done.new_matches, done.duplicate_matches) == (20, 20, 0)
    assert done.credits_charged == 20


async def test_a_queued_request_keeps_its_estimate_and_a_processing_one_moves_forward(
    conn: asyncpg.Connection, database_url: str
) -> None:
    workspace = await make_workspace(conn, credits=1_000_000)
    subscription = await create_subscription(conn, workspace, addresses=[ADDRESS_A])
    first = await create_backfill(conn, subscription, 1_000, 5_999)
    second = await create_backfill(conn, subscription, 10_000, 10_999)
    async with FakeProvider(chain=SyntheticChain()) as fake, window_pool(database_url) as pool:
        settings = window_settings(fake.url, max_block_range=100, window_budget_cu=610)
        await next_window(pool, settings)
        one = await resource(conn, workspace, first)
        queued = await resource(conn, workspace, second)
        await next_window(pool, settings)
        two = await resource(conn, workspace, first)
        counted = await conn.fetchrow(
            "SELECT queue_calls, queue_counted_at FROM chain_state WHERE chain_id = 1"
        )
        left = await conn.fetchval(
            "SELECT sum(ceil(blocks / 100.0))::bigint FROM (SELECT (SELECT sum(upper(x) -"
            " lower(x)) FROM unnest(coalesce(remaining, int8multirange(int8range(from_block,"
            " to_block, '[]')))) AS x) AS blocks FROM backfill_requests"
            " WHERE status IN ('queued', 'processing')) AS q"
        )

    # The window counts what its queue still needs: a POST starts from that count.
    assert counted is not None and counted["queue_counted_at"] is not None
    assert counted["queue_calls"] == left
    assert one.status == two.status == "processing"
    assert one.estimated_start_at is not None and two.estimated_start_at == one.estimated_start_at
    assert one.estimated_finish_at is not None and two.estimated_finish_at is not None
    assert two.estimated_finish_at > datetime.now(UTC) - timedelta(seconds=1)
    assert queued.status == "queued" and queued.estimated_start_at is not None
    assert queued.estimated_start_at >= one.estimated_finish_at - timedelta(seconds=0.2)
