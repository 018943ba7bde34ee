"""Subscriptions: validation, the webhook secret, PATCH, delete, rotation, stored events."""

from __future__ import annotations

import uuid

import asyncpg
from asyncpg import Range

from tests.support.api import (
    CHAIN_ID,
    TOKEN,
    TRANSFER,
    TRANSFER_TOPIC,
    Client,
    Tenant,
    body,
    create_subscription,
    expect_problem,
)
from tests.support.factories import insert_match, random_log

TOPIC_A = "0x" + "aa" * 32


async def test_create_stores_the_window_format_and_shows_the_secret_once(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    payload = {
        "chain_id": CHAIN_ID,
        "name": "usdc",
        "addresses": [TOKEN.lower()],
        "topics": [None, TOPIC_A.upper().replace("0X", "0x"), [TOPIC_A, TOPIC_A]],
        "events": ["event Transfer(address indexed from, address indexed to, uint value)"],
        "webhook_url": "https://hooks.example.com/logfill?x=1",
    }
    response = await client.post("/v1/subscriptions", json=payload, headers=tenant.headers)
    data = await body(response)
    assert response.status == 201, data
    assert response.headers["Location"] == f"/v1/subscriptions/{data['id']}"
    assert data["addresses"] == [TOKEN]  # checksummed
    assert data["topics"] == [[TRANSFER_TOPIC], [TOPIC_A], [TOPIC_A]]
    assert data["events"] == [TRANSFER]
    assert data["webhook_secret"].startswith("whsec_")
    row = await conn.fetchrow("SELECT * FROM subscriptions WHERE id = $1", uuid.UUID(data["id"]))
    assert row is not None
    assert row["addresses"] == [bytes.fromhex(TOKEN[2:])]
    assert row["topics"] == [[TRANSFER_TOPIC], [TOPIC_A], [TOPIC_A]]
    assert row["event_abis"][0]["name"] == "Transfer"
    again = await body(await client.get(f"/v1/subscriptions/{data['id']}", headers=tenant.headers))
    assert "webhook_secret" not in again
    assert again["webhook_url"] == "https://hooks.example.com/logfill?x=1"


async def test_invalid_fields_are_each_named(client: Client, tenant: Tenant) -> None:
    payload = {
        "chain_id": 5,
        "addresses": ["0x5fbdb2315678afecb367f032d93F642f64180aa3", "0x12"],
        "topics": [None, "0x12", []],
        "events": ["Transfer(address indexed from", "Ok(uint256 a)"],
        "webhook_url": "ftp://example.com",
    }
    response = await client.post("/v1/subscriptions", json=payload, headers=tenant.headers)
    data = await expect_problem(response, 422, "validation-error")
    pointers = [e["pointer"] for e in data["errors"]]
    assert pointers == ["/addresses/0", "/addresses/1", "/topics/1", "/topics/2", "/webhook_url"]
    assert "checksum" in data["errors"][0]["detail"]
    fixed = {**payload, "addresses": [], "topics": [], "webhook_url": None}
    response = await client.post("/v1/subscriptions", json=fixed, headers=tenant.headers)
    data = await expect_problem(response, 422)
    assert [e["pointer"] for e in data["errors"]] == ["/chain_id"]
    assert "chain 5 is not configured" in data["errors"][0]["detail"]
    fixed["chain_id"] = CHAIN_ID
    response = await client.post("/v1/subscriptions", json=fixed, headers=tenant.headers)
    data = await expect_problem(response, 422)
    assert [e["pointer"] for e in data["errors"]] == ["/events/0"]
    both = {"chain_id": CHAIN_ID, "topics": [TOPIC_A], "events": [TRANSFER]}
    response = await client.post("/v1/subscriptions", json=both, headers=tenant.headers)
    assert (await expect_problem(response, 422))["errors"][0]["pointer"] == "/topics/0"
    for url in ("https://user:pw@example.com/", "http:///nohost", "https://example.com/#frag"):
        response = await client.post(
            "/v1/subscriptions",
            json={"chain_id": CHAIN_ID, "webhook_url": url},
            headers=tenant.headers,
        )
        assert (await expect_problem(response, 422))["errors"][0]["pointer"] == "/webhook_url"


async def test_patch_changes_only_what_it_names(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    sub = await create_subscription(client, tenant, name="first")
    url = f"/v1/subscriptions/{sub['id']}"
    await conn.execute(
        "INSERT INTO subscription_coverage (subscription_id, covered) VALUES ($1, $2)",
        uuid.UUID(sub["id"]),
        [Range(0, 100)],
    )
    renamed = await body(await client.patch(url, json={"name": "second"}, headers=tenant.headers))
    assert (renamed["name"], renamed["topics"], renamed["webhook_secret"]) == (
        "second",
        [[TRANSFER_TOPIC]],
        None,
    )
    assert await conn.fetchval("SELECT count(*) FROM subscription_coverage") == 1
    hooked = await body(
        await client.patch(url, json={"webhook_url": "https://a.example/h"}, headers=tenant.headers)
    )
    secret = hooked["webhook_secret"]
    assert secret.startswith("whsec_")
    moved = await body(
        await client.patch(url, json={"webhook_url": "https://b.example/h"}, headers=tenant.headers)
    )
    assert moved["webhook_secret"] is None  # same secret, not shown again
    assert await conn.fetchval("SELECT webhook_secret FROM subscriptions") == secret
    cleared = await body(
        await client.patch(url, json={"webhook_url": None}, headers=tenant.headers)
    )
    assert cleared["webhook_url"] is None
    assert await conn.fetchval("SELECT webhook_secret FROM subscriptions") is None
    refiltered = await body(
        await client.patch(url, json={"events": [], "topics": [TOPIC_A]}, headers=tenant.headers)
    )
    assert (refiltered["events"], refiltered["topics"]) == ([], [[TOPIC_A]])
    assert await conn.fetchval("SELECT count(*) FROM subscription_coverage") == 0
    response = await client.patch(url, json={"chain_id": 2}, headers=tenant.headers)
    assert (await expect_problem(response, 422))["errors"][0]["pointer"] == "/chain_id"


async def test_list_paginates_oldest_first(client: Client, tenant: Tenant) -> None:
    ids = [(await create_subscription(client, tenant, name=str(i)))["id"] for i in range(5)]
    seen: list[str] = []
    url: str | None = "/v1/subscriptions?limit=2"
    while url:
        data = await body(await client.get(url, headers=tenant.headers))
        seen += [item["id"] for item in data["items"]]
        url = data["next"] and f"/v1/subscriptions?limit=2&after={data['next']}"
    assert seen == ids
    response = await client.get("/v1/subscriptions?limit=1001", headers=tenant.headers)
    assert (await expect_problem(response, 422))["errors"][0]["parameter"] == "limit"


async def test_delete_then_404(client: Client, tenant: Tenant, conn: asyncpg.Connection) -> None:
    sub = await create_subscription(client, tenant)
    url = f"/v1/subscriptions/{sub['id']}"
    response = await client.delete(url, headers=tenant.headers)
    assert response.status == 204
    await expect_problem(await client.get(url, headers=tenant.headers), 404)
    await expect_problem(await client.delete(url, headers=tenant.headers), 404)
    assert await conn.fetchval("SELECT count(*) FROM subscriptions") == 0


async def test_rotation_keeps_the_old_secret_for_the_grace_period(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    sub = await create_subscription(client, tenant, webhook_url="https://example.com/h")
    url = f"/v1/subscriptions/{sub['id']}/webhook-secret/rotate"
    response = await client.post(url, headers=tenant.headers)
    data = await body(response)
    assert response.status == 200
    assert data["webhook_secret"].startswith("whsec_")
    assert data["webhook_secret"] != sub["webhook_secret"]
    row = await conn.fetchrow(
        "SELECT previous_webhook_secret, previous_secret_expires_at - now() AS grace"
        " FROM subscriptions"
    )
    assert row is not None and row["previous_webhook_secret"] == sub["webhook_secret"]
    assert 86000 < row["grace"].total_seconds() <= 86400
    no_hook = await create_subscription(client, tenant)
    response = await client.post(
        f"/v1/subscriptions/{no_hook['id']}/webhook-secret/rotate", headers=tenant.headers
    )
    await expect_problem(response, 409, "no-webhook")


async def test_stored_events_are_listed_in_chain_order_and_decoded(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    sub = await create_subscription(client, tenant)
    sender, receiver = "0x" + "11" * 20, "0x" + "22" * 20
    topics = [
        bytes.fromhex(TRANSFER_TOPIC[2:]),
        bytes(12) + bytes.fromhex(sender[2:]),
        bytes(12) + bytes.fromhex(receiver[2:]),
    ]
    for block in (300, 100, 200):
        log = random_log(
            block_number=block,
            address=bytes.fromhex(TOKEN[2:]),
            topics=topics,
            data=(block).to_bytes(32, "big"),
        )
        await insert_match(conn, sub["id"], log)
    url = f"/v1/subscriptions/{sub['id']}/events?limit=2"
    first = await body(await client.get(url, headers=tenant.headers))
    second = await body(await client.get(f"{url}&after={first['next']}", headers=tenant.headers))
    items = first["items"] + second["items"]
    assert [i["block_number"] for i in items] == [100, 200, 300]
    assert second["next"] is None
    event = items[0]
    assert event["id"].startswith("evt_") and event["address"] == TOKEN
    assert event["decoded"] == {
        "event": "Transfer",
        "args": {"from": "0x" + "11" * 20, "to": "0x" + "22" * 20, "value": "100"},
    }
    response = await client.get(
        f"/v1/subscriptions/{sub['id']}/backfills?after={first['next']}", headers=tenant.headers
    )
    assert (await expect_problem(response, 422))["errors"][0]["parameter"] == "after"


async def test_webhook_ordering_is_independent_unless_strict_is_asked_for(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    hook = "https://hooks.example.com/h"
    default = await create_subscription(client, tenant, webhook_url=hook)
    assert default["webhook_ordering"] == "independent"
    strict = await create_subscription(client, tenant, webhook_url=hook, webhook_ordering="strict")
    assert strict["webhook_ordering"] == "strict"
    path = f"/v1/subscriptions/{strict['id']}"
    assert (await body(await client.get(path, headers=tenant.headers)))["webhook_ordering"] == (
        "strict"
    )
    listed = await body(await client.get("/v1/subscriptions", headers=tenant.headers))
    assert [s["webhook_ordering"] for s in listed["items"]] == ["independent", "strict"]
    renamed = await body(await client.patch(path, json={"name": "x"}, headers=tenant.headers))
    assert renamed["webhook_ordering"] == "strict"  # absent: kept
    switched = await body(
        await client.patch(path, json={"webhook_ordering": "independent"}, headers=tenant.headers)
    )
    assert switched["webhook_ordering"] == "independent"
    stored = await conn.fetchval(
        "SELECT webhook_ordering FROM subscriptions WHERE id = $1", uuid.UUID(strict["id"])
    )
    assert stored == "independent"  # what the delivery loop reads
    for method, url in (("POST", "/v1/subscriptions"), ("PATCH", path)):
        response = await client.request(
            method,
            url,
            json={"chain_id": CHAIN_ID, "webhook_ordering": "fifo"}
            if method == "POST"
            else {"webhook_ordering": "fifo"},
            headers=tenant.headers,
        )
        problem = await expect_problem(response, 422)
        assert [e["pointer"] for e in problem["errors"]] == ["/webhook_ordering"]
