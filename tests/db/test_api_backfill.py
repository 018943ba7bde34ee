"""POST /v1/backfill, dry run, status, history and the owner's transitions."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from asyncpg import Range

from tests.support.api import (
    CHAIN_ID,
    Client,
    Tenant,
    body,
    create_backfill,
    create_subscription,
    expect_problem,
    make_tenant,
    set_head,
)


async def test_accepted_request_answers_202_with_location_and_the_resource(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    sub = await create_subscription(client, tenant)
    payload = {
        "subscription_id": sub["id"],
        "from_block": "0x64",
        "to_block": 200,
        "labels": {"job": "nightly"},
        "order": "desc",
    }
    response = await client.post("/v1/backfill", json=payload, headers=tenant.headers)
    data = await body(response)
    assert response.status == 202, data
    assert response.headers["Location"] == f"/v1/backfill/{data['id']}"
    assert "Idempotent-Replayed" not in response.headers
    assert data["status"] == "queued"
    assert (data["from_block"], data["to_block"], data["order"]) == (100, 200, "desc")
    assert data["cursor"] == 200  # descending: starts at the top
    assert (data["progress"], data["blocks_total"], data["labels"]) == (
        0.0,
        101,
        {"job": "nightly"},
    )
    row = await conn.fetchrow(
        "SELECT * FROM backfill_requests WHERE id = $1", uuid.UUID(data["id"])
    )
    assert row is not None and row["workspace_id"] == tenant.workspace_id
    assert (row["chain_id"], row["block_order"], row["cursor"]) == (CHAIN_ID, "desc", 200)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [({"from_block": 150}, (150, 150)), ({"to_block": "0x96"}, (150, 150))],
)
async def test_one_side_only_is_a_single_block(
    client: Client, tenant: Tenant, fields: dict[str, object], expected: tuple[int, int]
) -> None:
    sub = await create_subscription(client, tenant)
    payload = {"subscription_id": sub["id"], **fields}
    response = await client.post("/v1/backfill", json=payload, headers=tenant.headers)
    data = await body(response)
    assert response.status == 202, data
    assert (data["from_block"], data["to_block"]) == expected


async def test_every_bad_field_is_named_with_a_json_pointer(client: Client, tenant: Tenant) -> None:
    payload = {
        "subscription_id": "not-a-uuid",
        "from_block": -1,
        "to_block": True,
        "order": "sideways",
        "rescan": "yes",
        "labels": {"k": 1},
        "colour": "red",
    }
    response = await client.post("/v1/backfill", json=payload, headers=tenant.headers)
    data = await expect_problem(response, 422, "validation-error")
    pointers = {e["pointer"] for e in data["errors"]}
    assert pointers == {
        "/subscription_id",
        "/from_block",
        "/to_block",
        "/order",
        "/rescan",
        "/labels/k",
        "/colour",
    }
    assert all(e["detail"] for e in data["errors"])


async def test_range_refusals_say_the_limit(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    sub = await create_subscription(client, tenant)
    cases = [
        ({}, "/from_block", "give from_block, to_block or both"),
        ({"from_block": 10, "to_block": 5}, "/to_block", "to_block 5 is before from_block 10"),
        ({"from_block": 0, "to_block": 5_000_000}, "/to_block", "at most 5000000 blocks"),
    ]
    for fields, pointer, text in cases:
        payload = {"subscription_id": sub["id"], **fields}
        response = await client.post("/v1/backfill", json=payload, headers=tenant.headers)
        data = await expect_problem(response, 422, "validation-error")
        assert data["errors"][0]["pointer"] == pointer
        assert text in data["errors"][0]["detail"]
    await set_head(conn, 1000, 990)
    payload = {"subscription_id": sub["id"], "from_block": 900, "to_block": 1001}
    response = await client.post("/v1/backfill", json=payload, headers=tenant.headers)
    data = await expect_problem(response, 422)
    assert data["errors"] == [
        {"pointer": "/to_block", "detail": "block 1001 is beyond the chain's known head 1000"}
    ]
    assert await conn.fetchval("SELECT count(*) FROM backfill_requests") == 0


async def test_to_block_safe_resolves_to_the_safe_head(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    sub = await create_subscription(client, tenant)
    payload = {"subscription_id": sub["id"], "from_block": 10, "to_block": "safe"}
    response = await client.post("/v1/backfill", json=payload, headers=tenant.headers)
    data = await expect_problem(response, 422)
    assert data["errors"][0]["detail"] == "no safe head is known for this chain yet"
    await set_head(conn, 1000, 988)
    data = await create_backfill(client, tenant, sub["id"], from_block=10, to_block="safe")
    assert data["to_block"] == 988


async def test_before_any_head_is_known_a_far_to_block_is_accepted(
    client: Client, tenant: Tenant
) -> None:
    sub = await create_subscription(client, tenant)
    data = await create_backfill(client, tenant, sub["id"], from_block=10**9, to_block=10**9 + 5)
    assert data["status"] == "queued"


async def test_plan_without_backfill_is_403(client: Client, conn: asyncpg.Connection) -> None:
    free = await make_tenant(conn, plan="free")
    sub = await create_subscription(client, free)
    payload = {"subscription_id": sub["id"], "from_block": 1}
    response = await client.post("/v1/backfill", json=payload, headers=free.headers)
    data = await expect_problem(response, 403, "backfill-not-in-plan")
    assert "plan does not include backfill" in data["detail"]


async def test_subscription_without_stored_events_is_409(client: Client, tenant: Tenant) -> None:
    sub = await create_subscription(client, tenant, stored_events=False)
    payload = {"subscription_id": sub["id"], "from_block": 1}
    response = await client.post("/v1/backfill", json=payload, headers=tenant.headers)
    await expect_problem(response, 409, "stored-events-disabled")


async def test_unknown_subscription_is_404(client: Client, tenant: Tenant) -> None:
    missing = uuid.uuid4()
    payload = {"subscription_id": str(missing), "from_block": 1}
    response = await client.post("/v1/backfill", json=payload, headers=tenant.headers)
    data = await expect_problem(response, 404, "not-found")
    assert data["detail"] == f"subscription {missing} not found"


async def test_dry_run_estimates_with_coverage_and_creates_nothing(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    sub = await create_subscription(client, tenant)
    await conn.execute(
        "INSERT INTO subscription_coverage (subscription_id, covered) VALUES ($1, $2)",
        uuid.UUID(sub["id"]),
        [Range(0, 6000)],  # blocks 0..5999
    )
    payload = {"subscription_id": sub["id"], "from_block": 0, "to_block": 9999, "dry_run": True}
    response = await client.post("/v1/backfill", json=payload, headers=tenant.headers)
    data = await body(response)
    assert response.status == 200, data
    assert (data["blocks"], data["already_covered_blocks"]) == (10000, 6000)
    # 4000 blocks left at the default 2000 blocks per call: 2 calls of 60 CU + one head read.
    assert (data["estimated_calls"], data["estimated_cu"], data["estimated_windows"]) == (2, 130, 1)
    assert data["estimated_start_at"] <= data["estimated_finish_at"]
    rescan = {**payload, "rescan": True}
    response = await client.post("/v1/backfill", json=rescan, headers=tenant.headers)
    assert (await body(response))["already_covered_blocks"] == 0
    assert await conn.fetchval("SELECT count(*) FROM backfill_requests") == 0


async def test_dry_run_is_refused_like_a_real_request(client: Client, tenant: Tenant) -> None:
    payload = {"subscription_id": str(uuid.uuid4()), "from_block": 1, "dry_run": True}
    response = await client.post("/v1/backfill", json=payload, headers=tenant.headers)
    await expect_problem(response, 404)


async def test_status_shows_cursor_progress_counters_and_eta(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    sub = await create_subscription(client, tenant)
    created = await create_backfill(client, tenant, sub["id"], from_block=100, to_block=199)
    await conn.execute(
        """
        UPDATE backfill_requests
        SET status = 'processing', cursor = 150, remaining = '{[150,200)}', blocks_scanned = 50,
            matches = 7, new_matches = 5, duplicate_matches = 2, credits_charged = 5,
            cu_spent = 120, windows = 2, started_at = now(),
            estimated_finish_at = now() + interval '1 minute'
        WHERE id = $1
        """,
        uuid.UUID(created["id"]),
    )
    response = await client.get(f"/v1/backfill/{created['id']}", headers=tenant.headers)
    data = await body(response)
    assert response.status == 200
    assert data["status"] == "processing"
    assert (data["cursor"], data["progress"], data["blocks_scanned"]) == (150, 0.5, 50)
    assert (data["matches"], data["new_matches"], data["duplicate_matches"]) == (7, 5, 2)
    assert (data["credits_charged"], data["cu_spent"], data["windows"]) == (5, 120, 2)
    assert data["estimated_finish_at"] is not None and data["started_at"] is not None


async def test_history_is_newest_first_filtered_and_paginated(
    client: Client, tenant: Tenant
) -> None:
    sub = await create_subscription(client, tenant)
    ids = [(await create_backfill(client, tenant, sub["id"], from_block=i))["id"] for i in range(5)]
    await client.post(f"/v1/backfill/{ids[1]}/cancel", headers=tenant.headers)
    seen: list[str] = []
    url: str | None = f"/v1/subscriptions/{sub['id']}/backfills?limit=2"
    while url:
        data = await body(await client.get(url, headers=tenant.headers))
        assert len(data["items"]) <= 2
        seen += [item["id"] for item in data["items"]]
        url = (
            data["next"] and f"/v1/subscriptions/{sub['id']}/backfills?limit=2&after={data['next']}"
        )
    assert seen == ids[::-1]
    response = await client.get(
        f"/v1/subscriptions/{sub['id']}/backfills?status=cancelled", headers=tenant.headers
    )
    assert [i["id"] for i in (await body(response))["items"]] == [ids[1]]
    for query, parameter in (
        ("status=done", "status"),
        ("limit=0", "limit"),
        ("after=xyz", "after"),
    ):
        response = await client.get(
            f"/v1/subscriptions/{sub['id']}/backfills?{query}", headers=tenant.headers
        )
        data = await expect_problem(response, 422)
        assert data["errors"][0]["parameter"] == parameter


async def _status(conn: asyncpg.Connection, backfill_id: str) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT status, cursor, finished_at, error FROM backfill_requests WHERE id = $1",
        uuid.UUID(backfill_id),
    )
    assert row is not None
    return row


async def test_pause_resume_cancel(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    sub = await create_subscription(client, tenant)
    backfill = await create_backfill(client, tenant, sub["id"])
    url = f"/v1/backfill/{backfill['id']}"
    paused = await client.post(f"{url}/pause", headers=tenant.headers)
    assert (paused.status, (await body(paused))["status"]) == (200, "paused")
    again = await client.post(f"{url}/pause", headers=tenant.headers)
    data = await expect_problem(again, 409, "invalid-transition")
    assert data["backfill_status"] == "paused"
    assert "cannot pause a backfill that is paused" in data["detail"]
    resumed = await client.post(f"{url}/resume", headers=tenant.headers)
    assert (await body(resumed))["status"] == "queued"  # never started
    await conn.execute(
        "UPDATE backfill_requests SET status = 'paused', started_at = now() WHERE id = $1",
        uuid.UUID(backfill["id"]),
    )
    resumed = await client.post(f"{url}/resume", headers=tenant.headers)
    assert (await body(resumed))["status"] == "processing"
    cancelled = await client.post(f"{url}/cancel", headers=tenant.headers)
    data = await body(cancelled)
    assert (cancelled.status, data["status"], data["cursor"]) == (200, "cancelled", None)
    assert data["finished_at"] is not None
    for action in ("pause", "resume", "cancel", "retry"):
        refused = await client.post(f"{url}/{action}", headers=tenant.headers)
        assert (await expect_problem(refused, 409))["backfill_status"] == "cancelled"


async def test_retry_of_a_failed_request_restarts_at_the_next_block(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    sub = await create_subscription(client, tenant)
    asc = await create_backfill(client, tenant, sub["id"], from_block=100, to_block=200)
    desc = await create_backfill(
        client, tenant, sub["id"], from_block=100, to_block=200, order="desc"
    )
    fresh = await create_backfill(client, tenant, sub["id"], from_block=100, to_block=200)
    await conn.execute(
        """
        UPDATE backfill_requests
        SET status = 'failed', cursor = NULL, finished_at = now(), error = 'rpc said no',
            remaining = CASE WHEN id = ANY($2::uuid[]) THEN NULL
                             ELSE '{[120,131),[150,201)}'::int8multirange END
        WHERE subscription_id = $1
        """,
        uuid.UUID(sub["id"]),
        [uuid.UUID(fresh["id"])],
    )
    expected = {asc["id"]: 120, desc["id"]: 200, fresh["id"]: 100}
    for backfill_id, cursor in expected.items():
        response = await client.post(f"/v1/backfill/{backfill_id}/retry", headers=tenant.headers)
        data = await body(response)
        assert response.status == 200, data
        assert (data["status"], data["cursor"], data["error"]) == ("queued", cursor, None)
        row = await _status(conn, backfill_id)
        assert (row["finished_at"], row["error"]) == (None, None)


async def test_deliveries_are_listed_and_a_dead_one_retried(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    sub = await create_subscription(client, tenant, webhook_url="https://hooks.example.com/x")
    ids = []
    for status in ("delivered", "dead", "pending"):
        ids.append(
            await conn.fetchval(
                """
                INSERT INTO webhook_deliveries (subscription_id, workspace_id, status, payload,
                    event_count, first_block, attempts, last_error, delivered_at)
                VALUES ($1, $2, $3, '{}', 3, 100, 4, 'HTTP 500',
                        CASE WHEN $3 = 'delivered' THEN now() END)
                RETURNING id
                """,
                uuid.UUID(sub["id"]),
                tenant.workspace_id,
                status,
            )
        )
    url = f"/v1/subscriptions/{sub['id']}/deliveries"
    data = await body(await client.get(url, headers=tenant.headers))
    assert [i["id"] for i in data["items"]] == [str(i) for i in reversed(ids)]
    dead = await body(await client.get(f"{url}?status=dead", headers=tenant.headers))
    assert [i["id"] for i in dead["items"]] == [str(ids[1])]
    assert dead["items"][0]["last_error"] == "HTTP 500"
    page = await body(await client.get(f"{url}?limit=2", headers=tenant.headers))
    rest = await body(
        await client.get(f"{url}?limit=2&after={page['next']}", headers=tenant.headers)
    )
    assert [i["id"] for i in page["items"] + rest["items"]] == [str(i) for i in reversed(ids)]
    retried = await client.post(f"/v1/deliveries/{ids[1]}/retry", headers=tenant.headers)
    data = await body(retried)
    assert (retried.status, data["status"], data["attempts"]) == (200, "pending", 0)
    assert data["last_error"] == "HTTP 500"
    for refused_id, status in ((ids[0], "delivered"), (ids[1], "pending")):
        response = await client.post(f"/v1/deliveries/{refused_id}/retry", headers=tenant.headers)
        assert (await expect_problem(response, 409))["delivery_status"] == status
