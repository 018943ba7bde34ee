"""Idempotency-Key on POST /v1/backfill: replay, reuse, concurrency, expiry, tenants."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from tests.support.api import (
    Client,
    Tenant,
    body,
    count_requests,
    create_subscription,
    expect_problem,
    key_headers,
    make_tenant,
    serve,
)


async def test_same_key_same_body_replays_the_first_response(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    sub = await create_subscription(client, tenant)
    payload = {"subscription_id": sub["id"], "from_block": 1, "to_block": 9, "labels": {"a": "b"}}
    first = await client.post("/v1/backfill", json=payload, headers=key_headers(tenant, "k-1"))
    first_body = await first.read()
    assert first.status == 202
    # Same JSON with keys in another order: the same canonical body.
    reordered = dict(reversed(list(payload.items())))
    again = await client.post("/v1/backfill", json=reordered, headers=key_headers(tenant, "k-1"))
    assert again.status == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert await again.read() == first_body
    assert await count_requests(conn) == 1


async def test_same_key_other_body_is_422(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    sub = await create_subscription(client, tenant)
    payload = {"subscription_id": sub["id"], "from_block": 1}
    await client.post("/v1/backfill", json=payload, headers=key_headers(tenant, "k"))
    other = {**payload, "from_block": 2}
    response = await client.post("/v1/backfill", json=other, headers=key_headers(tenant, "k"))
    data = await expect_problem(response, 422, "idempotency-key-reuse")
    assert "another request body" in data["detail"]
    assert await count_requests(conn) == 1


async def test_twenty_concurrent_posts_with_one_key_create_one_request(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    sub = await create_subscription(client, tenant)
    payload = {"subscription_id": sub["id"], "from_block": 1, "to_block": 1000}

    async def post() -> tuple[int, Any, str | None]:
        response = await client.post("/v1/backfill", json=payload, headers=key_headers(tenant, "c"))
        return response.status, await body(response), response.headers.get("Idempotent-Replayed")

    results = await asyncio.gather(*(post() for _ in range(20)))
    statuses = sorted(status for status, _, _ in results)
    assert set(statuses) <= {202, 409}, statuses
    firsts = [r for r in results if r[0] == 202 and r[2] is None]
    assert len(firsts) == 1
    created_id = firsts[0][1]["id"]
    for status, data, _ in results:
        if status == 202:
            assert data["id"] == created_id
        else:
            assert data["type"].endswith("idempotency-key-in-flight")
    assert await count_requests(conn) == 1
    replay = await client.post("/v1/backfill", json=payload, headers=key_headers(tenant, "c"))
    assert replay.headers["Idempotent-Replayed"] == "true"


async def test_a_key_in_flight_answers_409(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    sub = await create_subscription(client, tenant)
    payload = {"subscription_id": sub["id"], "from_block": 1}
    async with conn.transaction():  # another request holds the key
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended("
            "'logfill.idempotency/' || $1::uuid::text || '/' || $2, 0))",
            tenant.workspace_id,
            "busy",
        )
        response = await client.post(
            "/v1/backfill", json=payload, headers=key_headers(tenant, "busy")
        )
        await expect_problem(response, 409, "idempotency-key-in-flight")
    response = await client.post("/v1/backfill", json=payload, headers=key_headers(tenant, "busy"))
    assert response.status == 202
    assert await count_requests(conn) == 1


async def test_an_expired_key_creates_a_new_request(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    sub = await create_subscription(client, tenant)
    payload = {"subscription_id": sub["id"], "from_block": 1}
    first = await body(
        await client.post("/v1/backfill", json=payload, headers=key_headers(tenant, "e"))
    )
    await conn.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
    other_body = {**payload, "from_block": 5}  # an expired key may even take another body
    response = await client.post("/v1/backfill", json=other_body, headers=key_headers(tenant, "e"))
    data = await body(response)
    assert response.status == 202 and "Idempotent-Replayed" not in response.headers
    assert data["id"] != first["id"]
    assert await count_requests(conn) == 2
    expiry = await conn.fetchval("SELECT expires_at - created_at FROM idempotency_keys")
    assert expiry.total_seconds() == 86400


async def test_key_lifetime_follows_the_setting(
    database_url: str, conn: asyncpg.Connection
) -> None:
    tenant = await make_tenant(conn)
    async with serve(database_url, idempotency_ttl_seconds=60) as short:
        sub = await create_subscription(short, tenant)
        payload = {"subscription_id": sub["id"], "from_block": 1}
        await short.post("/v1/backfill", json=payload, headers=key_headers(tenant, "ttl"))
    expiry = await conn.fetchval("SELECT expires_at - created_at FROM idempotency_keys")
    assert expiry.total_seconds() == 60


async def test_keys_belong_to_a_workspace(client: Client, conn: asyncpg.Connection) -> None:
    alice, bob = await make_tenant(conn), await make_tenant(conn)
    for owner in (alice, bob):
        sub = await create_subscription(client, owner)
        payload = {"subscription_id": sub["id"], "from_block": 1}
        response = await client.post(
            "/v1/backfill", json=payload, headers=key_headers(owner, "same")
        )
        assert response.status == 202 and "Idempotent-Replayed" not in response.headers
    assert await count_requests(conn) == 2


async def test_refusals_and_dry_runs_leave_the_key_unused(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    sub = await create_subscription(client, tenant)
    bad = {"subscription_id": sub["id"], "from_block": 10, "to_block": 1}
    response = await client.post("/v1/backfill", json=bad, headers=key_headers(tenant, "fix-me"))
    await expect_problem(response, 422)
    dry = {"subscription_id": sub["id"], "from_block": 1, "to_block": 10, "dry_run": True}
    response = await client.post("/v1/backfill", json=dry, headers=key_headers(tenant, "fix-me"))
    assert response.status == 200
    good = {"subscription_id": sub["id"], "from_block": 1, "to_block": 10}
    response = await client.post("/v1/backfill", json=good, headers=key_headers(tenant, "fix-me"))
    assert response.status == 202 and "Idempotent-Replayed" not in response.headers
    assert await conn.fetchval("SELECT count(*) FROM idempotency_keys") == 1


async def test_key_format_is_checked(client: Client, tenant: Tenant) -> None:
    sub = await create_subscription(client, tenant)
    payload = {"subscription_id": sub["id"], "from_block": 1}
    for key in ("", "x" * 256, "caf\u00e9", "tab\there"):
        headers = {**tenant.headers, "Idempotency-Key": key}
        response = await client.post("/v1/backfill", json=payload, headers=headers)
        data = await expect_problem(response, 400, "invalid-idempotency-key")
        assert data["errors"][0]["header"] == "Idempotency-Key"
    response = await client.post(
        "/v1/backfill", json=payload, headers=key_headers(tenant, "~" * 255)
    )
    assert response.status == 202
