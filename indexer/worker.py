"""The worker process: APScheduler (3.x, asyncio) running logfill's periodic jobs.

Jobs added here run in every worker. The backfill window jobs (one leader per
chain per tick) come with the window issue; today the worker purges expired
Idempotency-Key records.
"""

from __future__ import annotations

import asyncio
import os
import socket

import asyncpg
import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from indexer.queries import QUERIES
from indexer.settings import Settings

log = structlog.get_logger(__name__)


def worker_name() -> str:
    """Identifies this process in leases and the windows audit trail."""
    return f"{socket.gethostname()}:{os.getpid()}"


async def purge_expired_idempotency_keys(pool: asyncpg.Pool) -> None:
    status = await pool.execute(QUERIES["purge_expired_idempotency_keys"])
    purged = int(status.split()[-1])
    if purged:
        log.info("idempotency_keys_purged", count=purged)


def build_scheduler(settings: Settings, pool: asyncpg.Pool) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}
    )
    scheduler.add_job(
        purge_expired_idempotency_keys,
        "interval",
        seconds=settings.maintenance_interval_seconds,
        args=[pool],
        id="purge_expired_idempotency_keys",
    )
    return scheduler


async def run_worker(settings: Settings, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
    """Run the scheduler until `stop` is set, then shut it down."""
    scheduler = build_scheduler(settings, pool)
    scheduler.start()
    log.info("worker_started", worker=worker_name(), chains=sorted(settings.chains))
    try:
        await stop.wait()
    finally:
        scheduler.shutdown(wait=False)
        log.info("worker_stopped", worker=worker_name())
