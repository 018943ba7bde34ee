"""Helpers for API tests: the app on a real PostgreSQL, workspaces with keys, requests.

The `tenant` and `client` fixtures are loaded for every test by `pytest_plugins` in
tests/conftest.py.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.handlers.subscriptions import WEBHOOK_RESOLVER
from indexer.accounts import create_workspace
from indexer.settings import ChainSettings, Settings
from indexer.webhooks.ssrf import Resolver
from tests.support.webhooks import FakeDns

CHAIN_ID = 1
PROBLEM = "application/problem+json"
TRANSFER = "Transfer(address indexed from, address indexed to, uint256 value)"
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"

Client = TestClient[web.Request, web.Application]


def api_settings(**overrides: Any) -> Settings:
    """One configured chain (never called: the API does not talk to chains), 12
    confirmations given (chain 1's own default is the finalized tag)."""
    chain = {"rpc_url": "http://127.0.0.1:9", "confirmations": 12}
    chains = {CHAIN_ID: ChainSettings.model_validate(chain)}
    return Settings(_env_file=None, chains=chains, **overrides)  # type: ignore[call-arg]


@asynccontextmanager
async def serve(database_url: str, **overrides: Any) -> AsyncIterator[Client]:
    app = create_app(api_settings(**overrides), database_url=database_url)
    resolve: Resolver = FakeDns()  # webhook URLs are resolved when set: never real DNS
    app[WEBHOOK_RESOLVER] = resolve
    async with TestClient(TestServer(app)) as client:
        yield client


@dataclass(frozen=True)
class Tenant:
    workspace_id: uuid.UUID
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


async def make_tenant(conn: asyncpg.Connection, *, plan: str = "pro", credits: int = 100) -> Tenant:
    created = await create_workspace(conn, name="tenant", plan=plan, credits=credits)
    return Tenant(created.workspace_id, created.api_key)


async def make_unlimited_plan(conn: asyncpg.Connection, name: str = "unlimited") -> str:
    await conn.execute(
        "INSERT INTO plans (name, backfill_enabled, max_backfill_blocks, api_requests_per_minute)"
        " VALUES ($1, true, 10000000, 10000000) ON CONFLICT DO NOTHING",
        name,
    )
    return name


async def body(response: ClientResponse) -> Any:
    return await response.json(content_type=None)


async def expect_problem(response: ClientResponse, status: int, type_suffix: str = "") -> Any:
    """The response is problem+json with this status (and a type ending in `type_suffix`)."""
    data = await body(response)
    assert response.status == status, data
    assert response.content_type == PROBLEM
    assert data["status"] == status
    assert data["title"]
    assert data["type"].endswith(type_suffix), data["type"]
    return data


async def create_subscription(client: Client, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    payload = {"chain_id": CHAIN_ID, "addresses": [TOKEN], "events": [TRANSFER], **fields}
    response = await client.post("/v1/subscriptions", json=payload, headers=tenant.headers)
    data = await body(response)
    assert response.status == 201, data
    return dict(data)


async def create_backfill(
    client: Client, tenant: Tenant, subscription_id: str, **fields: Any
) -> dict[str, Any]:
    payload = {"subscription_id": subscription_id, "from_block": 100, "to_block": 200, **fields}
    response = await client.post("/v1/backfill", json=payload, headers=tenant.headers)
    data = await body(response)
    assert response.status == 202, data
    return dict(data)


def key_headers(tenant: Tenant, key: str) -> dict[str, str]:
    """The tenant's headers with an Idempotency-Key."""
    return {**tenant.headers, "Idempotency-Key": key}


async def count_requests(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM backfill_requests"))


async def set_head(conn: asyncpg.Connection, head: int, safe_head: int | None = None) -> None:
    await conn.execute(
        "INSERT INTO chain_state (chain_id, head, safe_head) VALUES ($1, $2, $3)"
        " ON CONFLICT (chain_id) DO UPDATE SET head = $2, safe_head = $3",
        CHAIN_ID,
        head,
        safe_head,
    )


@pytest.fixture
async def tenant(conn: asyncpg.Connection) -> Tenant:
    return await make_tenant(conn)


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[Client]:
    async with serve(database_url) as test_client:
        yield test_client
