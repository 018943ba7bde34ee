"""What the commands that work on the database share: `migrate`, `api`, `worker`,
`run` and `admin`.

Each runs on LOGFILL_DATABASE_URL or, without it, on the embedded PostgreSQL
(`indexer.db.embedded`), and applies pending migrations before anything else, so
that an operator's first command on a fresh database just works. Answers meant
for scripts go to stdout as JSON.

SIGTERM (`kill`, a service manager) and SIGHUP (the terminal was closed) stop
these commands as Ctrl-C does, closing what they opened: above all the embedded
PostgreSQL, which would otherwise outlive them.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
from types import FrameType
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


# Signals that stop a command like Ctrl-C (SIGINT, which Python handles already).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def ignore_stop_signals() -> None:
    """From here on the command is stopping: a repeated signal must not cut that short.

    A closing terminal can send SIGHUP twice (the shell passes it on to its jobs,
    then the kernel sends it to the foreground group), and a service manager may
    repeat SIGTERM; dying on the second one would leave the embedded PostgreSQL
    running. SIGINT still interrupts (a person at a terminal can insist).
    """
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    ignore_stop_signals()
    raise KeyboardInterrupt


def on_database(settings: Settings, work: Callable[[str], Coroutine[Any, Any, T]]) -> T:
    """Run `work(database_url)` on the configured or the embedded database.

    Until `work` installs its own handlers (`serve` stops gracefully), SIGTERM and
    SIGHUP raise KeyboardInterrupt, so every `with` and `finally` on the way out
    runs; after `work` the database is closed with those signals ignored.
    """
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    for signum in STOP_SIGNALS:
        signal.signal(signum, _interrupt)
    try:
        with resolve_database(settings) as url:
            try:
                return asyncio.run(work(url))
            finally:
                # The loop is closed: asyncio has put its signals back to the default
                # (die at once), which must not happen while the database stops.
                ignore_stop_signals()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


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
