"""Test databases: a real PostgreSQL, a migrated template, a fresh clone per test.

`LOGFILL_TEST_DATABASE_URL` names a server to use (any database on it; tests
create their own). Without it an embedded PostgreSQL is started for the session,
which is the path a fresh machine takes.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from indexer.db import connect
from indexer.migrations import load_migrations, migrate

REPO_ROOT = Path(__file__).resolve().parent.parent
LOGFILL_BIN = str(Path(sys.executable).parent / "logfill")


def with_database(url: str, name: str) -> str:
    """The same server URL, pointed at another database."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def _admin_execute(server_url: str, *statements: str) -> None:
    conn = await connect(server_url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _create_database(server_url: str, template: str | None = None) -> str:
    name = f"logfill_test_{uuid.uuid4().hex[:12]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    asyncio.run(_admin_execute(server_url, f'CREATE DATABASE "{name}"{clause}'))
    return name


def _drop_database(server_url: str, name: str) -> None:
    asyncio.run(_admin_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A URL of a maintenance database on a real PostgreSQL server."""
    configured = os.environ.get("LOGFILL_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    from indexer.embedded import embedded_database

    with tempfile.TemporaryDirectory(prefix="logfill-test-pg-") as data_dir:
        with embedded_database(Path(data_dir)) as url:
            yield url


@pytest.fixture(scope="session")
def template_database(server_url: str) -> Iterator[str]:
    """A database with every migration applied, cloned by each test."""
    name = _create_database(server_url)

    async def apply() -> None:
        conn = await connect(with_database(server_url, name))
        try:
            await migrate(conn, load_migrations())
        finally:
            await conn.close()

    asyncio.run(apply())
    yield name
    _drop_database(server_url, name)


@pytest.fixture
def database_url(server_url: str, template_database: str) -> Iterator[str]:
    """A fresh, migrated database of this test's own."""
    name = _create_database(server_url, template=template_database)
    yield with_database(server_url, name)
    _drop_database(server_url, name)


@pytest.fixture
def empty_database_url(server_url: str) -> Iterator[str]:
    """A fresh database with nothing in it (for migration tests)."""
    name = _create_database(server_url)
    yield with_database(server_url, name)
    _drop_database(server_url, name)


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await connect(database_url)
    yield connection
    await connection.close()


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for running the `logfill` command against this test's database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGFILL_")}
    env.update(
        LOGFILL_DATABASE_URL=database_url,
        LOGFILL_DATA_DIR=str(tmp_path / "data"),
        LOGFILL_LOG_FORMAT="json",
    )
    return env
