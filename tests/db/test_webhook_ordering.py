"""Webhook ordering: independent deliveries by default, strict order when a subscription asks.

A real PostgreSQL, real delivery loops and a real aiohttp receiver that verifies
every Standard Webhooks signature. Schedules are fast so that retries happen
within a test; what is asserted is the mechanism (a delivery waiting for its
retry holds back nothing of an independent subscription), not a speed: the
drain time under default settings is measured by bench/webhook_drain.py.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import asyncpg
import pytest
from aiohttp import web

from indexer.db.migrate import load_migrations, migrate
from indexer.db.pool import connect, create_pool
from indexer.webhooks.claims import Outcome, claim_deliveries, record_outcomes
from indexer.webhooks.dispatcher import delivering
from indexer.webhooks.retry import Decision
from tests.support.factories import make_workspace
from tests.support.webhooks import (
    Received,
    Receiver,
    delivery_row,
    insert_delivery,
    receiver,
    set_ordering,
    wait_until,
    webhook_settings,
)
from tests.support.window import create_subscription


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=6, timeout=10)
    yield pool
    await pool.close()


@pytest.fixture
async def hook() -> AsyncIterator[Receiver]:
    async with receiver() as target:
        yield target


async def subscription(
    conn: asyncpg.Connection, url: str, ordering: str | None = None
) -> uuid.UUID:
    """A webhook subscription; `ordering` None leaves the schema's default."""
    created = await create_subscription(conn, await make_workspace(conn), webhook_url=url)
    return created if ordering is None else await set_ordering(conn, created, ordering)


async def all_settled(conn: asyncpg.Connection, ids: list[uuid.UUID], status: str) -> bool:
    count = await conn.fetchval(
        "SELECT count(*) FROM webhook_deliveries WHERE id = ANY($1::uuid[]) AND status = $2",
        ids,
        status,
    )
    return bool(count == len(ids))


# ----------------------------------------------------------------------------- independent


async def test_new_subscriptions_are_independent(conn: asyncpg.Connection) -> None:
    sub = await subscription(conn, "https://hooks.example.com/h")
    ordering = await conn.fetchval("SELECT webhook_ordering FROM subscriptions WHERE id = $1", sub)
    assert ordering == "independent"


async def test_a_retrying_delivery_does_not_hold_back_the_later_ones_by_default(
    conn: asyncpg.Connection, pool: asyncpg.Pool, hook: Receiver
) -> None:
    failed_once: set[str] = set()

    async def first_attempt_of_the_first_fails(received: Received) -> web.StreamResponse:
        if received.webhook_id == str(first) and not failed_once:
            failed_once.add(received.webhook_id)
            return web.Response(status=500, text="flaky")
        return web.Response(status=204)

    hook.handlers["/hook"] = first_attempt_of_the_first_fails
    sub = await subscription(conn, hook.url())
    first, second, third = [await insert_delivery(conn, sub, first_block=b) for b in (1, 2, 3)]
    settings = webhook_settings(webhook_retry_schedule=(0, 1.0))
    async with delivering(settings, pool):
        await wait_until(lambda: all_settled(conn, [first, second, third], "delivered"))
    sent = [r.webhook_id for r in hook.received]
    assert Counter(sent) == {str(first): 2, str(second): 1, str(third): 1}
    assert sent[-1] == str(first)  # its retry came last: the others did not wait for it
    rows = {i: await delivery_row(conn, i) for i in (first, second, third)}
    assert rows[second]["delivered_at"] < rows[first]["delivered_at"]
    assert rows[third]["delivered_at"] < rows[first]["delivered_at"]
    assert (rows[first]["attempts"], rows[second]["attempts"]) == (2, 1)
    assert all(r.verified for r in hook.received)


@dataclass
class FlakyReceiver:
    """Fails a seeded random share of attempts with 500; processes each webhook-id once.

    Like a receiver built by the README: verify, then deduplicate on `webhook-id`
    (a repeat is acknowledged and not processed again).
    """

    fail_rate: float
    rng: random.Random
    processed: dict[str, float] = field(default_factory=dict)  # webhook-id -> when
    events: Counter[str] = field(default_factory=Counter)  # event id -> times processed
    failures: list[tuple[str, float]] = field(default_factory=list)  # (webhook-id, when)
    repeats: int = 0

    async def __call__(self, received: Received) -> web.StreamResponse:
        if not received.verified:
            return web.Response(status=400, text="bad signature")
        if received.webhook_id in self.processed:
            self.repeats += 1
            return web.Response(status=204)
        if self.rng.random() < self.fail_rate:
            self.failures.append((received.webhook_id, received.at))
            return web.Response(status=500, text="flaky")
        self.processed[received.webhook_id] = received.at
        self.events.update(event["id"] for event in received.payload["events"])
        return web.Response(status=204)


