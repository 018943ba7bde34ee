"""/openapi.json is true to the handlers: same routes, and schemathesis finds no failure."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import asyncpg
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web_urldispatcher import AbstractRoute

from api.app import create_app
from api.handlers.subscriptions import WEBHOOK_RESOLVER
from indexer.webhooks.ssrf import Resolver
from tests.support.api import (
    Client,
    api_settings,
    body,
    create_backfill,
    create_subscription,
    make_tenant,
    make_unlimited_plan,
)
from tests.support.webhooks import FakeDns

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
# Statuses a schema-valid request may still get: unknown ids, state and range refusals
# (e.g. from_block > to_block), and a valid body over the size cap (10000 addresses).
# ST302 (a created resource must be found) is off: deleting a subscription deletes its
# backfill requests (documented), and the check only knows of a DELETE of the resource
# itself, so a stateful run that deletes the seeded subscription between a POST
# /v1/backfill and its GET fails it at random (seen in CI). Isolation is pinned by
# tests/db/test_api_auth.py and history by tests/db/test_api_backfill.py instead.
CONFIG = """
[checks.ensure_resource_availability]
enabled = false

[checks.positive_data_acceptance]
expected-statuses = ["200", "201", "202", "204", "403", "404", "409", "413", "422"]

[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "409", "413", "422", "429"]
"""


def _dashboard(route: AbstractRoute) -> bool:
    """The dashboard's pages (HTML for people, under /dashboard) are not the API."""
    assert route.resource is not None
    path = route.resource.canonical
    return path == "/" or path.startswith("/dashboard/")


async def test_every_route_is_documented_and_every_documented_route_served(client: Client) -> None:
    document = await body(await client.get("/openapi.json"))
    assert document["openapi"].startswith("3.1")
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    served = {
        (route.method, route.resource.canonical)
        for route in client.app.router.routes()
        if route.resource is not None and route.method != "HEAD" and not _dashboard(route)
    }
    assert documented == served
    assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"


async def test_schemathesis_finds_no_failure(
    database_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    plan = await make_unlimited_plan(conn)
    tenant = await make_tenant(conn, plan=plan)
    app = create_app(api_settings(), database_url=database_url)
    resolve: Resolver = FakeDns()  # generated webhook hosts must not reach real DNS
    app[WEBHOOK_RESOLVER] = resolve
    async with TestClient(TestServer(app, host="127.0.0.1")) as live:
        sub = await create_subscription(live, tenant, webhook_url="https://example.com/h")
        await create_backfill(live, tenant, sub["id"])
        config = tmp_path / "schemathesis.toml"
        config.write_text(CONFIG)
        base = str(live.make_url(""))
        # One worker: two would share the seeded subscription, and one deleting it
        # (which cascades to its backfills) between another's POST and GET makes a
        # false "created resource not found". A stateful scenario can delete it too
        # (schemathesis 4.32 lets `--checks all` override the file's `enabled =
        # false`), so that check is also turned off on the command line.
        process = await asyncio.create_subprocess_exec(
            SCHEMATHESIS, "--config-file", str(config), "run", f"{base}/openapi.json",
            "--checks", "all", "--exclude-checks", "ensure_resource_availability",
            "--header", f"Authorization: Bearer {tenant.api_key}",
            "--max-examples", "15", "--seed", "1", "--workers", "1",
            "--phases", "examples,coverage,fuzzing,stateful", "--max-time", "25",
            "--no-color",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path, env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"},
        )  # fmt: skip
        output, _ = await process.communicate()
    text = output.decode(errors="replace")
    (tmp_path / "schemathesis.txt").write_text(text)
    assert process.returncode == 0, text[-8000:]
