"""How many `logfill api` processes are alive, kept in PostgreSQL, so that a key's rate
limit holds across them.

Each process writes its row in `api_processes` every `api_presence_seconds` and
reads how many rows were written within three of those intervals. Its rate
limiter then gives each key that share of the plan's requests per minute: behind
a load balancer that spreads requests evenly, the key gets its plan's rate in
all, with no database write per request. A killed process stops counting
within three intervals; until then the others are a little stricter.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
import structlog
from aiohttp import web
from prometheus_client import Gauge

from api.state import POOL, RATE_LIMITER, SETTINGS
from indexer.db import queries
from indexer.db.pool import UNAVAILABLE_ERRORS

log = structlog.get_logger(__name__)

LIVE = Gauge("logfill_api_processes", "API processes alive, as this process last counted")
FRESH_BEATS = 3  # a process counts while its last beat is this many intervals old at most
# The database away, or not migrated yet: the last count holds until a beat succeeds.
BEAT_ERRORS: tuple[type[BaseException], ...] = (*UNAVAILABLE_ERRORS, asyncpg.PostgresError)


async def beat(pool: asyncpg.Pool, process_id: uuid.UUID, interval: float) -> int:
    """Say this process is alive; how many are."""
    live: int = await queries.fetchval(
        pool, "api_process_beat", process_id=process_id, fresh_seconds=interval * FRESH_BEATS
    )
    return live


def presence() -> Callable[[web.Application], AsyncIterator[None]]:
    """The app's presence beats, from start (after the pool) to shutdown."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        interval = app[SETTINGS].api_presence_seconds
        process_id = uuid.uuid4()
        limiter = app[RATE_LIMITER]

        async def keep_beating() -> None:
            failing = False
            while True:
                try:
                    limiter.processes = await beat(app[POOL], process_id, interval)
                    LIVE.set(limiter.processes)
                    failing = False
                except BEAT_ERRORS as exc:
                    if not failing:
                        log.warning("api_presence_failed", error=type(exc).__name__)
                    failing = True
                await asyncio.sleep(interval)

        task = asyncio.create_task(keep_beating(), name="api-presence")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        try:
            await queries.execute(app[POOL], "api_process_gone", process_id=process_id)
        except BEAT_ERRORS:
            pass  # its row ages out

    return context