async def test_a_receiver_failing_one_attempt_in_ten_gets_all_4000_events_once_without_stalls(
    conn: asyncpg.Connection, database_url: str, hook: Receiver
) -> None:
    flaky = FlakyReceiver(fail_rate=0.1, rng=random.Random(20240613))
    hook.handlers["/hook"] = flaky
    sub = await subscription(conn, hook.url())
    ids = [await insert_delivery(conn, sub, events=20, first_block=20 * n) for n in range(200)]
    # Retries after a second: long next to an attempt (milliseconds), so a row that
    # waited behind a retry would show; eight attempts, so none dies of bad luck.
    settings = webhook_settings(webhook_retry_schedule=(0, *[1.0] * 7))
    async with AsyncExitStack() as stack:
        for _ in range(2):  # two workers share the outbox
            worker_pool = await create_pool(database_url, min_size=1, max_size=3)
            stack.push_async_callback(worker_pool.close)
            await stack.enter_async_context(delivering(settings, worker_pool))
        await wait_until(lambda: all_settled(conn, ids, "delivered"), timeout=60)

    assert len(flaky.events) == 4000 and set(flaky.events.values()) == {1}  # each event once
    assert set(flaky.processed) == {str(i) for i in ids}
    assert flaky.repeats == 0  # no delivered row was ever sent again
    assert all(r.verified for r in hook.received)
    assert flaky.failures  # one in ten of 200 rows: some certainly failed
    # Independence: while the first failed row waited for its retry, later rows of
    # the same subscription were delivered (strict order would have held them all).
    failed_id, failed_at = flaky.failures[0]
    retried_at = min(r.at for r in hook.received if r.webhook_id == failed_id and r.at > failed_at)
    seq = {str(i): n for n, i in enumerate(ids)}
    overtook = [
        webhook_id
        for webhook_id, at in flaky.processed.items()
        if failed_at < at < retried_at and seq[webhook_id] > seq[failed_id]
    ]
    assert overtook
    attempts = await conn.fetch(
        "SELECT attempts FROM webhook_deliveries WHERE id = ANY($1::uuid[])", ids
    )
    assert sum(r["attempts"] for r in attempts) == len(ids) + len(flaky.failures)


async def test_independent_deliveries_in_flight_are_bounded_per_subscription(
    conn: asyncpg.Connection, pool: asyncpg.Pool, hook: Receiver
) -> None:
    in_flight: Counter[str] = Counter()
    most: Counter[str] = Counter()

    async def slow(received: Received) -> web.StreamResponse:
        in_flight[received.path] += 1
        most[received.path] = max(most[received.path], in_flight[received.path])
        await asyncio.sleep(0.1)
        in_flight[received.path] -= 1
        return web.Response(status=204)

    hook.handlers["/a"] = hook.handlers["/b"] = slow
    subs = [await subscription(conn, hook.url(path)) for path in ("/a", "/b")]
    ids = [await insert_delivery(conn, sub, first_block=b) for sub in subs for b in range(9)]
    settings = webhook_settings(webhook_max_in_flight_per_subscription=3)
    async with delivering(settings, pool):
        await wait_until(lambda: all_settled(conn, ids, "delivered"))
    assert most == {"/a": 3, "/b": 3}  # concurrent, never more than the bound


async def test_a_receiver_down_for_good_ends_dead_on_the_schedule(
    conn: asyncpg.Connection, pool: asyncpg.Pool, hook: Receiver
) -> None:
    async def down(_: Received) -> web.StreamResponse:
        return web.Response(status=503, text="down")

    hook.handlers["/hook"] = down
    sub = await subscription(conn, hook.url())
    ids = [await insert_delivery(conn, sub, first_block=b) for b in range(4)]
    schedule = (0, 0.3, 0.6)
    async with delivering(webhook_settings(webhook_retry_schedule=schedule), pool):
        await wait_until(lambda: all_settled(conn, ids, "dead"))
    for delivery in ids:
        times = [r.at for r in hook.received if r.webhook_id == str(delivery)]
        assert len(times) == len(schedule)
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        for gap, scheduled in zip(gaps, schedule[1:], strict=True):
            assert scheduled - 0.05 <= gap <= scheduled + 0.5
        row = await delivery_row(conn, delivery)
        assert row["last_error"] == "HTTP 503: down (gave up after 3 attempts)"
    # Each row on its own schedule, side by side: not one after the other.
    firsts = sorted(min(r.at for r in hook.received if r.webhook_id == str(d)) for d in ids)
    assert firsts[-1] - firsts[0] < schedule[1]


