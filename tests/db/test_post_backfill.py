"""What a new request costs to accept: POST /v1/backfill with a fresh Idempotency-Key is
two statements and no transaction (the context with the key's record; the request
with the key's claim), its 202 is the request as the database holds it, the claim
decides races, and reading the context does not grow with the queue or the cache."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest

from api.state import POOL
from indexer import backfills, idempotency
from indexer.backfills import RECENT_QUEUE_LIMIT, BackfillSpec
from indexer.db.queries import QUERIES
from indexer.errors import NotFound
from indexer.idempotency import Claim, StoredResponse
from indexer.refusals import IdempotencyKeyInFlight
from tests.support.api import (
    CHAIN_ID,
    Client,
    Tenant,
    api_settings,
    body,
    count_requests,
    create_subscription,
    key_headers,
    make_tenant,
    serve,
)


async def test_a_fresh_key_takes_two_statements_and_no_transaction(
    database_url: str, conn: asyncpg.Connection
) -> None:
    tenant = await make_tenant(conn)
    async with serve(database_url, db_pool_min_size=1, db_pool_max_size=1) as client:
        sub = await create_subscription(client, tenant)  # the API key is cached from here on
        payload = {"subscription_id": sub["id"], "from_block": 1, "to_block": 9}
        for headers in (key_headers(tenant, "warm"), tenant.headers):  # asyncpg's first prepare of
            await client.post("/v1/backfill", json=payload, headers=headers)  # each introspects
        sent: list[str] = []
        assert client.app is not None
        async with client.app[POOL].acquire() as pooled:  # the pool's one connection
            pooled.add_query_logger(lambda logged: sent.append(logged.query))

        created = await client.post("/v1/backfill", json=payload, headers=key_headers(tenant, "f"))
        assert created.status == 202
        assert sent == [
            QUERIES["backfill_context"].sql,
            QUERIES["insert_backfill_claiming_key"].sql,
        ]

        sent.clear()
        replayed = await client.post("/v1/backfill", json=payload, headers=key_headers(tenant, "f"))
        assert replayed.headers["Idempotent-Replayed"] == "true"
        assert sent == [QUERIES["backfill_context"].sql]

        sent.clear()
        plain = await client.post("/v1/backfill", json=payload, headers=tenant.headers)
        assert plain.status == 202
        assert sent == [QUERIES["backfill_context"].sql, QUERIES["insert_backfill"].sql]


@pytest.mark.parametrize("key", ["k", None])
async def test_the_202_is_the_request_as_read_back_byte_for_byte(
    client: Client, tenant: Tenant, conn: asyncpg.Connection, key: str | None
) -> None:
    sub = await create_subscription(client, tenant)
    # Keys in an order jsonb does not keep: longer first, non-ASCII, upper case.
    labels = {"zz-long-key": "1", "é": "2", "b": "3", "A": "4", "ab": "5", "\u00e9\u00e9": "6"}
    payload = {
        "subscription_id": sub["id"],
        "from_block": 500,
        "to_block": 1_700,
        "labels": labels,
        "order": "desc",
        "rescan": True,
    }
    headers = tenant.headers if key is None else key_headers(tenant, key)
    created = await client.post("/v1/backfill", json=payload, headers=headers)
    first = await created.read()
    assert created.status == 202, first

    data = json.loads(first)
    shown = await client.get(f"/v1/backfill/{data['id']}", headers=tenant.headers)
    assert await shown.read() == first
    assert created.headers["Location"] == f"/v1/backfill/{data['id']}"
    assert data["labels"] == labels and data["cursor"] == 1_700 and data["status"] == "queued"
    stored = await conn.fetchrow(
        "SELECT created_at, updated_at FROM backfill_requests WHERE id = $1", data["id"]
    )
    assert stored is not None and stored["created_at"] == stored["updated_at"]
    if key is not None:
        again = await client.post("/v1/backfill", json=payload, headers=headers)
        assert await again.read() == first


async def test_a_key_taken_after_the_read_creates_nothing_and_an_expired_one_is_claimed(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    sub = await create_subscription(client, tenant)
    spec = BackfillSpec(subscription_id=sub["id"], from_block=1, to_block=10)
    chains = api_settings().chains
    context = await backfills.load_context(conn, tenant.workspace_id, spec.subscription_id, "race")
    assert idempotency.stored_response(context, b"x" * 32) is None  # free when read

    payload = {"subscription_id": sub["id"], "from_block": 1, "to_block": 10}
    winner = await client.post("/v1/backfill", json=payload, headers=key_headers(tenant, "race"))
    assert winner.status == 202  # another request took the key in between

    row = backfills.new_backfill(tenant.workspace_id, spec, chains, context, now=context["now"])
    claim = Claim("race", b"x" * 32, 60).columns(StoredResponse(202, b"{}", {}))
    with pytest.raises(IdempotencyKeyInFlight):
        await backfills.insert_backfill(conn, row, claim)
    assert await count_requests(conn) == 1

    await conn.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
    await backfills.insert_backfill(conn, row, claim)
    assert await count_requests(conn) == 2
    key = await conn.fetchrow("SELECT * FROM idempotency_keys")
    assert key is not None and key["backfill_request_id"] == row["id"]
    assert (key["expires_at"] - key["created_at"]).total_seconds() == 60
    assert bytes(key["fingerprint"]) == b"x" * 32


async def test_a_subscription_deleted_after_the_read_is_404_and_leaves_the_key_unused(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    sub = await create_subscription(client, tenant)
    spec = BackfillSpec(subscription_id=sub["id"], from_block=1, to_block=10)
    context = await backfills.load_context(conn, tenant.workspace_id, spec.subscription_id, "gone")
    row = backfills.new_backfill(
        tenant.workspace_id, spec, api_settings().chains, context, now=context["now"]
    )
    await conn.execute("DELETE FROM subscriptions WHERE id = $1", sub["id"])

    claim = Claim("gone", b"x" * 32, 60).columns(StoredResponse(202, b"{}", {}))
    for with_claim in (claim, None):
        with pytest.raises(NotFound):
            await backfills.insert_backfill(conn, row, with_claim)
    assert await count_requests(conn) == 0
    assert await conn.fetchval("SELECT count(*) FROM idempotency_keys") == 0


async def test_concurrent_posts_on_an_expired_key_create_one_request(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    sub = await create_subscription(client, tenant)
    payload = {"subscription_id": sub["id"], "from_block": 1, "to_block": 1000}
    first = await client.post("/v1/backfill", json=payload, headers=key_headers(tenant, "x"))
    assert first.status == 202
    await conn.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")

    async def post() -> tuple[int, Any, str | None]:
        response = await client.post("/v1/backfill", json=payload, headers=key_headers(tenant, "x"))
        return response.status, await body(response), response.headers.get("Idempotent-Replayed")

    results = await asyncio.gather(*(post() for _ in range(20)))
    assert {status for status, _, _ in results} <= {202, 409}
    firsts = [data for status, data, replayed in results if status == 202 and replayed is None]
    assert len(firsts) == 1
    assert all(data["id"] == firsts[0]["id"] for status, data, _ in results if status == 202)
    assert await count_requests(conn) == 2


def _scans(plan: dict[str, Any], relation: str) -> list[dict[str, Any]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan that reads `relation`."""
    found = [plan] if plan.get("Relation Name") == relation else []
    for child in plan.get("Plans", []):
        found += _scans(child, relation)
    return found


