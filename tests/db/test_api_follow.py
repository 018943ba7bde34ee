"""`POST /v1/backfill` with `"to_block": "follow"`: the range so far is up to the safe
head, the resource says it follows and how far behind it is, the dry run prices an
hour of following, and what cannot follow is a 422 naming the field."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.support.api import (
    CHAIN_ID,
    Client,
    Tenant,
    body,
    create_backfill,
    create_subscription,
    expect_problem,
    set_head,
)


async def test_a_follow_request_runs_to_the_safe_head_and_shows_its_lag(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    await set_head(conn, 1_000, safe_head=988)
    subscription = await create_subscription(client, tenant)
    created = await create_backfill(
        client, tenant, subscription["id"], from_block=900, to_block="follow"
    )
    assert created["follow"] is True and created["status"] == "queued"
    assert (created["from_block"], created["to_block"], created["cursor"]) == (900, 988, 900)

    # A window took it to block 950; the chain has moved on to a safe head of 1,000
    # at 2 s a block.
    await conn.execute(
        "UPDATE backfill_requests SET status = 'processing', cursor = 951 WHERE id = $1",
        created["id"],
    )
    await conn.execute(
        "UPDATE chain_state SET safe_head = 1000, block_seconds = 2 WHERE chain_id = $1",
        CHAIN_ID,
    )
    response = await client.get(f"/v1/backfill/{created['id']}", headers=tenant.headers)
    shown = await body(response)
    assert (shown["lag_blocks"], shown["lag_seconds"]) == (50, 100.0)

    bounded = await create_backfill(client, tenant, subscription["id"])
    assert bounded["follow"] is False and bounded["lag_blocks"] is None


async def test_the_dry_run_prices_an_hour_of_following(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    await set_head(conn, 1_000, safe_head=988)
    subscription = await create_subscription(client, tenant)
    payload = {"subscription_id": subscription["id"], "from_block": 900, "to_block": "follow"}
    unknown = await client.post(
        "/v1/backfill", json={**payload, "dry_run": True}, headers=tenant.headers
    )
    estimate = await body(unknown)
    assert estimate["blocks"] == 89 and estimate["following_cu_per_hour"] is None

    # 12 s a block, a 5 s tick: 300 new blocks an hour, each window with one at most:
    # 300 verified calls of 60 + 20 CU, and 300 reorg checks of two headers (2 x 20 CU).
    await conn.execute("UPDATE chain_state SET block_seconds = 12 WHERE chain_id = $1", CHAIN_ID)
    known = await client.post(
        "/v1/backfill", json={**payload, "dry_run": True}, headers=tenant.headers
    )
    assert (await body(known))["following_cu_per_hour"] == 300 * 80 + 300 * 40


async def test_what_cannot_follow_is_refused_naming_the_field(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    await set_head(conn, 1_000, safe_head=988)
    subscription = await create_subscription(client, tenant)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"to_block": "follow"}, "/from_block"),
        ({"from_block": 900, "to_block": "follow", "order": "desc"}, "/order"),
        ({"from_block": 5_000, "to_block": "follow"}, "/from_block"),
    ]
    for fields, pointer in cases:
        payload = {"subscription_id": subscription["id"], **fields}
        response = await client.post("/v1/backfill", json=payload, headers=tenant.headers)
        problem = await expect_problem(response, 422)
        assert pointer in [e["pointer"] for e in problem["errors"]], problem
    count = await conn.fetchval("SELECT count(*) FROM backfill_requests")
    assert count == 0
