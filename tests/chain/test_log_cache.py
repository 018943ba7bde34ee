"""The chain's log cache: blocks fetched for one filter serve later requests at no CU.

Real anvil (the session's log corpus: topics of every length, anonymous logs, empty
blocks), real PostgreSQL; each test starts with an empty cache (a fresh database).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from indexer.backfills import BackfillSpec, dry_run
from indexer.settings import Settings
from indexer.window.run import WindowReport
from tests.support import anvil as chain
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

# A Transfer's third topic when it goes to the corpus's third pool address.
TO_POOL_2 = "0x" + "00" * 12 + chain.POOL_ADDRESSES[2][2:].lower()


def get_logs_cu(reports: Sequence[WindowReport], settings: Settings) -> int:
    """CU the windows paid for eth_getLogs (each window also reads the heads once)."""
    head_cu = settings.chains[1].head_read_cu()
    return sum(r.cu_spent for r in reports) - len(reports) * head_cu


def on(corpus: LogCorpus, shape: dict[str, Any]) -> dict[str, Any]:
    """A filter shape (contract numbers, topics) as the corpus's addresses and topics."""
    addresses = [corpus.contracts[i] for i in shape.get("addresses", [])]
    return {"addresses": addresses, "topics": shape.get("topics", [])}


def full_scan(corpus: LogCorpus, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """What eth_getLogs returns for the filter over the whole corpus."""
    return chain.get_logs(
        corpus.url,
        corpus.from_block,
        corpus.to_block,
        address=spec["addresses"] or None,
        topics=spec["topics"] or None,
    )


async def request_row(conn: asyncpg.Connection, request: uuid.UUID) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM backfill_requests WHERE id = $1", request)
    assert row is not None
    return row


async def backfill_alone(
    pool: asyncpg.Pool,
    settings: Settings,
    conn: asyncpg.Connection,
    corpus: LogCorpus,
    *,
    addresses: Sequence[str] = (),
    topics: Sequence[Any] = (),
    low: int | None = None,
    high: int | None = None,
    order: str = "asc",
) -> tuple[uuid.UUID, uuid.UUID, list[WindowReport]]:
    """A new workspace's subscription and one request, run until settled."""
    workspace = await make_workspace(conn, credits=100_000)
    subscription = await create_subscription(conn, workspace, addresses=addresses, topics=topics)
    low = corpus.from_block if low is None else low
    high = corpus.to_block if high is None else high
    request = await create_backfill(conn, subscription, low, high, order=order)
    reports = await run_until_settled(pool, settings, [request])
    return subscription, request, reports


async def test_the_same_filter_again_is_served_from_the_cache_exactly_and_for_no_cu(
    log_corpus: LogCorpus, conn: asyncpg.Connection, database_url: str
) -> None:
    corpus = log_corpus
    settings = window_settings(corpus.url, max_block_range=7)
    address = corpus.contracts[0]
    expected = keys_of(
        chain.get_logs(corpus.url, corpus.from_block, corpus.to_block, address=address)
    )

    async with window_pool(database_url) as pool:
        _, _, first = await backfill_alone(pool, settings, conn, corpus, addresses=[address])
        subscription, request, again = await backfill_alone(
            pool, settings, conn, corpus, addresses=[address]
        )

    assert get_logs_cu(first, settings) > 0
    assert get_logs_cu(again, settings) == 0
    assert sum(r.stats.logs_fetched for r in again) == 0
    assert await stored_matches(conn, subscription) == expected
    row = await request_row(conn, request)
    assert row["status"] == "completed" and row["cursor"] is None
    assert row["blocks_scanned"] == corpus.to_block - corpus.from_block + 1
    # a new subscription's matches: new to it, charged to its workspace
    assert row["new_matches"] == row["credits_charged"] == len(expected)
    credits = await conn.fetchval(
        "SELECT w.credits FROM workspaces w JOIN subscriptions s ON s.workspace_id = w.id"
        " WHERE s.id = $1",
        subscription,
    )
    assert credits == 100_000 - len(expected)


@pytest.mark.parametrize(
    ("wider", "narrower"),
    [
        pytest.param({"addresses": [0, 1]}, {"addresses": [1]}, id="one-of-the-addresses"),
        pytest.param(
            {"addresses": [0, 1]},
            {"addresses": [0], "topics": [[chain.TOPIC_TRANSFER, chain.TOPIC_NOTE]]},
            id="an-address-and-some-events",
        ),
        pytest.param({}, {"topics": [[chain.TOPIC_APPROVAL]]}, id="any-address-then-one-event"),
        pytest.param(
            {"topics": [[chain.TOPIC_TRANSFER]]},
            {"addresses": [2], "topics": [[chain.TOPIC_TRANSFER], None, [TO_POOL_2]]},
            id="three-topic-positions-within-one",
        ),
    ],
)
async def test_a_narrower_filter_is_served_from_a_wider_ones_cache(
    log_corpus: LogCorpus,
    conn: asyncpg.Connection,
    database_url: str,
    wider: dict[str, Any],
    narrower: dict[str, Any],
) -> None:
    corpus = log_corpus
    settings = window_settings(corpus.url, max_block_range=7)

    async with window_pool(database_url) as pool:
        await backfill_alone(pool, settings, conn, corpus, **on(corpus, wider))
        subscription, _, reports = await backfill_alone(
            pool, settings, conn, corpus, **on(corpus, narrower)
        )

    raw = full_scan(corpus, on(corpus, narrower))
    assert raw, "the narrower filter matches something"
    assert get_logs_cu(reports, settings) == 0
    assert await stored_matches(conn, subscription) == keys_of(raw)


@pytest.mark.parametrize(
    ("first", "then"),
    [
        pytest.param({"addresses": [1]}, {"addresses": [0, 1]}, id="more-addresses"),
        pytest.param({"topics": [[chain.TOPIC_TRANSFER]]}, {}, id="any-log"),
        pytest.param(
            {"topics": [[chain.TOPIC_TRANSFER], None, [TO_POOL_2]]},
            {"topics": [[chain.TOPIC_TRANSFER]]},
            id="fewer-topic-positions",
        ),
    ],
)
async def test_a_wider_filter_is_not_served_from_a_narrower_ones_cache(
    log_corpus: LogCorpus,
    conn: asyncpg.Connection,
    database_url: str,
    first: dict[str, Any],
    then: dict[str, Any],
) -> None:
    corpus = log_corpus
    settings = window_settings(corpus.url, max_block_range=7)

    async with window_pool(database_url) as pool:
        _, _, alone = await backfill_alone(pool, settings, conn, corpus, **on(corpus, first))
        subscription, _, reports = await backfill_alone(
            pool, settings, conn, corpus, **on(corpus, then)
        )

    raw = full_scan(corpus, on(corpus, then))
    assert get_logs_cu(reports, settings) == get_logs_cu(alone, settings)
    assert await stored_matches(conn, subscription) == keys_of(raw)


async def test_a_rescan_of_a_cached_range_costs_no_cu_and_charges_nothing(
    log_corpus: LogCorpus, conn: asyncpg.Connection, database_url: str
) -> None:
    corpus = log_corpus
    settings = window_settings(corpus.url, max_block_range=7)
    address = corpus.contracts[2]
    async with window_pool(database_url) as pool:
        subscription, _, _ = await backfill_alone(pool, settings, conn, corpus, addresses=[address])
        credits = await conn.fetchval(
            "SELECT w.credits FROM workspaces w JOIN subscriptions s ON s.workspace_id = w.id"
            " WHERE s.id = $1",
            subscription,
        )
        rescan = await create_backfill(
            conn, subscription, corpus.from_block, corpus.to_block, rescan=True
        )
        reports = await run_until_settled(pool, settings, [rescan])

    expected = keys_of(
        chain.get_logs(corpus.url, corpus.from_block, corpus.to_block, address=address)
    )
    assert get_logs_cu(reports, settings) == 0
    row = await request_row(conn, rescan)
    assert row["status"] == "completed"
    assert (row["matches"], row["duplicate_matches"], row["new_matches"]) == (
        len(expected),
        len(expected),
        0,
    )
    assert await stored_matches(conn, subscription) == expected
    assert (
        await conn.fetchval(
            "SELECT w.credits FROM workspaces w JOIN subscriptions s ON s.workspace_id = w.id"
            " WHERE s.id = $1",
            subscription,
        )
        == credits
    )


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("max_matches_per_commit", [10_000, 3])
async def test_only_the_blocks_the_cache_lacks_are_called_for(
    log_corpus: LogCorpus,
    conn: asyncpg.Connection,
    database_url: str,
    order: str,
    max_matches_per_commit: int,
) -> None:
    """A request over a range the cache holds in its middle: the provider is asked for
    the blocks around it only, the middle is read from the cache (in whole-block
    commits of a few logs each too), and the result is a full scan's."""
    corpus = log_corpus
    settings = window_settings(
        corpus.url, max_block_range=5, max_matches_per_commit=max_matches_per_commit
    )
    address = corpus.contracts[0]
    third = (corpus.to_block - corpus.from_block) // 3
    middle = (corpus.from_block + third, corpus.to_block - third)
    async with window_pool(database_url) as pool:
        await backfill_alone(
            pool, settings, conn, corpus, addresses=[address], low=middle[0], high=middle[1]
        )
        subscription, request, reports = await backfill_alone(
            pool, settings, conn, corpus, addresses=[address], order=order
        )

    everything = chain.get_logs(corpus.url, corpus.from_block, corpus.to_block, address=address)
    inside = [r for r in everything if middle[0] <= int(r["blockNumber"], 16) <= middle[1]]
    assert inside and len(inside) < len(everything)
    assert sum(r.stats.logs_fetched for r in reports) == len(everything) - len(inside)
    assert sum(r.stats.logs_cached for r in reports) == len(inside)
    assert await stored_matches(conn, subscription) == keys_of(everything)
    row = await request_row(conn, request)
    assert row["status"] == "completed" and row["new_matches"] == len(everything)


async def test_twenty_requests_arriving_one_window_apart_cost_what_one_costs(
    log_corpus: LogCorpus, conn: asyncpg.Connection, database_url: str
) -> None:
    """Each request arrives while the ones before it are still scanning: what they
    fetched is read from the cache, the rest is shared with them. eth_getLogs CU in
    all stays within 1.1 x one request's (each window also reads the head once)."""
    corpus = log_corpus
    head_cu = window_settings(corpus.url).chains[1].head_read_cu()
    # A window affords 2 calls: one request needs several windows.
    settings = window_settings(corpus.url, max_block_range=3, window_budget_cu=head_cu + 120)
    async with window_pool(database_url) as pool:
        _, _, alone = await backfill_alone(
            pool, settings, conn, corpus, addresses=[corpus.contracts[1]]
        )
        one_request = get_logs_cu(alone, settings)
        assert len(alone) > 3
        workspaces = [await make_workspace(conn, credits=100_000) for _ in range(5)]
        requests, reports = [], []
        for i in range(20):
            subscription = await create_subscription(
                conn, workspaces[i % 5], addresses=[corpus.contracts[0]]
            )
            requests.append(
                await create_backfill(conn, subscription, corpus.from_block, corpus.to_block)
            )
            reports.append(await next_window(pool, settings))
        reports += await run_until_settled(pool, settings, requests)

    assert get_logs_cu(reports, settings) <= 1.1 * one_request, (
        get_logs_cu(reports, settings),
        one_request,
    )
    statuses = await conn.fetch(
        "SELECT status, count(*) FROM backfill_requests WHERE id = ANY($1::uuid[]) GROUP BY 1",
        requests,
    )
    assert [tuple(r) for r in statuses] == [("completed", 20)]
    expected = keys_of(
        chain.get_logs(corpus.url, corpus.from_block, corpus.to_block, address=corpus.contracts[0])
    )
    subscriptions = await conn.fetch(
        "SELECT subscription_id FROM backfill_requests WHERE id = ANY($1::uuid[])", requests
    )
    for row in subscriptions:
        assert await stored_matches(conn, row["subscription_id"]) == expected


async def test_the_dry_run_counts_cached_blocks_as_free(
    log_corpus: LogCorpus, conn: asyncpg.Connection, database_url: str
) -> None:
    corpus = log_corpus
    settings = window_settings(corpus.url, max_block_range=7)
    address = corpus.contracts[1]
    middle = (corpus.from_block + 10, corpus.from_block + 19)
    async with window_pool(database_url) as pool:
        await backfill_alone(
            pool, settings, conn, corpus, addresses=[address], low=middle[0], high=middle[1]
        )
    workspace = await make_workspace(conn, credits=100_000)
    narrower = await create_subscription(
        conn, workspace, addresses=[address], topics=[[chain.TOPIC_NOTE]]
    )
    wider = await create_subscription(conn, workspace, addresses=corpus.contracts[:2])

    async def estimate(subscription: uuid.UUID, low: int, high: int) -> Any:
        spec = BackfillSpec(subscription, from_block=low, to_block=high)
        return await dry_run(conn, workspace, spec, settings.chains, now=datetime.now(UTC))

    inside = await estimate(narrower, *middle)
    assert (inside.cached_blocks, inside.estimated_calls, inside.estimated_cu) == (10, 0, 0)
    around = await estimate(narrower, middle[0] - 5, middle[1] + 9)
    assert around.cached_blocks == 10
    assert around.estimated_calls == 2  # 5 + 9 blocks left, 7 blocks a call
    not_covered = await estimate(wider, *middle)
    assert not_covered.cached_blocks == 0 and not_covered.estimated_calls == 2
