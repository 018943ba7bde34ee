"""Reorgs below the safe head on a real anvil (evm_snapshot / evm_revert, then other
transactions): what was stored of the orphaned blocks is removed, refunded and
announced to the receiver, the blocks are scanned again, and the stored set ends
equal to a full scan of the new chain. A reorg deeper than the limit stops the
chain's windows and removes nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import asyncpg
from prometheus_client import generate_latest

from indexer.events import list_removed_events
from indexer.outbox.bodies import event_id
from indexer.outbox.enqueue import OutboxLimits
from indexer.settings import Settings
from indexer.store.reorg import resume_chain
from indexer.webhooks.dispatcher import delivering
from indexer.window.run import WindowReport, run_window
from tests.support import anvil as chain
from tests.support.anvil import AnvilNode
from tests.support.factories import make_workspace
from tests.support.webhooks import receiver, wait_until, webhook_settings
from tests.support.window import (
    create_backfill,
    create_subscription,
    keys_of,
    next_window,
    stored_matches,
    window_pool,
    window_settings,
)

CREDITS = 10_000
ALICE, BOB = "0x" + "11" * 20, "0x" + "22" * 20


def transfers(url: str, address: str, values: range) -> None:
    """One Transfer a block."""
    for value in values:
        chain.emit_transfer(url, address, ALICE, BOB, value)


def replaceable_history(
    node: AnvilNode, *, kept: range, replaced: range
) -> tuple[str, str, int, str, int, int]:
    """An Emitter, then a Transfer a block for each of `kept`, a snapshot, and one for
    each of `replaced` (the blocks a reorg will replace). Returns the node's URL, the
    contract, the first block with a Transfer, the snapshot, the first block after it
    (the fork) and the head."""
    url = node.url
    address = chain.deploy_emitter(url)
    low = chain.block_number(url) + 1
    transfers(url, address, kept)
    snapshot = node.rpc("evm_snapshot")
    fork = chain.block_number(url) + 1
    transfers(url, address, replaced)
    return url, address, low, snapshot, fork, chain.block_number(url)


async def request_row(conn: asyncpg.Connection, request: uuid.UUID) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM backfill_requests WHERE id = $1", request)
    assert row is not None
    return row


async def catch_up(
    pool: asyncpg.Pool, conn: asyncpg.Connection, settings: Settings, request: uuid.UUID, head: int
) -> list[WindowReport]:
    """Windows until the follow request waits at the block after `head`."""
    reports = []
    for _ in range(20):
        reports.append(await next_window(pool, settings))
        if (await request_row(conn, request))["cursor"] == head + 1:
            return reports
    raise AssertionError(f"the request never caught up with block {head}")


def event_ids(url: str, raw_logs: list[dict[str, Any]]) -> set[str]:
    return {event_id(1, raw["blockHash"], int(raw["logIndex"], 16)) for raw in raw_logs}


async def test_a_reorg_below_the_safe_head_is_repaired_and_announced(
    fresh_anvil: AnvilNode, conn: asyncpg.Connection, database_url: str
) -> None:
    url, address, low, snapshot, fork, head = replaceable_history(
        fresh_anvil, kept=range(10), replaced=range(100, 106)
    )
    orphaned = chain.get_logs(url, fork, head, address=address)
    assert len(orphaned) == 6

    workspace = await make_workspace(conn, credits=CREDITS)
    async with receiver() as hook:
        subscription = await create_subscription(
            conn, workspace, addresses=[address], webhook_url=hook.url()
        )
        request = await create_backfill(conn, subscription, low, head, follow=True)
        settings = window_settings(url, max_block_range=4, reorg_check_blocks=64)
        async with window_pool(database_url) as pool:
            await catch_up(pool, conn, settings, request, head)
            assert len(await stored_matches(conn, subscription)) == 16

            # Another history from the fork on: other transfers, and longer.
            fresh_anvil.rpc("evm_revert", [snapshot])
            transfers(url, address, range(200, 209))
            new_head = chain.block_number(url)
            reports = await catch_up(pool, conn, settings, request, new_head)

            repaired = [r for r in reports if r.stats.reorg_depth is not None]
            assert len(repaired) == 1
            assert repaired[0].stats.matches_removed == 6
            assert repaired[0].stats.reorg_depth == head - fork + 1
            expected = keys_of(chain.get_logs(url, low, new_head, address=address))
            assert len(expected) == 19
            assert await stored_matches(conn, subscription) == expected

            row = await request_row(conn, request)
            assert row["status"] == "following" and row["matches_removed"] == 6
            assert row["new_matches"] - row["matches_removed"] == len(expected)
            assert row["blocks_scanned"] == new_head - low + 1
            credits = await conn.fetchval("SELECT credits FROM workspaces WHERE id = $1", workspace)
            assert credits == CREDITS - len(expected)  # the orphaned six were refunded
            refund = await conn.fetchrow(
                "SELECT delta, backfill_request_id FROM credit_ledger"
                " WHERE workspace_id = $1 AND reason = 'reorg_refund'",
                workspace,
            )
            assert refund is not None and (refund["delta"], refund["backfill_request_id"]) == (
                6,
                request,
            )
            audit = await conn.fetch(
                "SELECT block_hash, log_index FROM removed_matches WHERE subscription_id = $1"
                " ORDER BY block_number, log_index",
                subscription,
            )
            assert [("0x" + r["block_hash"].hex(), r["log_index"]) for r in audit] == keys_of(
                orphaned
            )
            reorg = await conn.fetchrow("SELECT * FROM reorgs WHERE chain_id = 1")
            assert reorg is not None
            assert (reorg["fork_block"], reorg["matches_removed"]) == (fork, 6)
            metrics = generate_latest().decode()
            assert 'logfill_matches_removed_total{chain_id="1"}' in metrics

            # Out of the events listing, in the audit listing (by pages).
            page, after = await list_removed_events(
                conn, workspace, subscription, limit=4, after=None
            )
            rest, last = await list_removed_events(
                conn, workspace, subscription, limit=4, after=after
            )
            assert after is not None and last is None
            assert {e["id"] for e in page + rest} == event_ids(url, orphaned)
            assert {e["reorg_id"] for e in page + rest} == {reorg["id"]}

            # Caught up on the new chain, nothing new: the window spends its head read
            # only (no check without blocks to scan).
            idle = await next_window(pool, settings)
            assert idle.cu_spent == 10

            # The receiver: every match once, then the orphaned ones removed by id.
            async with delivering(webhook_settings(), pool):

                async def all_sent() -> bool:
                    pending = await conn.fetchval(
                        "SELECT count(*) FROM webhook_deliveries"
                        " WHERE subscription_id = $1 AND status <> 'delivered'",
                        subscription,
                    )
                    return bool(pending == 0)

                await wait_until(all_sent, timeout=20)
    assert all(r.verified for r in hook.received)
    sent: Counter[str] = Counter()
    removed: Counter[str] = Counter()
    for delivery in hook.received:
        body = delivery.payload
        target = removed if body["type"] == "backfill.matches.removed" else sent
        assert body["type"] in ("backfill.matches", "backfill.matches.removed")
        target.update(event["id"] for event in body["events"])
    old_ids = event_ids(url, orphaned)
    assert set(removed) == old_ids and set(removed.values()) == {1}
    assert set(sent.values()) == {1}  # no event delivered twice
    new_chain = chain.get_logs(url, low, new_head, address=address)
    assert set(sent) - set(removed) == event_ids(url, new_chain)
    removed_event = next(
        e
        for d in hook.received
        if d.payload["type"] == "backfill.matches.removed"
        for e in d.payload["events"]
    )
    assert set(removed_event) >= {"id", "block_number", "block_hash", "log_index", "data"}


async def test_a_reorg_deeper_than_the_limit_stops_the_chain_and_removes_nothing(
    fresh_anvil: AnvilNode, conn: asyncpg.Connection, database_url: str
) -> None:
    url, address, low, snapshot, fork, head = replaceable_history(
        fresh_anvil, kept=range(3), replaced=range(100, 108)
    )
    workspace = await make_workspace(conn, credits=CREDITS)
    subscription = await create_subscription(conn, workspace, addresses=[address])
    request = await create_backfill(conn, subscription, low, head, follow=True)
    settings = window_settings(url, max_block_range=2, reorg_check_blocks=64, max_reorg_depth=4)
    async with window_pool(database_url) as pool:
        await catch_up(pool, conn, settings, request, head)
        before = await stored_matches(conn, subscription)
        assert len(before) == 11

        fresh_anvil.rpc("evm_revert", [snapshot])
        transfers(url, address, range(300, 310))
        halting = await next_window(pool, settings)
        assert halting.stats.error is not None and "max_reorg_depth" in halting.stats.error
        assert await stored_matches(conn, subscription) == before  # nothing removed
        row = await request_row(conn, request)
        assert "deeper than max_reorg_depth (4)" in row["last_transient_error"]
        assert 'logfill_chain_halted{chain_id="1"} 1.0' in generate_latest().decode()
        credits = await conn.fetchval("SELECT credits FROM workspaces WHERE id = $1", workspace)
        assert credits == CREDITS - 11

        # Stopped: the next ticks run no window at all.
        spent = await conn.fetchval("SELECT count(*) FROM windows WHERE chain_id = 1")
        await next_window_none(pool, settings)
        assert await conn.fetchval("SELECT count(*) FROM windows WHERE chain_id = 1") == spent

        # The operator names the fork: the chain is repaired and goes on.
        limits = OutboxLimits.from_settings(settings)
        answer = await resume_chain(conn, 1, limits, rescan_from=fork)
        assert answer["resumed"] and answer["matches_removed"] == 8
        new_head = chain.block_number(url)
        await catch_up(pool, conn, settings, request, new_head)
        expected = keys_of(chain.get_logs(url, low, new_head, address=address))
        assert await stored_matches(conn, subscription) == expected
        credits = await conn.fetchval("SELECT credits FROM workspaces WHERE id = $1", workspace)
        assert credits == CREDITS - len(expected)
        assert 'logfill_chain_halted{chain_id="1"} 0.0' in generate_latest().decode()


async def next_window_none(pool: asyncpg.Pool, settings: Settings) -> None:
    """A tick of a stopped chain: the worker takes the lease and runs no window."""
    await asyncio.sleep(settings.chains[1].tick_seconds)
    assert await run_window(pool, settings, 1, "test-worker") is None


async def test_a_completed_backfill_whose_blocks_a_reorg_replaced_scans_them_again(
    fresh_anvil: AnvilNode, conn: asyncpg.Connection, database_url: str
) -> None:
    url, address, low, snapshot, _, head = replaceable_history(
        fresh_anvil, kept=range(4), replaced=range(100, 104)
    )
    workspace = await make_workspace(conn, credits=CREDITS)
    subscription = await create_subscription(conn, workspace, addresses=[address])
    bounded = await create_backfill(conn, subscription, low, head)
    # A follow request of another subscription keeps the chain's windows scanning.
    other = await create_subscription(conn, workspace, addresses=[address])
    follower = await create_backfill(conn, other, head, head, follow=True)
    settings = window_settings(url, max_block_range=3, reorg_check_blocks=64)
    async with window_pool(database_url) as pool:
        await catch_up(pool, conn, settings, follower, head)
        row = await request_row(conn, bounded)
        assert row["status"] == "completed" and row["new_matches"] == 8

        fresh_anvil.rpc("evm_revert", [snapshot])
        transfers(url, address, range(500, 503))  # three blocks now, not four
        chain.mine(url, 2)
        new_head = chain.block_number(url)
        await catch_up(pool, conn, settings, follower, new_head)
        for _ in range(5):
            if (await request_row(conn, bounded))["status"] == "completed":
                break
            await next_window(pool, settings)
        row = await request_row(conn, bounded)
        assert row["status"] == "completed" and row["finished_at"] is not None
        assert row["matches_removed"] == 4 and row["to_block"] == head
        expected = keys_of(chain.get_logs(url, low, head, address=address))
        assert await stored_matches(conn, subscription) == expected
        assert row["new_matches"] - row["matches_removed"] == len(expected)
        credits = await conn.fetchval("SELECT credits FROM workspaces WHERE id = $1", workspace)
        other_matches = len(await stored_matches(conn, other))
        assert credits == CREDITS - len(expected) - other_matches


async def test_a_reorg_the_walk_needs_several_steps_for_is_repaired_exactly(
    fresh_anvil: AnvilNode, conn: asyncpg.Connection, database_url: str
) -> None:
    """Forty replaced blocks, each with a match: the walk down reads 32 blocks a step."""
    url, address, low, snapshot, fork, head = replaceable_history(
        fresh_anvil, kept=range(5), replaced=range(1000, 1040)
    )
    workspace = await make_workspace(conn, credits=CREDITS)
    subscription = await create_subscription(conn, workspace, addresses=[address])
    request = await create_backfill(conn, subscription, low, head, follow=True)
    settings = window_settings(url, max_block_range=100, reorg_check_blocks=64)
    async with window_pool(database_url) as pool:
        await catch_up(pool, conn, settings, request, head)
        fresh_anvil.rpc("evm_revert", [snapshot])
        transfers(url, address, range(2000, 2045))
        new_head = chain.block_number(url)
        reports = await catch_up(pool, conn, settings, request, new_head)
        (repaired,) = [r for r in reports if r.stats.reorg_depth is not None]
        assert repaired.stats.matches_removed == 40
        assert repaired.stats.reorg_depth == head - fork + 1
        expected = keys_of(chain.get_logs(url, low, new_head, address=address))
        assert await stored_matches(conn, subscription) == expected
        credits = await conn.fetchval("SELECT credits FROM workspaces WHERE id = $1", workspace)
        assert credits == CREDITS - len(expected)


async def test_a_check_the_node_cannot_answer_scans_nothing_until_it_can(
    fresh_anvil: AnvilNode, conn: asyncpg.Connection, database_url: str
) -> None:
    """After the reorg the chain is shorter than the newest block logfill recorded: the
    node has no such block, so the check cannot tell and the window scans nothing (a
    node behind would answer the same). Once the chain is longer, the reorg is found."""
    url, address, low, snapshot, _, head = replaceable_history(
        fresh_anvil, kept=range(3), replaced=range(100, 110)
    )
    workspace = await make_workspace(conn, credits=CREDITS)
    first = await create_subscription(conn, workspace, addresses=[address])
    await create_backfill(conn, first, low, head)
    settings = window_settings(url, max_block_range=4, reorg_check_blocks=64)
    async with window_pool(database_url) as pool:
        for _ in range(5):
            await next_window(pool, settings)
        assert len(await stored_matches(conn, first)) == 13

        fresh_anvil.rpc("evm_revert", [snapshot])
        transfers(url, address, range(300, 303))
        short_head = chain.block_number(url)
        assert short_head < head
        second = await create_subscription(conn, workspace, addresses=[address])
        later = await create_backfill(conn, second, low, short_head)
        recorded = await conn.fetchval("SELECT count(*) FROM chain_blocks")
        held = await next_window(pool, settings)
        assert held.stats.errors == 1 and held.stats.reorg_depth is None
        assert held.cu_spent == 10 + 20 * recorded  # the head, and the check's headers
        assert await stored_matches(conn, second) == []
        assert await conn.fetchval("SELECT count(*) FROM reorgs") == 0

        transfers(url, address, range(400, 412))
        new_head = chain.block_number(url)
        for _ in range(10):
            report = await next_window(pool, settings)
            row = await request_row(conn, later)
            if report.stats.new_matches == 0 and row["status"] == "completed":
                break
        assert await conn.fetchval("SELECT count(*) FROM reorgs") == 1
        on_new_chain = keys_of(chain.get_logs(url, low, short_head, address=address))
        assert await stored_matches(conn, second) == on_new_chain
        assert await stored_matches(conn, first) == keys_of(
            chain.get_logs(url, low, head, address=address)
        )
        assert new_head > head
