"""Backfill windows against a real anvil and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
import pytest

from indexer.accounts import add_credits, create_workspace
from indexer.settings import ChainSettings, Settings
from tests.support import anvil as chain
from tests.support.anvil import AnvilNode
from tests.support.chain import LogCorpus
from tests.support.factories import make_workspace
from tests.support.window import (
    create_backfill,
    create_subscription,
    keys_of,
    next_window,
    run_until_settled,
    stored_matches,
    window_pool,
    window_settings,
)


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


# -- a chain with a few thousand logs over several contracts ----------------------------


@dataclass(frozen=True)
class FilledChain:
    url: str
    contracts: list[str]
    low: int
    high: int
    topic0s: list[str]


@pytest.fixture(scope="module")
def filled_chain() -> Iterator[FilledChain]:
    """3 Emitters, 1,000 logs each, spread over ~150 blocks."""
    with AnvilNode() as node:
        contracts = [chain.deploy_emitter(node.url) for _ in range(3)]
        bounds = [
            chain.fill_logs(node.url, c, 1000, per_tx=20, seed=i * 1000, txs_per_block=1)
            for i, c in enumerate(contracts)
        ]
        low, high = min(b[0] for b in bounds), max(b[1] for b in bounds)
        topic0s = sorted(
            {raw["topics"][0] for raw in chain.get_logs(node.url, low, high) if raw["topics"]}
        )
        yield FilledChain(node.url, contracts, low, high, topic0s)


async def request_row(conn: asyncpg.Connection, request: uuid.UUID) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM backfill_requests WHERE id = $1", request)
    assert row is not None
    return row


async def window_cu(conn: asyncpg.Connection, chain_id: int = 1) -> int:
    total: int = await conn.fetchval(
        "SELECT coalesce(sum(cu_spent), 0) FROM windows WHERE chain_id = $1", chain_id
    )
    return total


@pytest.mark.parametrize("max_matches_per_commit", [10_000, 3])
async def test_several_requests_store_what_a_full_scan_finds(
    filled_chain: FilledChain,
    conn: asyncpg.Connection,
    database_url: str,
    max_matches_per_commit: int,
) -> None:
    """Also when every answer is committed in parts of a few logs (whole blocks each)."""
    fc = filled_chain
    workspace = await make_workspace(conn, credits=100_000)
    other = await make_workspace(conn, credits=100_000)
    middle = (fc.low + fc.high) // 2
    cases = [  # (workspace, addresses, topics, from, to, order)
        (workspace, [fc.contracts[0]], [], fc.low, fc.high, "asc"),
        (workspace, fc.contracts[1:], [[fc.topic0s[0]]], fc.low + 3, middle, "desc"),
        (other, [], [[fc.topic0s[-1]]], middle - 10, fc.high, "asc"),
    ]
    requests = []
    for owner, addresses, topics, low, high, order in cases:
        subscription = await create_subscription(conn, owner, addresses=addresses, topics=topics)
        request = await create_backfill(conn, subscription, low, high, order=order)
        requests.append((subscription, request, addresses, topics, low, high))
    settings = window_settings(
        fc.url,
        max_block_range=5,
        window_budget_cu=400,
        max_matches_per_commit=max_matches_per_commit,
    )

    async with window_pool(database_url) as pool:
        reports = await run_until_settled(pool, settings, [r[1] for r in requests])

    assert len(reports) > 1  # the budget made it take several windows
    for subscription, request, addresses, topics, low, high in requests:
        expected = keys_of(
            chain.get_logs(fc.url, low, high, address=addresses or None, topics=topics or None)
        )
        assert expected and await stored_matches(conn, subscription) == expected
        row = await request_row(conn, request)
        assert (row["status"], row["cursor"], row["error"]) == ("completed", None, None)
        assert row["matches"] == row["new_matches"] == row["credits_charged"] == len(expected)
        assert row["blocks_scanned"] == high - low + 1 and row["duplicate_matches"] == 0
        assert row["started_at"] <= row["finished_at"] and row["windows"] >= 1
    windows = await conn.fetch("SELECT * FROM windows ORDER BY id")
    assert all(w["cu_spent"] <= w["budget_cu"] == 400 for w in windows)
    assert all(w["finished_at"] is not None and w["error"] is None for w in windows)
    stored = await conn.fetchval("SELECT count(*) FROM matches")
    assert sum(w["new_matches"] for w in windows) == stored


async def test_twenty_overlapping_requests_cost_about_what_one_costs(
    filled_chain: FilledChain, conn: asyncpg.Connection, database_url: str
) -> None:
    fc = filled_chain
    settings = window_settings(fc.url, max_block_range=50)
    workspaces = [await make_workspace(conn, credits=100_000) for _ in range(4)]

    async def backfill(owner: uuid.UUID, topic0: str) -> uuid.UUID:
        subscription = await create_subscription(conn, owner, topics=[[topic0]])
        return await create_backfill(conn, subscription, fc.low, fc.high)

    async with window_pool(database_url) as pool:
        alone = [await backfill(workspaces[0], fc.topic0s[0])]
        await run_until_settled(pool, settings, alone)
        one_request_cu = await window_cu(conn)
        twenty = [
            await backfill(workspaces[i % 4], fc.topic0s[i % len(fc.topic0s)]) for i in range(20)
        ]
        await run_until_settled(pool, settings, twenty)
        twenty_requests_cu = await window_cu(conn) - one_request_cu

    assert twenty_requests_cu <= 1.1 * one_request_cu, (twenty_requests_cu, one_request_cu)
    statuses = await conn.fetch("SELECT status, count(*) FROM backfill_requests GROUP BY status")
    assert [tuple(r) for r in statuses] == [("completed", 21)]


async def test_a_covered_range_finishes_as_noop_and_a_wider_one_scans_only_the_gaps(
    filled_chain: FilledChain, conn: asyncpg.Connection, database_url: str
) -> None:
    fc = filled_chain
    settings = window_settings(fc.url, max_block_range=10)
    workspace = await make_workspace(conn, credits=100_000)
    subscription = await create_subscription(conn, workspace, addresses=[fc.contracts[1]])
    low, high = fc.low + 40, fc.low + 80

    async with window_pool(database_url) as pool:
        first = await create_backfill(conn, subscription, low, high)
        await run_until_settled(pool, settings, [first])
        cu_before = await window_cu(conn)

        again = await create_backfill(conn, subscription, low + 5, high - 5)
        reports = await run_until_settled(pool, settings, [again])
        assert [r.calls for r in reports] == [1]  # the head only: no eth_getLogs
        assert await window_cu(conn) - cu_before == 10

        wider = await create_backfill(conn, subscription, low - 15, high + 25)
        await run_until_settled(pool, settings, [wider])

    noop = await request_row(conn, again)
    assert (noop["status"], noop["blocks_scanned"], noop["matches"]) == ("completed_noop", 0, 0)
    gaps = await request_row(conn, wider)
    assert gaps["status"] == "completed" and gaps["blocks_scanned"] == 15 + 25
    expected = keys_of(chain.get_logs(fc.url, low - 15, high + 25, address=fc.contracts[1]))
    assert await stored_matches(conn, subscription) == expected
    assert gaps["new_matches"] == len(expected) - (await request_row(conn, first))["new_matches"]


async def test_descending_requests_scan_from_the_top_down(
    filled_chain: FilledChain, conn: asyncpg.Connection, database_url: str
) -> None:
    fc = filled_chain
    # one head read (10 CU) + 3 eth_getLogs calls (180 CU) per window
    settings = window_settings(fc.url, max_block_range=10, window_budget_cu=190)
    workspace = await make_workspace(conn, credits=100_000)
    subscription = await create_subscription(conn, workspace, addresses=[fc.contracts[2]])
    request = await create_backfill(conn, subscription, fc.low, fc.high, order="desc")

    async with window_pool(database_url) as pool:
        await next_window(pool, settings)
        row = await request_row(conn, request)
        assert row["status"] == "processing" and row["cursor"] == fc.high - 30
        lowest = await conn.fetchval("SELECT min(block_number) FROM matches")
        assert lowest is None or lowest > fc.high - 30
        await run_until_settled(pool, settings, [request])

    expected = keys_of(chain.get_logs(fc.url, fc.low, fc.high, address=fc.contracts[2]))
    assert await stored_matches(conn, subscription) == expected


# -- credits --------------------------------------------------------------------------


async def ledger(conn: asyncpg.Connection, workspace: uuid.UUID) -> list[tuple[str, int]]:
    rows = await conn.fetch(
        "SELECT reason, delta FROM credit_ledger WHERE workspace_id = $1 ORDER BY id", workspace
    )
    return [(r["reason"], r["delta"]) for r in rows]


async def test_credits_run_out_mid_range_then_a_top_up_resumes_with_nothing_lost(
    filled_chain: FilledChain, conn: asyncpg.Connection, database_url: str
) -> None:
    fc = filled_chain
    settings = window_settings(fc.url, max_block_range=20)
    expected = keys_of(chain.get_logs(fc.url, fc.low, fc.high, address=fc.contracts[0]))
    budget_credits = len(expected) // 3
    workspace = (
        await create_workspace(conn, name="w", plan="pro", credits=budget_credits)
    ).workspace_id
    subscription = await create_subscription(conn, workspace, addresses=[fc.contracts[0]])
    request = await create_backfill(conn, subscription, fc.low, fc.high)

    async with window_pool(database_url) as pool:
        await run_until_settled(pool, settings, [request], settled=("paused_credits",))
        paused = await request_row(conn, request)
        stored = await stored_matches(conn, subscription)
        assert stored == expected[:budget_credits]  # paid in block order, up to the balance
        first_unpaid = chain.get_logs(fc.url, fc.low, fc.high, address=fc.contracts[0])[
            budget_credits
        ]
        assert paused["cursor"] == int(first_unpaid["blockNumber"], 16)
        assert await conn.fetchval("SELECT credits FROM workspaces WHERE id = $1", workspace) == 0

        # Nothing moves while the balance is zero, and no CU is spent on it.
        cu = await window_cu(conn)
        await next_window(pool, settings)
        assert (await request_row(conn, request))["cursor"] == paused["cursor"]
        assert await window_cu(conn) - cu == 10

        await add_credits(conn, workspace, len(expected))
        await run_until_settled(pool, settings, [request])

    assert await stored_matches(conn, subscription) == expected
    done = await request_row(conn, request)
    assert done["status"] == "completed"
    assert done["new_matches"] == done["credits_charged"] == len(expected)
    balance = await conn.fetchval("SELECT credits FROM workspaces WHERE id = $1", workspace)
    entries = await ledger(conn, workspace)
    assert entries[0] == ("initial", budget_credits) and ("top_up", len(expected)) in entries
    charged = -sum(delta for reason, delta in entries if reason == "backfill_matches")
    assert charged == len(expected) == budget_credits + len(expected) - balance


async def test_two_chains_racing_for_one_balance_never_overspend_it(
    filled_chain: FilledChain, conn: asyncpg.Connection, database_url: str
) -> None:
    fc = filled_chain
    config = {"rpc_url": fc.url, "confirmations": 0, "max_block_range": 5}
    settings = Settings(
        chains={1: ChainSettings.model_validate(config), 2: ChainSettings.model_validate(config)},
        worker_metrics_port=0,
    )
    workspace = await make_workspace(conn, credits=500)
    requests = []
    for chain_id in (1, 2):
        for contract in fc.contracts:
            subscription = await create_subscription(
                conn, workspace, chain_id=chain_id, addresses=[contract]
            )
            requests.append(await create_backfill(conn, subscription, fc.low, fc.high))

    async with window_pool(database_url) as pool:
        await asyncio.gather(
            *(
                run_until_settled(
                    pool, settings, requests, chain_id=chain_id, settled=("paused_credits",)
                )
                for chain_id in (1, 2)
            )
        )

    assert await conn.fetchval("SELECT credits FROM workspaces WHERE id = $1", workspace) == 0
    assert await conn.fetchval("SELECT count(*) FROM matches") == 500
    entries = await ledger(conn, workspace)
    assert -sum(d for reason, d in entries if reason == "backfill_matches") == 500
    charged = await conn.fetchval("SELECT sum(credits_charged) FROM backfill_requests")
    assert charged == 500


# -- the webhook outbox ----------------------------------------------------------------


async def outbox_events(
    conn: asyncpg.Connection, subscription: uuid.UUID, max_events: int = 7
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT payload, event_count FROM webhook_deliveries WHERE subscription_id = $1"
        " ORDER BY seq",
        subscription,
    )
    assert all(r["event_count"] == len(r["payload"]["events"]) <= max_events for r in rows)
    return [event for r in rows for event in r["payload"]["events"]]


async def test_new_matches_are_queued_for_the_webhook_and_redelivered_free_on_request(
    filled_chain: FilledChain, conn: asyncpg.Connection, database_url: str
) -> None:
    fc = filled_chain
    settings = window_settings(fc.url, max_block_range=10).model_copy(
        update={"webhook_max_events_per_delivery": 7}
    )
    workspace = await make_workspace(conn, credits=100_000)
    quiet = await make_workspace(conn, credits=100_000)
    await conn.execute("UPDATE workspaces SET backfill_webhooks = false WHERE id = $1", quiet)
    hook = "https://receiver.example/hook"
    low, high = fc.low, fc.low + 30
    subscription = await create_subscription(
        conn, workspace, addresses=[fc.contracts[0]], webhook_url=hook
    )
    silent = await create_subscription(conn, quiet, addresses=[fc.contracts[0]], webhook_url=hook)
    first = await create_backfill(conn, subscription, low, high)
    await create_backfill(conn, silent, low, high)

    async with window_pool(database_url) as pool:
        await run_until_settled(pool, settings, [first])
        events = await outbox_events(conn, subscription)
        expected = keys_of(chain.get_logs(fc.url, low, high, address=fc.contracts[0]))
        assert [(e["block_hash"], e["log_index"]) for e in events] == expected
        assert len({e["id"] for e in events}) == len(events)
        assert await outbox_events(conn, silent) == []  # stored, not sent

        credits = await conn.fetchval("SELECT credits FROM workspaces WHERE id = $1", workspace)
        again = await create_backfill(conn, subscription, low, high, redeliver=True)
        await run_until_settled(pool, settings, [again])

    resent = (await outbox_events(conn, subscription))[len(events) :]
    assert [e["id"] for e in resent] == [e["id"] for e in events]
    assert await conn.fetchval("SELECT credits FROM workspaces WHERE id = $1", workspace) == credits
    row = await request_row(conn, again)
    assert (row["new_matches"], row["duplicate_matches"]) == (0, len(expected))


async def test_outbox_bodies_stay_under_the_size_limit_and_keep_every_event(
    filled_chain: FilledChain, conn: asyncpg.Connection, database_url: str
) -> None:
    fc = filled_chain
    limit = 2048
    settings = window_settings(fc.url, max_block_range=10).model_copy(
        update={"webhook_max_events_per_delivery": 100, "webhook_max_body_bytes": limit}
    )
    workspace = await make_workspace(conn, credits=100_000)
    subscription = await create_subscription(
        conn, workspace, addresses=[fc.contracts[0]], webhook_url="https://receiver.example/h"
    )
    low, high = fc.low, fc.low + 30
    request = await create_backfill(conn, subscription, low, high)
    async with window_pool(database_url) as pool:
        await run_until_settled(pool, settings, [request])

    rows = await conn.fetch(
        "SELECT payload, event_count FROM webhook_deliveries WHERE subscription_id = $1",
        subscription,
    )
    assert all(len(orjson.dumps(r["payload"])) <= limit for r in rows)
    assert len(rows) > 1 and any(r["event_count"] > 1 for r in rows)  # split, still packed
    events = await outbox_events(conn, subscription, max_events=100)
    expected = keys_of(chain.get_logs(fc.url, low, high, address=fc.contracts[0]))
    assert [(e["block_hash"], e["log_index"]) for e in events] == expected


async def test_calls_near_the_head_are_verified_against_a_real_node(
    log_corpus: LogCorpus, conn: asyncpg.Connection, database_url: str
) -> None:
    """With verification on, each call reads its last block in the same batch (80 CU
    instead of 60) and what is stored is exactly what eth_getLogs returns."""
    workspace = await make_workspace(conn, credits=10_000)
    address = log_corpus.contracts[0]
    subscription = await create_subscription(conn, workspace, addresses=[address])
    low, high = log_corpus.from_block, log_corpus.to_block
    request = await create_backfill(conn, subscription, low, high)
    settings = window_settings(log_corpus.url, max_block_range=7, verify_depth_blocks=1000)

    async with window_pool(database_url) as pool:
        reports = await run_until_settled(pool, settings, [request])

    expected = keys_of(chain.get_logs(log_corpus.url, low, high, address=address))
    assert expected and await stored_matches(conn, subscription) == expected
    calls = -(-(high - low + 1) // 7)
    assert sum(r.cu_spent for r in reports) == 10 * len(reports) + (60 + 20) * calls
