"""/healthz and /readyz, and problem+json for aiohttp's own errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import asyncpg
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from indexer.db.migrate import load_migrations
from indexer.db.pool import connect
from indexer.settings import Settings

ALL = [m.label for m in load_migrations()]
LATEST = ALL[-1]


@asynccontextmanager
async def serve(database_url: str) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    app = create_app(Settings(_env_file=None), database_url=database_url)  # type: ignore[call-arg]
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_healthz_and_readyz_answer_200_on_a_migrated_database(database_url: str) -> None:
    async with serve(database_url) as client:
        health = await client.get("/healthz")
        assert (health.status, await health.json()) == (200, {"status": "ok"})
        ready = await client.get("/readyz")
        assert ready.status == 200
        assert await ready.json() == {"status": "ready", "schema_version": LATEST}


async def test_readyz_is_503_before_migrations(empty_database_url: str) -> None:
    async with serve(empty_database_url) as client:
        assert (await client.get("/healthz")).status == 200
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert ready.content_type == "application/problem+json"
        body = await ready.json()
        assert body["detail"] == f"migrations not applied: {', '.join(ALL)}"


async def test_readyz_is_503_on_a_tampered_database(
    database_url: str, conn: asyncpg.Connection
) -> None:
    await conn.execute("UPDATE schema_migrations SET checksum = 'x'")
    async with serve(database_url) as client:
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert "0001_schema changed after it was applied" in (await ready.json())["detail"]


async def test_readyz_is_503_when_the_database_goes_away(
    database_url: str, server_url: str
) -> None:
    async with serve(database_url) as client:
        assert (await client.get("/readyz")).status == 200
        name = urlsplit(database_url).path.lstrip("/")
        admin = await connect(server_url)
        try:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert (await ready.json())["detail"].startswith("database unreachable")
        assert (await client.get("/healthz")).status == 200


async def test_unknown_routes_and_methods_are_problem_json(database_url: str) -> None:
    async with serve(database_url) as client:
        missing = await client.get("/nope")
        assert missing.status == 404
        assert missing.content_type == "application/problem+json"
        assert await missing.json() == {"type": "about:blank", "title": "Not Found", "status": 404}
        wrong = await client.post("/healthz")
        assert wrong.status == 405
        assert wrong.content_type == "application/problem+json"
        assert "GET" in wrong.headers["Allow"]
