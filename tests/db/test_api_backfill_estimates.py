"""What a customer sees of a request right after queueing it, and the rules that
hold while it runs: the 202 carries the estimated window start (and finish), the
same estimate the dry run gives; a request whose plan or subscription no longer
allows backfill cannot be resumed or retried."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from tests.support.api import (
    Client,
    Tenant,
    body,
    create_backfill,
    create_subscription,
    expect_problem,
    make_tenant,
    make_unlimited_plan,
)

TICK = timedelta(seconds=5)  # the default tick of the chain the API serves


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_a_202_carries_the_estimated_start_and_finish_behind_the_queue(
    client: Client, conn: asyncpg.Connection
) -> None:
    tenant = await make_tenant(conn, plan=await make_unlimited_plan(conn), credits=10)
    sub = await create_subscription(client, tenant)
    before = datetime.now(UTC)
    # Default chain: 2,000 blocks per call, (12,000 - 10) // 60 = 199 calls per window.
    first = await create_backfill(client, tenant, sub["id"], from_block=0, to_block=999_999)
    second = await create_backfill(client, tenant, sub["id"], from_block=0, to_block=99)

    assert first["estimated_start_at"] is not None and first["estimated_finish_at"] is not None
    assert before - TICK <= at(first["estimated_start_at"]) <= datetime.now(UTC) + TICK
    # 500 calls: three windows.
    assert at(first["estimated_finish_at"]) - at(first["estimated_start_at"]) == 3 * TICK
    # The second waits for the first's windows (FIFO), and needs one call.
    assert at(second["estimated_start_at"]) >= at(first["estimated_start_at"]) + 2 * TICK
    assert at(second["estimated_finish_at"]) > at(second["estimated_start_at"])

    status = await client.get(f"/v1/backfill/{first['id']}", headers=tenant.headers)
    shown = await body(status)
    assert shown["estimated_start_at"] == first["estimated_start_at"]


async def test_the_dry_run_and_the_202_agree(client: Client, tenant: Tenant) -> None:
    sub = await create_subscription(client, tenant)
    fields = {"subscription_id": sub["id"], "from_block": 100, "to_block": 200}
    dry = await client.post(
        "/v1/backfill", json={**fields, "dry_run": True}, headers=tenant.headers
    )
    estimate = await body(dry)
    queued = await create_backfill(client, tenant, sub["id"])
    for name in ("estimated_start_at", "estimated_finish_at"):
        assert abs(at(queued[name]) - at(estimate[name])) < timedelta(seconds=2), name


async def test_a_cancelled_request_shows_no_estimate(client: Client, tenant: Tenant) -> None:
    sub = await create_subscription(client, tenant)
    queued = await create_backfill(client, tenant, sub["id"])
    response = await client.post(f"/v1/backfill/{queued['id']}/cancel", headers=tenant.headers)
    cancelled = await body(response)
    assert cancelled["status"] == "cancelled"
    assert cancelled["estimated_start_at"] is None and cancelled["estimated_finish_at"] is None


async def test_resume_after_a_downgrade_is_403_and_without_stored_events_409(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    sub = await create_subscription(client, tenant)
    queued = await create_backfill(client, tenant, sub["id"])
    url = f"/v1/backfill/{queued['id']}"
    assert (await client.post(f"{url}/pause", headers=tenant.headers)).status == 200

    await conn.execute("UPDATE workspaces SET plan = 'free' WHERE id = $1", tenant.workspace_id)
    refused = await client.post(f"{url}/resume", headers=tenant.headers)
    await expect_problem(refused, 403, "backfill-not-in-plan")

    await conn.execute("UPDATE workspaces SET plan = 'pro' WHERE id = $1", tenant.workspace_id)
    patched = await client.patch(
        f"/v1/subscriptions/{sub['id']}", json={"stored_events": False}, headers=tenant.headers
    )
    assert patched.status == 200, await body(patched)
    refused = await client.post(f"{url}/resume", headers=tenant.headers)
    await expect_problem(refused, 409, "stored-events-disabled")
    still = await body(await client.get(url, headers=tenant.headers))
    assert still["status"] == "paused"


async def test_a_request_queues_behind_the_windows_count_and_what_was_queued_since(
    client: Client, conn: asyncpg.Connection
) -> None:
    """Accepting a request does not add the whole queue up again: it starts from the
    calls the chain's window last counted, plus the requests queued after that."""
    tenant = await make_tenant(conn, plan=await make_unlimited_plan(conn), credits=10)
    sub = await create_subscription(client, tenant)
    # Queued before the count, so already in it: 1,000,000 blocks, 500 calls.
    await create_backfill(client, tenant, sub["id"], from_block=0, to_block=999_999)
    # The window counted 199 * 10 calls: ten windows of work ahead (the request above
    # included, as a window counts it).
    await conn.execute(
        "INSERT INTO chain_state (chain_id, queue_calls, queue_counted_at)"
        " VALUES (1, 1990, clock_timestamp()) ON CONFLICT (chain_id) DO UPDATE"
        " SET queue_calls = 1990, queue_counted_at = clock_timestamp()"
    )
    queued_since = await create_backfill(client, tenant, sub["id"], from_block=0, to_block=99)
    behind_both = await create_backfill(client, tenant, sub["id"], from_block=0, to_block=99)

    start = at(queued_since["estimated_start_at"])
    assert start - datetime.now(UTC) >= 9 * TICK  # behind the ten counted windows, once
    assert start - datetime.now(UTC) <= 11 * TICK  # not counting the first request twice
    # The request queued since the count (one call) is ahead of the next one.
    assert at(behind_both["estimated_start_at"]) >= start
