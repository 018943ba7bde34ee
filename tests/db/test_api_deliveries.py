"""POST /v1/deliveries/{id}/retry: refused with the reason while the webhook cannot be reached.

A retry the delivery job would mark dead again at once is a 409 that says what
to fix; once the owner has fixed it, the retry is delivered.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp import web

from indexer.db.pool import create_pool
from indexer.webhooks.dispatcher import delivering
from tests.support.api import Tenant, body, create_subscription, expect_problem, serve
from tests.support.webhooks import (
    Received,
    delivery_row,
    insert_delivery,
    receiver,
    wait_until,
    webhook_settings,
)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=4, timeout=10)
    yield pool
    await pool.close()


def status_is(conn: asyncpg.Connection, delivery: uuid.UUID, status: str) -> object:
    async def check() -> bool:
        return bool((await delivery_row(conn, delivery))["status"] == status)

    return check


async def test_a_delivery_whose_webhook_was_disabled_is_retried_only_after_it_is_set_again(
    database_url: str, conn: asyncpg.Connection, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    gone = [410]  # the receiver says Gone once (which disables the webhook), then accepts

    async def answer(_: Received) -> web.StreamResponse:
        return web.Response(status=gone.pop() if gone else 204)

    async with (
        receiver() as hook,
        serve(database_url, webhook_allow_private=True) as client,
    ):
        hook.handlers["/hook"] = answer
        sub = await create_subscription(client, tenant, webhook_url=hook.url())
        delivery = await insert_delivery(conn, uuid.UUID(sub["id"]))
        async with delivering(webhook_settings(), pool):
            await wait_until(status_is(conn, delivery, "dead"))  # type: ignore[arg-type]

        retry = f"/v1/deliveries/{delivery}/retry"
        problem = await expect_problem(
            await client.post(retry, headers=tenant.headers), 409, "webhook-disabled"
        )
        assert problem["webhook_disabled_reason"] == "receiver answered 410 Gone"
        assert "410 Gone" in problem["detail"] and "PATCH" in problem["detail"]
        assert (await delivery_row(conn, delivery))["status"] == "dead"  # left as it was

        patched = await client.patch(
            f"/v1/subscriptions/{sub['id']}",
            json={"webhook_url": hook.url()},
            headers=tenant.headers,
        )
        assert patched.status == 200, await body(patched)
        retried = await client.post(retry, headers=tenant.headers)
        assert (retried.status, (await body(retried))["status"]) == (200, "pending")
        async with delivering(webhook_settings(), pool):
            await wait_until(status_is(conn, delivery, "delivered"))  # type: ignore[arg-type]
    assert [r.webhook_id for r in hook.received] == [str(delivery)] * 2


async def test_a_delivery_whose_webhook_was_removed_is_not_retried(
    database_url: str, conn: asyncpg.Connection, tenant: Tenant
) -> None:
    async with serve(database_url) as client:
        sub = await create_subscription(client, tenant, webhook_url="https://hooks.example.com/x")
        delivery = await insert_delivery(conn, uuid.UUID(sub["id"]))
        await conn.execute("UPDATE webhook_deliveries SET status = 'dead' WHERE id = $1", delivery)
        removed = await client.patch(
            f"/v1/subscriptions/{sub['id']}", json={"webhook_url": None}, headers=tenant.headers
        )
        assert removed.status == 200, await body(removed)
        response = await client.post(f"/v1/deliveries/{delivery}/retry", headers=tenant.headers)
        problem = await expect_problem(response, 409, "webhook-disabled")
    assert problem["webhook_disabled_reason"] == "the subscription has no webhook URL"
    assert (await delivery_row(conn, delivery))["status"] == "dead"
