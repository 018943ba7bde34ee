"""Databases on a server: made and dropped by name.

The embedded server's first start makes the `logfill` database; the tests, the
demo and the benchmarks make throwaway databases (a migrated template cloned per
test). One implementation for all of them. Names are quoted identifiers chosen
by logfill itself, never by a client.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg

from indexer.db.pool import connect


def database_url(server_url: str, name: str) -> str:
    """The same server URL, pointed at database `name`."""
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


async def create_database(
    server_url: str, name: str, *, template: str | None = None, exist_ok: bool = False
) -> str:
    """Make database `name` on the server (a copy of `template` if given); its URL."""
    clause = f' TEMPLATE "{template}"' if template else ""
    conn = await connect(server_url)
    try:
        if exist_ok and await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return database_url(server_url, name)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"{clause}')
        except asyncpg.DuplicateDatabaseError:
            if not exist_ok:
                raise  # another process starting at the same moment made it: fine if allowed
    finally:
        await conn.close()
    return database_url(server_url, name)


async def drop_database(server_url: str, name: str) -> None:
    """Drop database `name` if it exists, closing its connections."""
    conn = await connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
