"""Windows against a scripted fake provider: scale and faults a real node will not produce.

The fake's synthetic chain can be 20 million blocks long, and it answers with
503s, provider errors and slow calls on demand.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from prometheus_client import generate_latest
from structlog.testing import capture_logs

from indexer.settings import DEFAULT_CU_WEIGHTS
from indexer.window.chain_state import take_lease
from indexer.window.run import WindowReport, run_window
from tests.support.factories import make_workspace
from tests.support.fake_provider import (
    ADDRESS_A,
    FakeProvider,
    JsonCall,
    SyntheticChain,
    delayed,
    http_error,
    lagging,
    rpc_error,
)
from tests.support.window import (
    create_backfill,
    create_subscription,
    next_window,
    run_until_settled,
    window_pool,
    window_settings,
)

GET_LOGS_CU = 60
HEAD_CU = 10


def sparse(block: int) -> int:
    return 1 if block % 50 == 0 else 0


async def status_of(conn: asyncpg.Connection, request: uuid.UUID) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT status, cursor, blocks_scanned, error, last_transient_error"
        " FROM backfill_requests WHERE id = $1",
        request,
    )
    assert row is not None
    return row


async def one_request(
    conn: asyncpg.Connection, low: int, high: int, **columns: Any
) -> tuple[uuid.UUID, uuid.UUID]:
    workspace = await make_workspace(conn, credits=1_000_000)
    subscription = await create_subscription(conn, workspace, addresses=[ADDRESS_A])
    return workspace, await create_backfill(conn, subscription, low, high, **columns)


async def test_a_short_request_of_another_workspace_is_not_held_back_by_a_huge_one(
    conn: asyncpg.Connection, database_url: str
) -> None:
    chain = SyntheticChain(logs_per_block=sparse, head=20_000_000, finalized=None)
    _, huge = await one_request(conn, 0, 9_999_999)  # queued first
    _, short = await one_request(conn, 15_000_000, 15_000_999)
    async with FakeProvider(chain=chain) as fake, window_pool(database_url) as pool:
        settings = window_settings(fake.url, max_block_range=100, window_budget_cu=1_210)
        first = await next_window(pool, settings)
        second = await next_window(pool, settings)

    assert first is not None and second is not None
    assert (await status_of(conn, short))["status"] == "completed"
    assert (await status_of(conn, huge))["status"] == "processing"
    assert first.cu_spent <= 1_210 and second.cu_spent <= 1_210


async def test_retries_are_paid_and_no_window_spends_more_than_its_budget(
    conn: asyncpg.Connection, database_url: str
) -> None:
    calls = 0

    def every_third_fails(call: JsonCall) -> Any:
        nonlocal calls
        if call["method"] != "eth_getLogs":
            return None
        calls += 1
        return http_error(503) if calls % 3 == 0 else None

    _, request = await one_request(conn, 1_000, 3_999)
    async with (
        FakeProvider(chain=SyntheticChain(logs_per_block=sparse), rule=every_third_fails) as fake,
        window_pool(database_url) as pool,
    ):
        settings = window_settings(fake.url, max_block_range=100, window_budget_cu=500)
        await run_until_settled(pool, settings, [request])
        received = [r.methods for r in fake.received]

    windows = await conn.fetch("SELECT budget_cu, cu_spent, calls FROM windows")
    assert all(w["cu_spent"] <= w["budget_cu"] == 500 for w in windows)
    get_logs = sum(m == ["eth_getLogs"] for m in received)
    heads = sum(m == ["eth_blockNumber"] for m in received)
    assert get_logs > 30 and calls // 3 > 5  # 30 chunks, and retries happened
    assert sum(w["cu_spent"] for w in windows) == GET_LOGS_CU * get_logs + HEAD_CU * heads
    assert sum(w["calls"] for w in windows) == len(received)
    assert (await status_of(conn, request))["status"] == "completed"


async def test_provider_trouble_never_fails_a_request(
    conn: asyncpg.Connection, database_url: str
) -> None:
    def get_logs_down(call: JsonCall) -> Any:
        return http_error(503) if call["method"] == "eth_getLogs" else None

    _, request = await one_request(conn, 1_000, 1_999)
    async with (
        FakeProvider(chain=SyntheticChain(), rule=get_logs_down) as fake,
        window_pool(database_url) as pool,
    ):
        settings = window_settings(fake.url, max_attempts=2)
        for _ in range(3):
            await next_window(pool, settings)

    row = await status_of(conn, request)
    assert row["status"] == "queued" and row["cursor"] == 1_000 and row["error"] is None
    assert "503" in row["last_transient_error"]
    errors = await conn.fetch("SELECT errors FROM windows ORDER BY id")
    assert [w["errors"] for w in errors] == [1, 1, 1]


async def test_a_non_retryable_error_fails_the_request_with_the_providers_words(
    conn: asyncpg.Connection, database_url: str
) -> None:
    def invalid_params(call: JsonCall) -> Any:
        if call["method"] == "eth_getLogs":
            return rpc_error(-32602, "invalid argument 0: address list too long")
        return None

    _, request = await one_request(conn, 1_000, 1_999)
    async with (
        FakeProvider(chain=SyntheticChain(), rule=invalid_params) as fake,
        window_pool(database_url) as pool,
    ):
        await run_until_settled(pool, window_settings(fake.url), [request])

    row = await status_of(conn, request)
    assert row["status"] == "failed" and row["cursor"] is None
    assert "address list too long" in row["error"]


async def test_a_single_block_too_large_for_the_provider_fails_naming_the_block(
    conn: asyncpg.Connection, database_url: str
) -> None:
    def too_many_results(call: JsonCall) -> Any:
        if call["method"] == "eth_getLogs":
            return rpc_error(-32005, "query returned more than 10000 results")
        return None

    _, request = await one_request(conn, 1_000, 1_007)
    async with (
        FakeProvider(chain=SyntheticChain(), rule=too_many_results) as fake,
        window_pool(database_url) as pool,
    ):
        await run_until_settled(pool, window_settings(fake.url), [request])

    row = await status_of(conn, request)
    assert row["status"] == "failed" and "block 1000" in row["error"]


@asynccontextmanager
async def window_under_way(
    conn: asyncpg.Connection, database_url: str, request: uuid.UUID
) -> AsyncIterator[tuple[FakeProvider, asyncio.Task[WindowReport | None]]]:
    """A window over a slow provider (0.2 s an eth_getLogs call, one in flight, 10 blocks
    a call), once it has committed its first blocks; the provider and the window."""

    def slow(call: JsonCall) -> Any:
        return delayed(0.2) if call["method"] == "eth_getLogs" else None

    async with (
        FakeProvider(chain=SyntheticChain(logs_per_block=sparse), rule=slow) as fake,
        window_pool(database_url) as pool,
    ):
        settings = window_settings(fake.url, max_block_range=10, max_calls_in_flight=1)
        window = asyncio.create_task(run_window(pool, settings, 1, "test-worker"))
        while (await status_of(conn, request))["blocks_scanned"] == 0:
            await asyncio.sleep(0.02)
        yield fake, window


async def test_a_cancel_takes_effect_at_the_next_call_boundary(
    conn: asyncpg.Connection, database_url: str
) -> None:
    _, request = await one_request(conn, 1_000, 1_999)
    async with window_under_way(conn, database_url, request) as (_, window):
        await conn.execute(
            "UPDATE backfill_requests SET status = 'cancelled', cursor = NULL,"
            " finished_at = now() WHERE id = $1",
            request,
        )
        scanned_at_cancel = (await status_of(conn, request))["blocks_scanned"]
        report = await window

    assert report is not None and report.stats.error is None
    row = await status_of(conn, request)
    assert row["status"] == "cancelled" and row["blocks_scanned"] == scanned_at_cancel < 1_000
    # at most the call in flight at the cancel was paid for and dropped
    assert report.calls <= 1 + scanned_at_cancel // 10 + 2


async def test_queued_requests_get_an_eta_and_the_window_is_measured(
    conn: asyncpg.Connection, database_url: str
) -> None:
    workspace, first = await one_request(conn, 1_000, 5_999)
    subscription = await create_subscription(conn, workspace, addresses=[ADDRESS_A])
    second = await create_backfill(conn, subscription, 10_000, 10_999)  # FIFO: waits
    async with FakeProvider(chain=SyntheticChain(logs_per_block=sparse)) as fake:
        settings = window_settings(fake.url, max_block_range=100, window_budget_cu=610)
        async with window_pool(database_url) as pool:
            with capture_logs() as logs:
                report = await next_window(pool, settings)

    assert report is not None
    rows = {
        r["id"]: r
        for r in await conn.fetch(
            "SELECT id, started_at, estimated_start_at, estimated_finish_at FROM backfill_requests"
        )
    }
    # 10 calls of 100 blocks per window, 0.2 s per tick: the first request (50 calls left of
    # 60) needs 5 more windows; the second starts after it. A started request keeps a start
    # (it was queued without an estimate here, so its real one).
    assert rows[first]["started_at"] is not None
    assert rows[first]["estimated_start_at"] == rows[first]["started_at"]
    assert rows[second]["estimated_start_at"] >= rows[first]["estimated_finish_at"] - timedelta(
        seconds=0.2
    )
    assert rows[second]["estimated_finish_at"] > rows[second]["estimated_start_at"]

    [finished] = [e for e in logs if e["event"] == "window_finished"]
    assert finished["cu_spent"] == report.cu_spent == 610 and finished["calls"] == 11
    exposition = generate_latest().decode()
    assert 'logfill_cu_spent_total{chain_id="1"}' in exposition
    assert 'logfill_backfill_requests{chain_id="1",status="processing"} 1.0' in exposition


class ForgingChain(SyntheticChain):
    """Block 1,500 holds a log whose data field carries a forged COPY row for
    another subscription ("forged") or an odd number of hex digits ("odd")."""

    victim: str = ""
    mode: str = "forged"

    def block_logs(self, number: int) -> list[Any]:
        logs = super().block_logs(number)
        if number == 1_500 and logs and self.mode == "forged":
            zero = "\\\\x" + "00" * 32
            forged = (
                f"\n{self.victim}\t\\N\t1500\t{zero}\t9\t{zero}\t0\t\\\\x{'00' * 20}\t{{}}\t\\\\x"
            )
            logs[0] = {**logs[0], "data": "0x00" + forged}
        if number == 1_500 and logs and self.mode == "odd":
            logs[0] = {**logs[0], "data": "0x123"}
        return logs


@pytest.mark.parametrize("mode", ["forged", "odd"])
async def test_a_log_that_is_not_hex_stores_nothing_and_never_fails_the_request(
    conn: asyncpg.Connection, database_url: str, mode: str
) -> None:
    workspace, request = await one_request(conn, 1_000, 1_999)
    victim = await create_subscription(conn, workspace, addresses=["0x" + "99" * 20])
    chain = ForgingChain(logs_per_block=sparse)
    chain.victim, chain.mode = str(victim), mode
    async with FakeProvider(chain=chain) as fake, window_pool(database_url) as pool:
        settings = window_settings(fake.url, max_block_range=100)
        await next_window(pool, settings)

    row = await status_of(conn, request)
    assert row["status"] == "processing" and row["error"] is None
    assert row["cursor"] == 1_500  # blocks before the forged log are committed
    assert "not hex" in row["last_transient_error"]
    assert (
        await conn.fetchval("SELECT count(*) FROM matches WHERE subscription_id = $1", victim) == 0
    )
    stored = await conn.fetch("SELECT block_number FROM matches ORDER BY block_number")
    assert [r["block_number"] for r in stored] == list(range(1_000, 1_500, 50))


async def test_a_node_behind_the_head_answering_no_logs_loses_nothing(
    conn: asyncpg.Connection, database_url: str
) -> None:
    """Half of the calls reach a node 300 blocks behind, which answers eth_getLogs for the
    blocks it has not seen with `[]`. Those answers are not taken as "no logs": the
    calls near the head are verified and asked again, and every match is stored."""
    chain = SyntheticChain(head=10_000, finalized=None)
    low, high = 9_000, 10_000
    workspace, request = await one_request(conn, low, high)
    turn = 0

    def every_other_request_lags(call: JsonCall) -> Any:
        nonlocal turn
        turn += 1
        return lagging(300) if turn % 2 == 0 and call["method"] != "eth_blockNumber" else None

    async with FakeProvider(chain=chain, rule=every_other_request_lags) as fake:
        async with window_pool(database_url) as pool:
            settings = window_settings(
                fake.url, max_block_range=100, window_budget_cu=100_000, verify_depth_blocks=1000
            )
            await run_until_settled(pool, settings, [request])

    expected = chain.count(low, high)
    row = await status_of(conn, request)
    assert row["status"] == "completed"
    stored = await conn.fetchval("SELECT count(*) FROM matches")
    assert stored == expected, f"{expected - stored} of {expected} matches missing"
    credits = await conn.fetchval("SELECT credits FROM workspaces WHERE id = $1", workspace)
    assert credits == 1_000_000 - expected


async def test_a_window_whose_lease_another_worker_took_sends_no_more_calls(
    conn: asyncpg.Connection, database_url: str
) -> None:
    _, request = await one_request(conn, 1_000, 1_999)
    async with window_under_way(conn, database_url, request) as (fake, window):
        # Another worker takes the chain (as if this one had been silent for a lease).
        await conn.execute("UPDATE chain_state SET leader = 'other-worker' WHERE chain_id = 1")
        took_over = time.monotonic()
        report = await window

    assert report is not None and report.stats.error is not None
    assert "another worker took the window lease" in report.stats.error
    # The call in flight at the takeover was sent just before it; the next would have
    # gone out when that one's answer came, 0.2 s later. None did.
    assert [r for r in fake.received if r.at > took_over + 0.1] == []
    # What the provider was sent is what the audit says was spent.
    sent_cu = sum(DEFAULT_CU_WEIGHTS[m] for r in fake.received for m in r.methods)
    audit = await conn.fetchval("SELECT cu_spent FROM windows WHERE id = $1", report.window_id)
    assert audit == report.cu_spent == sent_cu


async def test_a_window_slow_between_commits_keeps_its_lease(
    conn: asyncpg.Connection, database_url: str
) -> None:
    """One call takes 1.5 s and the lease is 0.6 s: the window renews it while it waits,
    so another worker cannot take the chain from a window that still works."""

    def slow(call: JsonCall) -> Any:
        return delayed(1.5) if call["method"] == "eth_getLogs" else None

    _, request = await one_request(conn, 1_000, 1_009)
    async with (
        FakeProvider(chain=SyntheticChain(logs_per_block=sparse), rule=slow) as fake,
        window_pool(database_url) as pool,
    ):
        settings = window_settings(fake.url, max_block_range=10, lease_seconds=0.6)
        window = asyncio.create_task(run_window(pool, settings, 1, "test-worker"))
        await asyncio.sleep(1.0)  # the call is still out; no commit since the lease began
        other = await take_lease(conn, 1, "other-worker", settings.chains[1])
        report = await window

    assert other is None
    assert report is not None and report.stats.error is None
    assert (await status_of(conn, request))["status"] == "completed"
