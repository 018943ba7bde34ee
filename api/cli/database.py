"""What the commands that work on the database share: `migrate`, `api`, `worker`,
`run` and `admin`.

Each runs on LOGFILL_DATABASE_URL or, without it, on the embedded PostgreSQL
(`indexer.db.embedded`), and applies pending migrations before anything else, so
that an operator's first command on a fresh database just works. Answers meant
for scripts go to stdout as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import orjson
import structlog

from indexer.db.embedded import resolve_database
from indexer.db.migrate import load_migrations, migrate
from indexer.db.pool import connect
from indexer.settings import Settings

log = structlog.get_logger("logfill")
T = TypeVar("T")
# A command that needs the settings (and so a database); its return is the exit code.
Command = Callable[[Settings, argparse.Namespace], int]


def on_database(settings: Settings, work: Callable[[str], Coroutine[Any, Any, T]]) -> T:
    """Run `work(database_url)` on the configured or the embedded database."""
    with resolve_database(settings) as url:
        return asyncio.run(work(url))


async def apply_migrations(settings: Settings, url: str) -> list[str]:
    """Apply what is pending (under the migration lock); the labels applied."""
    conn = await connect(url, timeout=settings.db_connect_timeout_seconds)
    try:
        applied = await migrate(conn, load_migrations())
    finally:
        await conn.close()
    if applied:
        log.info("migrations_applied", migrations=[m.label for m in applied])
    return [m.label for m in applied]


def print_json(value: object) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()
