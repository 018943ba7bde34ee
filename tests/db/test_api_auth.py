"""Bearer keys, tenant isolation, rate limits, and problem+json for every error."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from indexer import subscriptions
from tests.support.api import (
    Client,
    Tenant,
    body,
    create_backfill,
    create_subscription,
    expect_problem,
    make_tenant,
    serve,
)


async def test_missing_and_bad_keys_are_401_with_a_bearer_challenge(client: Client) -> None:
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer lf_wrong"}):
        response = await client.get("/v1/workspace", headers=headers)
        data = await expect_problem(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "lf_wrong" not in str(data)


async def test_a_revoked_key_stops_working(database_url: str, conn: asyncpg.Connection) -> None:
    tenant = await make_tenant(conn)
    async with serve(database_url, api_key_cache_seconds=0) as client:
        assert (await client.get("/v1/workspace", headers=tenant.headers)).status == 200
        await conn.execute("UPDATE api_keys SET revoked_at = now()")
        await expect_problem(await client.get("/v1/workspace", headers=tenant.headers), 401)


async def test_workspace_shows_and_changes_its_settings(client: Client, tenant: Tenant) -> None:
    data = await body(await client.get("/v1/workspace", headers=tenant.headers))
    assert data["id"] == str(tenant.workspace_id)
    assert (data["plan"], data["backfill_enabled"], data["credits"]) == ("pro", True, 100)
    assert data["backfill_webhooks"] is True
    response = await client.patch(
        "/v1/workspace", json={"backfill_webhooks": False}, headers=tenant.headers
    )
    assert (await body(response))["backfill_webhooks"] is False
    response = await client.patch("/v1/workspace", json={"credits": 10**9}, headers=tenant.headers)
    assert (await expect_problem(response, 422))["errors"][0]["pointer"] == "/credits"


async def _objects_of(client: Client, owner: Tenant, conn: asyncpg.Connection) -> dict[str, str]:
    sub = await create_subscription(client, owner, webhook_url="https://example.com/h")
    backfill = await create_backfill(client, owner, sub["id"])
    delivery = await conn.fetchval(
        "INSERT INTO webhook_deliveries (subscription_id, workspace_id, status, payload,"
        " event_count, first_block) VALUES ($1, $2, 'dead', '{}', 1, 1) RETURNING id",
        uuid.UUID(sub["id"]),
        owner.workspace_id,
    )
    return {"sub": sub["id"], "backfill": backfill["id"], "delivery": str(delivery)}


PROBES: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("GET", "/v1/subscriptions/{sub}", "subscription", None),
    ("PATCH", "/v1/subscriptions/{sub}", "subscription", {"name": "mine now"}),
    ("DELETE", "/v1/subscriptions/{sub}", "subscription", None),
    ("POST", "/v1/subscriptions/{sub}/webhook-secret/rotate", "subscription", None),
    ("GET", "/v1/subscriptions/{sub}/events", "subscription", None),
    ("GET", "/v1/subscriptions/{sub}/backfills", "subscription", None),
    ("GET", "/v1/subscriptions/{sub}/deliveries", "subscription", None),
    ("GET", "/v1/backfill/{backfill}", "backfill", None),
    ("POST", "/v1/backfill/{backfill}/pause", "backfill", None),
    ("POST", "/v1/backfill/{backfill}/resume", "backfill", None),
    ("POST", "/v1/backfill/{backfill}/cancel", "backfill", None),
    ("POST", "/v1/backfill/{backfill}/retry", "backfill", None),
    ("POST", "/v1/deliveries/{delivery}/retry", "delivery", None),
    ("POST", "/v1/backfill", "subscription", {"subscription_id": "{sub}", "from_block": 1}),
]


@pytest.mark.parametrize(("method", "template", "kind", "payload"), PROBES)
async def test_another_workspaces_ids_answer_like_unknown_ids(
    client: Client,
    conn: asyncpg.Connection,
    method: str,
    template: str,
    kind: str,
    payload: dict[str, Any] | None,
) -> None:
    owner, intruder = await make_tenant(conn), await make_tenant(conn)
    theirs = await _objects_of(client, owner, conn)
    unknown = {name: str(uuid.uuid4()) for name in theirs}
    answers = []
    for ids in (theirs, unknown):
        url = template.format(**ids)
        json = {k: v.format(**ids) if isinstance(v, str) else v for k, v in (payload or {}).items()}
        response = await client.request(method, url, json=json or None, headers=intruder.headers)
        data = await expect_problem(response, 404, "not-found")
        the_id = ids["sub" if kind == "subscription" else kind]
        answers.append({**data, "detail": data["detail"].replace(the_id, "<id>")})
    assert answers[0] == answers[1]
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM backfill_requests WHERE workspace_id = $1", intruder.workspace_id
        )
        == 0
    )
    row = await conn.fetchrow(
        "SELECT s.name, b.status, d.status AS delivery FROM subscriptions s"
        " JOIN backfill_requests b ON b.subscription_id = s.id"
        " JOIN webhook_deliveries d ON d.subscription_id = s.id WHERE s.id = $1",
        uuid.UUID(theirs["sub"]),
    )
    assert row is not None and tuple(row) == (None, "queued", "dead")


async def test_lists_show_only_the_callers_objects(
    client: Client, conn: asyncpg.Connection
) -> None:
    alice, bob = await make_tenant(conn), await make_tenant(conn)
    await create_subscription(client, alice)
    data = await body(await client.get("/v1/subscriptions", headers=bob.headers))
    assert data == {"items": [], "next": None}


async def test_a_key_over_its_plans_rate_gets_429_with_retry_after(
    client: Client, conn: asyncpg.Connection
) -> None:
    await conn.execute(
        "INSERT INTO plans (name, backfill_enabled, max_backfill_blocks, api_requests_per_minute)"
        " VALUES ('tiny', true, 1000, 3)"
    )
    tenant = await make_tenant(conn, plan="tiny")
    other = await make_tenant(conn, plan="tiny")
    statuses = [
        (await client.get("/v1/workspace", headers=tenant.headers)).status for _ in range(3)
    ]
    assert statuses == [200, 200, 200]
    response = await client.get("/v1/workspace", headers=tenant.headers)
    data = await expect_problem(response, 429, "rate-limited")
    assert int(response.headers["Retry-After"]) == 20  # 3 per minute: one back every 20 s
    assert "3 requests per minute" in data["detail"]
    assert (await client.get("/v1/workspace", headers=other.headers)).status == 200
    for path in ("/healthz", "/openapi.json"):
        assert (await client.get(path)).status == 200


async def test_aiohttp_errors_and_bad_json_are_problem_details(
    client: Client, tenant: Tenant
) -> None:
    await expect_problem(await client.get("/v1/nothing-here", headers=tenant.headers), 404)
    response = await client.put("/v1/workspace", headers=tenant.headers)
    await expect_problem(response, 405)
    assert "PATCH" in response.headers["Allow"]
    big = b'{"name": "' + b"x" * 70_000 + b'"}'
    response = await client.post("/v1/subscriptions", data=big, headers=tenant.headers)
    await expect_problem(response, 413)
    response = await client.post("/v1/subscriptions", data=b"{nope", headers=tenant.headers)
    await expect_problem(response, 400, "malformed-json")
    response = await client.post("/v1/subscriptions", data=b"[1, 2]", headers=tenant.headers)
    assert (await expect_problem(response, 422))["errors"][0]["pointer"] == ""


async def test_an_unexpected_error_never_shows_a_traceback(
    client: Client, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def explode(*args: object, **kwargs: object) -> object:
        raise RuntimeError("secret internals /srv/app.py line 3")

    monkeypatch.setattr(subscriptions, "list_subscriptions", explode)
    response = await client.get("/v1/subscriptions", headers=tenant.headers)
    data = await expect_problem(response, 500)
    assert data["detail"] == "an unexpected error occurred"
    assert "secret" not in await response.text()
