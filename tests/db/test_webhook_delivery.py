"""Webhook delivery against a real PostgreSQL and a real aiohttp receiver on localhost.

Every request the receiver gets is checked with the independent `standardwebhooks`
package. Schedules are fast (0.2 s steps) so that retries happen within a test.
Tests about write order use subscriptions with `webhook_ordering = 'strict'`;
new subscriptions are independent by default (tests/db/test_webhook_ordering.py).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from indexer.db.pool import create_pool
from indexer.webhooks.claims import (
    ClaimedDelivery,
    Outcome,
    claim_deliveries,
    record_outcomes,
)
from indexer.webhooks.dispatcher import delivering
from indexer.webhooks.retry import Decision
from tests.support.factories import make_workspace
from tests.support.webhooks import (
    SECRET,
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

OLD_SECRET = "whsec_b2xkc2VjcmV0b2xkc2VjcmV0"


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=6, timeout=10)
    yield pool
    await pool.close()


@pytest.fixture
async def hook() -> AsyncIterator[Receiver]:
    async with receiver(secrets=[SECRET, OLD_SECRET]) as target:
        yield target


async def subscription(
    conn: asyncpg.Connection, url: str, ordering: str = "independent"
) -> uuid.UUID:
    workspace = await make_workspace(conn)
    created = await create_subscription(conn, workspace, webhook_url=url)
    return await set_ordering(conn, created, ordering)


async def statuses(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> list[str]:
    rows = await conn.fetch(
        "SELECT id, status FROM webhook_deliveries WHERE id = ANY($1::uuid[])", ids
    )
    by_id = {row["id"]: row["status"] for row in rows}
    return [by_id[i] for i in ids]


def all_in(conn: asyncpg.Connection, ids: list[uuid.UUID], status: str) -> Any:
    async def check() -> bool:
        return set(await statuses(conn, ids)) == {status}

    return check


def answers(*statuses: int, then: int = 204, **headers: str) -> Any:
    """A handler answering `statuses` in turn, then `then` for ever."""
    queue = list(statuses)

    async def handle(_: Received) -> web.StreamResponse:
        status = queue.pop(0) if queue else then
        return web.Response(status=status, text="nope" if status >= 300 else "", headers=headers)

    return handle


# ----------------------------------------------------------------------------- happy path


async def test_delivers_signed_bodies_in_order_and_records_it(
    conn: asyncpg.Connection, pool: asyncpg.Pool, hook: Receiver
) -> None:
    sub = await subscription(conn, hook.url(), "strict")
    ids = [await insert_delivery(conn, sub, events=3, first_block=10 * i) for i in range(5)]
    async with delivering(webhook_settings(), pool):
        await wait_until(all_in(conn, ids, "delivered"))
    assert [r.webhook_id for r in hook.received] == [str(i) for i in ids]  # seq order
    assert all(r.verified for r in hook.received)
    first = hook.received[0]
    assert first.headers["content-type"] == "application/json"
    assert first.payload["type"] == "backfill.matches"
    assert first.payload["subscription_id"] == str(sub)
    assert [e["block_number"] for e in first.payload["events"]] == [0, 1, 2]
    row = await delivery_row(conn, ids[0])
    assert (row["attempts"], row["last_status_code"], row["last_error"]) == (1, 204, None)
    assert row["leased_until"] is None and row["lease_token"] is None
    assert row["delivered_at"] is not None


async def test_fails_three_times_then_accepts_with_the_same_id_on_schedule(
    conn: asyncpg.Connection, pool: asyncpg.Pool, hook: Receiver
) -> None:
    hook.handlers["/hook"] = answers(500, 503, 429)
    sub = await subscription(conn, hook.url())
    delivery = await insert_delivery(conn, sub)
    async with delivering(webhook_settings(), pool):
        await wait_until(all_in(conn, [delivery], "delivered"))
    assert [r.webhook_id for r in hook.received] == [str(delivery)] * 4
    assert all(r.verified for r in hook.received)
    gaps = [b.at - a.at for a, b in zip(hook.received, hook.received[1:], strict=False)]
    for gap, scheduled in zip(gaps, (0.2, 0.4, 0.6), strict=True):
        assert scheduled - 0.05 <= gap <= scheduled + 0.5
    row = await delivery_row(conn, delivery)
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("delivered", 4, 204)


async def test_a_retrying_delivery_holds_back_the_later_ones_of_its_subscription(
    conn: asyncpg.Connection, pool: asyncpg.Pool, hook: Receiver
) -> None:
    hook.handlers["/hook"] = answers(500, 500)
    sub = await subscription(conn, hook.url(), "strict")
    first, second = [await insert_delivery(conn, sub, first_block=b) for b in (1, 2)]
    async with delivering(webhook_settings(), pool):
        await wait_until(all_in(conn, [first, second], "delivered"))
    assert [r.webhook_id for r in hook.received] == [str(first)] * 3 + [str(second)]


async def test_concurrency_per_subscription_lets_several_go_at_once(
    conn: asyncpg.Connection, pool: asyncpg.Pool, hook: Receiver
) -> None:
    both_arrived = asyncio.Event()

    async def wait_for_both(_: Received) -> web.StreamResponse:
        if len(hook.received) == 2:
            both_arrived.set()
        await asyncio.wait_for(both_arrived.wait(), 5)
        return web.Response(status=200)

    hook.handlers["/hook"] = wait_for_both
    sub = await subscription(conn, hook.url(), "strict")
    ids = [await insert_delivery(conn, sub, first_block=b) for b in (1, 2, 3)]
    settings = webhook_settings(webhook_concurrency_per_subscription=2)
    async with delivering(settings, pool):
        await wait_until(all_in(conn, ids, "delivered"))
    assert Counter(r.webhook_id for r in hook.received) == {str(i): 1 for i in ids}


# ----------------------------------------------------------------------------- failures


async def test_a_slow_receiver_times_out_without_blocking_others(
    conn: asyncpg.Connection, pool: asyncpg.Pool, hook: Receiver
) -> None:
    async def slow(_: Received) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.Response(status=200)

    hook.handlers["/slow"] = slow
    slow_delivery = await insert_delivery(conn, await subscription(conn, hook.url("/slow")))
    fast_sub = await subscription(conn, hook.url())
    fast = [await insert_delivery(conn, fast_sub, first_block=b) for b in range(5)]
    settings = webhook_settings(webhook_retry_schedule=(0, 30))
    async with delivering(settings, pool):
        await hook.wait_for(1, "/slow")
        await wait_until(all_in(conn, fast, "delivered"), timeout=0.9)  # while /slow hangs
        assert await statuses(conn, [slow_delivery]) == ["pending"]

        async def timed_out() -> bool:
            row = await delivery_row(conn, slow_delivery)
            return row["last_error"] is not None

        await wait_until(timed_out, timeout=3)
    row = await delivery_row(conn, slow_delivery)
    assert row["last_error"] == "timeout: no answer within 1.0 s"
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("pending", 1, None)


async def test_a_redirect_is_not_followed(
    conn: asyncpg.Connection, pool: asyncpg.Pool, hook: Receiver
) -> None:
    hook.handlers["/hook"] = answers(then=302, location=hook.url("/elsewhere"))
    delivery = await insert_delivery(conn, await subscription(conn, hook.url()))
    async with delivering(webhook_settings(webhook_retry_schedule=(0, 30)), pool):
        await hook.wait_for(1)

        async def recorded() -> bool:
            row = await delivery_row(conn, delivery)
            return bool(row["last_status_code"] == 302)

        await wait_until(recorded)
    assert hook.at("/elsewhere") == []
    row = await delivery_row(conn, delivery)
    assert row["status"] == "pending"
    assert row["last_error"] == f"HTTP 302: redirect to {hook.url('/elsewhere')} not followed"


async def test_dead_after_the_last_attempt_and_sent_again_after_a_retry(
    conn: asyncpg.Connection, pool: asyncpg.Pool, hook: Receiver
) -> None:
    hook.handlers["/hook"] = answers(500, 500, 500)
    delivery = await insert_delivery(conn, await subscription(conn, hook.url()))
    async with delivering(webhook_settings(webhook_retry_schedule=(0, 0.1, 0.1)), pool):
        await wait_until(all_in(conn, [delivery], "dead"))
        row = await delivery_row(conn, delivery)
        assert row["attempts"] == 3
        assert row["last_error"] == "HTTP 500: nope (gave up after 3 attempts)"
        # What POST /v1/deliveries/{id}/retry does (indexer/sql/api.sql, retry_delivery).
        await conn.execute(
            """UPDATE webhook_deliveries SET status = 'pending', attempts = 0,
                   next_attempt_at = now(), leased_until = NULL
               WHERE id = $1 AND status = 'dead'""",
            delivery,
        )
        await wait_until(all_in(conn, [delivery], "delivered"))
    assert [r.webhook_id for r in hook.received] == [str(delivery)] * 4
    assert (await delivery_row(conn, delivery))["attempts"] == 1


async def test_410_gone_disables_the_subscriptions_webhook(
    conn: asyncpg.Connection, pool: asyncpg.Pool, hook: Receiver
) -> None:
    hook.handlers["/hook"] = answers(410)
    sub = await subscription(conn, hook.url(), "strict")
    gone, after = [await insert_delivery(conn, sub, first_block=b) for b in (1, 2)]
    async with delivering(webhook_settings(), pool):
        await wait_until(all_in(conn, [gone, after], "dead"))
    assert len(hook.received) == 1  # nothing more is sent to a receiver that said 410
    subscription_row = await conn.fetchrow("SELECT * FROM subscriptions WHERE id = $1", sub)
    assert subscription_row is not None
    assert subscription_row["webhook_disabled_at"] is not None
    assert subscription_row["webhook_disabled_reason"] == "receiver answered 410 Gone"
    assert (await delivery_row(conn, gone))["last_status_code"] == 410
    assert (await delivery_row(conn, after))["last_error"] == (
        "webhook disabled: receiver answered 410 Gone"
    )


# ----------------------------------------------------------------------------- secrets


@pytest.mark.parametrize(("expires_in", "signatures"), [("1 hour", 2), ("-1 second", 1)])
async def test_a_rotated_secret_signs_too_during_its_grace_period(
    conn: asyncpg.Connection, pool: asyncpg.Pool, expires_in: str, signatures: int
) -> None:
    async with receiver(secrets=[OLD_SECRET]) as old_only:
        sub = await subscription(conn, old_only.url())
        await conn.execute(
            """UPDATE subscriptions SET previous_webhook_secret = $2,
                   previous_secret_expires_at = now() + $3::text::interval WHERE id = $1""",
            sub,
            OLD_SECRET,
            expires_in,
        )
        delivery = await insert_delivery(conn, sub)
        async with delivering(webhook_settings(), pool):
            await wait_until(all_in(conn, [delivery], "delivered"))
        (received,) = old_only.received
    assert len(received.headers["webhook-signature"].split(" ")) == signatures
    assert received.verified == (signatures == 2)  # the old secret alone verifies in grace
    assert receiver_verifies(received, SECRET)


def receiver_verifies(received: Received, secret: str) -> bool:
    return Receiver(secrets=[secret]).verify(received.body, received.headers)


# ----------------------------------------------------------------------------- workers


async def test_two_workers_deliver_every_row_once_in_order(
    conn: asyncpg.Connection, database_url: str, hook: Receiver
) -> None:
    subs = [await subscription(conn, hook.url(f"/s{i}"), "strict") for i in range(6)]
    ids = {sub: [await insert_delivery(conn, sub, first_block=b) for b in range(8)] for sub in subs}
    pools = [await create_pool(database_url, min_size=1, max_size=4) for _ in range(2)]
    try:
        async with (
            delivering(webhook_settings(), pools[0]),
            delivering(webhook_settings(), pools[1]),
        ):
            await wait_until(all_in(conn, [i for rows in ids.values() for i in rows], "delivered"))
    finally:
        for p in pools:
            await p.close()
    assert Counter(r.webhook_id for r in hook.received) == {
        str(i): 1 for rows in ids.values() for i in rows
    }
    for n, sub in enumerate(subs):
        assert [r.webhook_id for r in hook.at(f"/s{n}")] == [str(i) for i in ids[sub]]
    assert all(r.verified for r in hook.received)


async def test_claims_keep_order_and_leases(conn: asyncpg.Connection, pool: asyncpg.Pool) -> None:
    sub = await subscription(conn, "http://127.0.0.1:9/hook", "strict")
    first, second = [await insert_delivery(conn, sub, first_block=b) for b in (1, 2)]

    async def claim(per_subscription: int = 1) -> list[uuid.UUID]:
        claimed = await claim_deliveries(
            pool,
            limit=10,
            strict_per_subscription=per_subscription,
            independent_per_subscription=8,
            lease_seconds=30,
        )
        return [c.id for c in claimed]

    assert await claim() == [first]
    assert await claim() == []  # leased: nothing, and not the second either
    await conn.execute("UPDATE webhook_deliveries SET leased_until = now() - interval '1s'")
    assert await claim() == [first]  # a dead worker's lease has run out
    assert (await delivery_row(conn, first))["attempts"] == 2
    assert await claim(per_subscription=2) == [second]
    await conn.execute(
        "UPDATE webhook_deliveries SET leased_until = NULL, next_attempt_at = now() + "
        "interval '1 hour' WHERE id = $1",
        first,
    )
    assert await claim() == []  # the first waits for its retry, the second waits for it


async def test_an_outcome_is_not_recorded_once_the_lease_is_lost(
    conn: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    sub = await subscription(conn, "http://127.0.0.1:9/hook")
    delivery = await insert_delivery(conn, sub)
    (stale,) = await claim_one(pool)
    await conn.execute("UPDATE webhook_deliveries SET leased_until = now() - interval '1s'")
    (fresh,) = await claim_one(pool)
    assert stale.lease_token != fresh.lease_token
    recorded = await record_outcomes(pool, [Outcome(stale, Decision("delivered"), 200)])
    assert recorded == set()
    assert (await delivery_row(conn, delivery))["status"] == "pending"
    failed = Decision("pending", retry_in=60, error="HTTP 500")
    assert await record_outcomes(pool, [Outcome(fresh, failed, 500)]) == {delivery}
    row = await delivery_row(conn, delivery)
    assert (row["status"], row["last_error"], row["lease_token"]) == ("pending", "HTTP 500", None)


async def claim_one(pool: asyncpg.Pool) -> list[ClaimedDelivery]:
    return await claim_deliveries(
        pool,
        limit=1,
        strict_per_subscription=1,
        independent_per_subscription=1,
        lease_seconds=30,
    )
