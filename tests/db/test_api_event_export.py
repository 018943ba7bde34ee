"""Stored events by block range, and exported whole as NDJSON or CSV, streamed."""

from __future__ import annotations

import csv
import io

import asyncpg
import orjson
import pytest

from api.handlers.events import CSV_COLUMNS
from indexer import events
from tests.support.api import (
    TOKEN,
    TRANSFER_TOPIC,
    Client,
    Tenant,
    body,
    create_subscription,
    expect_problem,
    make_tenant,
)
from tests.support.factories import store_transfer_matches

BLOCKS = [100, 100, 150, 200, 200, 200, 250, 300, 301, 400]  # two logs share block 100, ...


async def store_matches(conn: asyncpg.Connection, subscription_id: str) -> None:
    """One decodable Transfer per entry of BLOCKS; its value is its position."""
    await store_transfer_matches(conn, subscription_id, TOKEN, BLOCKS)


@pytest.fixture
async def subscription(client: Client, tenant: Tenant, conn: asyncpg.Connection) -> str:
    sub = await create_subscription(client, tenant)
    await store_matches(conn, sub["id"])
    return str(sub["id"])


def values(items: list[dict[str, object]]) -> list[int]:
    return [int(str(e["decoded"]["args"]["value"])) for e in items]  # type: ignore[index]


async def test_block_bounds_select_the_inclusive_range_on_every_page(
    client: Client, tenant: Tenant, subscription: str
) -> None:
    url = f"/v1/subscriptions/{subscription}/events?from_block=150&to_block=301&limit=2"
    seen: list[dict[str, object]] = []
    page = await body(await client.get(url, headers=tenant.headers))
    seen += page["items"]
    while page["next"]:
        page = await body(await client.get(f"{url}&after={page['next']}", headers=tenant.headers))
        seen += page["items"]
    assert [e["block_number"] for e in seen] == [150, 200, 200, 200, 250, 300, 301]
    assert values(seen) == [2, 3, 4, 5, 6, 7, 8]
    one = f"/v1/subscriptions/{subscription}/events?from_block=200&to_block=200"
    assert values((await body(await client.get(one, headers=tenant.headers)))["items"]) == [3, 4, 5]


async def test_ndjson_streams_every_event_in_the_bounds_as_the_json_pages_show_them(
    client: Client, tenant: Tenant, subscription: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "EXPORT_BATCH", 3)  # several batches: the stream goes on
    page = await body(
        await client.get(f"/v1/subscriptions/{subscription}/events", headers=tenant.headers)
    )
    response = await client.get(
        f"/v1/subscriptions/{subscription}/events?limit=1",
        headers={**tenant.headers, "Accept": "application/x-ndjson"},
    )
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/x-ndjson")
    assert response.headers.get("Transfer-Encoding") == "chunked"
    lines = (await response.read()).decode().splitlines()
    assert [orjson.loads(line) for line in lines] == page["items"]  # `limit` is for pages

    bounded = await client.get(
        f"/v1/subscriptions/{subscription}/events?from_block=101&to_block=250",
        headers={**tenant.headers, "Accept": "application/x-ndjson"},
    )
    assert values([orjson.loads(line) for line in (await bounded.read()).splitlines()]) == [
        2,
        3,
        4,
        5,
        6,
    ]


async def test_csv_has_a_header_and_one_row_per_event_with_decoded_arguments(
    client: Client, tenant: Tenant, subscription: str
) -> None:
    response = await client.get(
        f"/v1/subscriptions/{subscription}/events?to_block=200",
        headers={**tenant.headers, "Accept": "text/csv"},
    )
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO((await response.read()).decode())))
    assert [int(r["block_number"]) for r in rows] == [100, 100, 150, 200, 200, 200]
    first = rows[0]
    assert first["event"] == "Transfer" and first["address"] == TOKEN
    assert orjson.loads(first["args"]) == {
        "from": "0x" + "11" * 20,
        "to": "0x" + "22" * 20,
        "value": "0",
    }
    assert first["topic0"] == TRANSFER_TOPIC and first["topic3"] == ""
    assert first["id"].startswith("evt_") and first["stored_at"].endswith("Z")


async def test_an_empty_export_is_a_header_only_or_nothing(
    client: Client, tenant: Tenant, subscription: str
) -> None:
    url = f"/v1/subscriptions/{subscription}/events?from_block=5000"
    as_csv = await client.get(url, headers={**tenant.headers, "Accept": "text/csv"})
    assert (await as_csv.read()).decode().splitlines() == [",".join(CSV_COLUMNS)]
    as_ndjson = await client.get(url, headers={**tenant.headers, "Accept": "application/x-ndjson"})
    assert await as_ndjson.read() == b""


async def test_bad_bounds_an_unknown_format_and_another_workspace_are_refused_before_streaming(
    client: Client, tenant: Tenant, subscription: str, conn: asyncpg.Connection
) -> None:
    url = f"/v1/subscriptions/{subscription}/events"
    ndjson = {**tenant.headers, "Accept": "application/x-ndjson"}
    reversed_range = await client.get(f"{url}?from_block=300&to_block=200", headers=ndjson)
    problem = await expect_problem(reversed_range, 422)
    assert problem["errors"][0]["parameter"] == "to_block"
    negative = await client.get(f"{url}?from_block=-1", headers=ndjson)
    assert (await expect_problem(negative, 422))["errors"][0]["parameter"] == "from_block"
    html = await client.get(url, headers={**tenant.headers, "Accept": "text/html"})
    await expect_problem(html, 406, "not-acceptable")
    other = await make_tenant(conn)
    stranger = await client.get(url, headers={**other.headers, "Accept": "text/csv"})
    await expect_problem(stranger, 404)