async def test_the_context_reads_only_the_requests_queued_since_the_count_and_its_fragments(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    sub = await create_subscription(client, tenant)
    counted, since = 3_000, 3
    await conn.execute(
        "INSERT INTO backfill_requests (workspace_id, subscription_id, chain_id, from_block,"
        " to_block, cursor, created_at)"
        " SELECT $1, $2, $3, i, i + 99, i, now() - interval '1 hour' + i * interval '1 ms'"
        " FROM generate_series(1, $4) AS i",
        tenant.workspace_id,
        sub["id"],
        CHAIN_ID,
        counted + since,
    )
    await conn.execute(
        "INSERT INTO chain_state (chain_id, queue_calls, queue_counted_at)"
        " SELECT $1, 10, created_at FROM backfill_requests ORDER BY created_at"
        " OFFSET $2 LIMIT 1",
        CHAIN_ID,
        counted,
    )
    # The log cache holds fragments of many other addresses, and one of the subscription's.
    await conn.execute(
        "INSERT INTO log_fragments (chain_id, address, topics, covered)"
        " SELECT $1::bigint, '0x' || lpad(to_hex(i), 40, '0'), '', '{[1,100)}'::int8multirange"
        " FROM generate_series(1, 3000) AS i"
        " UNION ALL SELECT $1, lower($2::text), '', '{[1,100)}'::int8multirange",
        CHAIN_ID,
        sub["addresses"][0],
    )
    await conn.execute("ANALYZE backfill_requests, log_fragments")
    args = (tenant.workspace_id, sub["id"], "fresh")

    assert f"LIMIT {RECENT_QUEUE_LIMIT})" in QUERIES["backfill_context"].sql
    context = await conn.fetchrow(QUERIES["backfill_context"].sql, *args)
    assert context is not None and context["recent_blocks"] == [100] * since
    assert context["fragment_addresses"] == [sub["addresses"][0].lower()]

    explained = await conn.fetchval(
        "EXPLAIN (ANALYZE, FORMAT JSON) " + QUERIES["backfill_context"].sql, *args
    )
    plan = (json.loads(explained) if isinstance(explained, str) else explained)[0]["Plan"]
    for relation, wanted in (("backfill_requests", since), ("log_fragments", 1)):
        (scan,) = _scans(plan, relation)
        assert scan["Node Type"] == "Index Scan", scan
        assert scan["Actual Rows"] == wanted, scan
        assert scan.get("Rows Removed by Filter", 0) == 0, scan

    # Planned once: the generic plan is kept (a custom plan each time costs more to plan
    # than the statement costs to run).
    for _ in range(10):
        await conn.fetchrow(QUERIES["backfill_context"].sql, *args)
    plans = await conn.fetchrow(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
        QUERIES["backfill_context"].sql,
    )
    assert plans is not None and plans["generic_plans"] >= 5, dict(plans or {})