async def test_410_stops_an_independent_subscription_within_its_in_flight_bound(
    conn: asyncpg.Connection, pool: asyncpg.Pool, hook: Receiver
) -> None:
    async def gone(_: Received) -> web.StreamResponse:
        return web.Response(status=410)

    hook.handlers["/hook"] = gone
    sub = await subscription(conn, hook.url())
    ids = [await insert_delivery(conn, sub, first_block=b) for b in range(10)]
    settings = webhook_settings(webhook_max_in_flight_per_subscription=2)
    async with delivering(settings, pool):
        await wait_until(lambda: all_settled(conn, ids, "dead"))
    assert len(hook.received) <= 2  # those in flight when the first 410 came, no more
    reason = await conn.fetchval(
        "SELECT webhook_disabled_reason FROM subscriptions WHERE id = $1", sub
    )
    assert reason == "receiver answered 410 Gone"


async def test_independent_claims_skip_rows_waiting_for_a_retry_up_to_the_bound(
    conn: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    sub = await subscription(conn, "http://127.0.0.1:9/hook")
    a, b, c, d = [await insert_delivery(conn, sub, first_block=n) for n in range(4)]

    async def claim() -> list[uuid.UUID]:
        claimed = await claim_deliveries(
            pool,
            limit=10,
            strict_per_subscription=1,
            independent_per_subscription=2,
            lease_seconds=30,
        )
        return [delivery.id for delivery in claimed]

    (first, second) = await claim_deliveries(
        pool, limit=10, strict_per_subscription=1, independent_per_subscription=2, lease_seconds=30
    )
    assert [first.id, second.id] == [a, b]  # oldest first, two at most
    assert await claim() == []  # the bound: two in flight
    failed = Decision("pending", retry_in=3600, error="HTTP 500")
    assert await record_outcomes(pool, [Outcome(first, failed, 500)]) == {a}
    assert await claim() == [c]  # a waits for its retry and holds back nothing
    await conn.execute("UPDATE webhook_deliveries SET leased_until = now() - interval '1s'")
    assert await claim() == [b, c]  # expired leases are free again; a still waits
    assert (await delivery_row(conn, b))["attempts"] == 2
    await conn.execute(
        "UPDATE webhook_deliveries SET status = 'delivered', delivered_at = now(), "
        "leased_until = NULL WHERE id = ANY($1::uuid[])",
        [b, c],
    )
    assert await claim() == [d]  # slots freed by finished rows go to the next due one


# ----------------------------------------------------------------------------- strict


async def test_a_strict_subscription_keeps_block_order_through_a_flaky_receiver(
    conn: asyncpg.Connection, pool: asyncpg.Pool, hook: Receiver
) -> None:
    flaky = FlakyReceiver(fail_rate=0.3, rng=random.Random(7))
    hook.handlers["/hook"] = flaky
    sub = await subscription(conn, hook.url(), "strict")
    ids = [await insert_delivery(conn, sub, first_block=b) for b in range(12)]
    settings = webhook_settings(webhook_retry_schedule=(0, *[0.05] * 9))
    async with delivering(settings, pool):
        await wait_until(lambda: all_settled(conn, ids, "delivered"))
    assert list(flaky.processed) == [str(i) for i in ids]  # processed in write order
    order = [r.webhook_id for r in hook.received]
    assert list(dict.fromkeys(order)) == [str(i) for i in ids]  # never sent ahead


# ----------------------------------------------------------------------------- migration


async def test_subscriptions_made_before_the_migration_keep_strict_order(
    empty_database_url: str,
) -> None:
    migrations = load_migrations()
    before = [m for m in migrations if m.version < 7]
    conn = await connect(empty_database_url)
    try:
        await migrate(conn, before)
        old = await subscription(conn, "https://hooks.example.com/old")
        await migrate(conn, migrations)
        new = await subscription(conn, "https://hooks.example.com/new")
        rows = await conn.fetch(
            "SELECT id, webhook_ordering FROM subscriptions WHERE id = ANY($1::uuid[])",
            [old, new],
        )
    finally:
        await conn.close()
    assert {r["id"]: r["webhook_ordering"] for r in rows} == {old: "strict", new: "independent"}
