"""Test databases: a migrated template on the session's server, a fresh clone per test.

The server is `server_url` (tests/conftest.py: LOGFILL_TEST_DATABASE_URL or an
embedded PostgreSQL). Databases are made and dropped with `indexer.db.admin`,
as the demo and the benchmarks make theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections import deque
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any, TypeVar

import asyncpg
import pytest

from indexer.db.admin import create_database, drop_database
from indexer.db.migrate import load_migrations, migrate
from indexer.db.pool import connect

T = TypeVar("T")
CLONES_AHEAD = 3  # copies made while a test runs; 4 at once measured fastest on 2 cores


def unique_name() -> str:
    return f"logfill_test_{uuid.uuid4().hex[:12]}"


@contextmanager
def throwaway_database(
    server_url: str, *, template: str | None = None, name: str | None = None
) -> Iterator[str]:
    """A new database (a copy of `template` if given) for the block; its URL. Dropped after."""
    name = name or unique_name()
    url = asyncio.run(create_database(server_url, name, template=template))
    try:
        yield url
    finally:
        asyncio.run(drop_database(server_url, name))


@pytest.fixture(scope="session")
def template_database(server_url: str) -> Iterator[str]:
    """The name of a database with every migration applied, cloned by each test."""

    async def apply(url: str) -> None:
        conn = await connect(url)
        try:
            await migrate(conn, load_migrations())
        finally:
            await conn.close()

    name = unique_name()
    with throwaway_database(server_url, name=name) as url:
        asyncio.run(apply(url))
        yield name


class Clones:
    """Copies of the template, made a few at a time ahead of the tests that take them.

    A CREATE DATABASE ... TEMPLATE takes 0.1-0.4 s, mostly waiting on the disk, and
    a few of them side by side take little longer than one. So the next copies are
    made on a thread of their own while a test runs, and a used one is dropped there
    too: a test waits for its database only when the server is slower than the tests.
    """

    def __init__(self, server_url: str, template: str, *, ahead: int = CLONES_AHEAD) -> None:
        self.server_url = server_url
        self.template = template
        self.ahead = ahead
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="test-database-clones", daemon=True
        )
        self._thread.start()
        self._made: deque[tuple[str, Future[str]]] = deque()
        self._dropped: list[Future[None]] = []

    def _run(self, work: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(work, self._loop)

    def take(self) -> tuple[str, str]:
        """(name, URL) of a fresh copy of the template; the next ones are on their way."""
        while len(self._made) <= self.ahead:
            name = unique_name()
            made = self._run(create_database(self.server_url, name, template=self.template))
            self._made.append((name, made))
        name, made = self._made.popleft()
        return name, made.result()

    def drop(self, name: str) -> None:
        """Drop a copy (closing its connections), without waiting for it."""
        self._dropped.append(self._run(drop_database(self.server_url, name)))

    def close(self) -> None:
        """Drop the copies no test took, wait for every drop, stop the thread."""
        while self._made:
            name, made = self._made.popleft()
            with contextlib.suppress(Exception):  # a copy that failed to be made: nothing to drop
                made.result()
            self.drop(name)
        try:
            for dropped in self._dropped:
                dropped.result()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()


@pytest.fixture(scope="session")
def clones(server_url: str, template_database: str) -> Iterator[Clones]:
    supplier = Clones(server_url, template_database)
    try:
        yield supplier
    finally:
        supplier.close()


@pytest.fixture
def database_url(clones: Clones) -> Iterator[str]:
    """A fresh, migrated database of this test's own."""
    name, url = clones.take()
    yield url
    clones.drop(name)


@pytest.fixture
def empty_database_url(server_url: str) -> Iterator[str]:
    """A fresh database with nothing in it (for migration tests)."""
    with throwaway_database(server_url) as url:
        yield url


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await connect(database_url)
    yield connection
    await connection.close()
