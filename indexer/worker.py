"""The worker process: APScheduler (3.x, asyncio) running logfill's periodic jobs.

Every worker schedules, per configured chain, the backfill window every
`tick_seconds`; the lease in `chain_state` lets exactly one of them run it per
tick. Every worker also purges expired Idempotency-Key records and dashboard
sessions, and sends
webhook deliveries from the outbox (`indexer.webhooks.dispatcher`, a task beside
the scheduler, running even when no chain is configured).
"""

from __future__ import annotations

import asyncio
import errno
import os
import secrets
import socket
from datetime import UTC, datetime

import asyncpg
import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import start_http_server

from indexer import sessions
from indexer.db import queries
from indexer.settings import Settings
from indexer.webhooks.dispatcher import delivering
from indexer.window.run import run_window

log = structlog.get_logger(__name__)


_INSTANCE = secrets.token_hex(3)  # hostname:pid repeats across clones and containers


def worker_name() -> str:
    """Identifies this process in leases and the windows audit trail."""
    return f"{socket.gethostname()}:{os.getpid()}:{_INSTANCE}"


async def maintenance(pool: asyncpg.Pool, log_cache_days: float = 30.0) -> None:
    """Forget what can no longer be used: expired Idempotency-Key records and
    dashboard sessions, and the log cache's fragments unused for `log_cache_days`."""
    status = await queries.execute(pool, "purge_expired_idempotency_keys")
    purged = int(status.split()[-1])
    if purged:
        log.info("idempotency_keys_purged", count=purged)
    async with pool.acquire() as conn:
        forgotten = await sessions.forget_expired(conn)
    if forgotten:
        log.info("dashboard_sessions_purged", count=forgotten)
    status = await queries.execute(
        pool, "forget_unused_log_fragments", unused_seconds=log_cache_days * 86400
    )
    dropped = int(status.split()[-1])
    if dropped:
        log.info("log_cache_fragments_forgotten", count=dropped)


async def window_job(pool: asyncpg.Pool, settings: Settings, chain_id: int, worker: str) -> None:
    """One window for one chain; a failure is logged and the next tick tries again."""
    try:
        await run_window(pool, settings, chain_id, worker)
    except Exception:
        log.exception("window_failed", chain_id=chain_id, worker=worker)


class ChainWindows:
    """The tick of each chain starts its window as a task and returns at once.

    A window longer than a tick is normal under load: the ticks that find the
    chain's window still running leave it be (no warning per skipped tick; the
    window records itself in `window_finished`), and the next tick after it ends
    starts the next one. APScheduler still owns the clock.
    """

    def __init__(self, pool: asyncpg.Pool, settings: Settings, worker: str) -> None:
        self.pool = pool
        self.settings = settings
        self.worker = worker
        self.running: dict[int, asyncio.Task[None]] = {}

    async def tick(self, chain_id: int) -> None:
        task = self.running.get(chain_id)
        if task is not None and not task.done():
            return
        self.running[chain_id] = asyncio.create_task(
            window_job(self.pool, self.settings, chain_id, self.worker), name=f"window:{chain_id}"
        )

    async def stop(self) -> None:
        """Cancel windows in flight (a commit is one transaction: nothing half-written)."""
        tasks = [task for task in self.running.values() if not task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def build_scheduler(
    settings: Settings,
    pool: asyncpg.Pool,
    worker: str | None = None,
    windows: ChainWindows | None = None,
) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}
    )
    scheduler.add_job(
        maintenance,
        "interval",
        seconds=settings.maintenance_interval_seconds,
        args=[pool, settings.log_cache_days],
        id="maintenance",
    )
    windows = windows or ChainWindows(
        pool, settings, worker or settings.worker_name or worker_name()
    )
    for chain_id, chain in sorted(settings.chains.items()):
        scheduler.add_job(
            windows.tick,
            "interval",
            seconds=chain.tick_seconds,
            args=[chain_id],
            id=f"window:{chain_id}",
            next_run_time=datetime.now(UTC),  # the first window right away
        )
    return scheduler


def serve_worker_metrics(settings: Settings) -> bool:
    """Serve Prometheus metrics on LOGFILL_WORKER_METRICS_PORT, if the port can be had.

    A second worker on the same host finds the port taken. Windows and deliveries
    matter more than this worker's metrics (the first worker's are served, and the
    lease shares the work between them), so it logs one warning and runs without
    them instead of refusing to start.
    """
    port = settings.worker_metrics_port
    try:
        start_http_server(port, addr=settings.api_host)
    except OSError as exc:
        event = "metrics_port_in_use" if exc.errno == errno.EADDRINUSE else "metrics_unavailable"
        log.warning(
            event,
            port=port,
            error=exc.strerror or str(exc),
            hint="this worker runs without serving metrics; give each worker on a host "
            "its own LOGFILL_WORKER_METRICS_PORT (0: none)",
        )
        return False
    log.info("metrics_listening", port=port)
    return True


async def run_worker(
    settings: Settings, pool: asyncpg.Pool, stop: asyncio.Event, *, serve_metrics: bool = True
) -> None:
    """Run the scheduler until `stop` is set, then shut it down."""
    windows = ChainWindows(pool, settings, settings.worker_name or worker_name())
    scheduler = build_scheduler(settings, pool, windows=windows)
    if serve_metrics and settings.worker_metrics_port:
        serve_worker_metrics(settings)
    async with delivering(settings, pool):
        scheduler.start()
        log.info(
            "worker_started",
            worker=settings.worker_name or worker_name(),
            chains=sorted(settings.chains),
        )
        try:
            await stop.wait()
        finally:
            scheduler.shutdown(wait=False)
            await windows.stop()
    log.info("worker_stopped", worker=settings.worker_name or worker_name())
