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
from indexer.db.pool import UNAVAILABLE_ERRORS, connect
from indexer.errors import DatabaseUnavailable
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


async def window_job(
    pool: asyncpg.Pool, settings: Settings, chain_id: int, worker: str, *, follow: bool = False
) -> None:
    """One window for one chain; a failure is logged and the next tick tries again."""
    try:
        await run_window(pool, settings, chain_id, worker, follow=follow)
    except UNAVAILABLE_ERRORS as exc:  # the database went away: the next tick tries again
        log.warning(
            "window_failed",
            chain_id=chain_id,
            worker=worker,
            error=f"{type(exc).__name__}: {exc}",
        )
    except Exception:
        log.exception("window_failed", chain_id=chain_id, worker=worker)


class ChainWindows:
    """Starts each chain's windows as tasks, one at a time per chain.

    The scheduler's tick starts a window (a new tick's budget). A request that
    becomes runnable wakes the chain (`wake`, from the database's NOTIFY): a window
    starts at once, following the tick's last one on what its budget has left. A
    tick or a wake that finds the chain's window running is remembered: when that
    window ends, the next one starts at once (a new tick if the window outlasted
    its own, else a follower in the same tick), with no warning per skipped tick.
    APScheduler still owns the clock.
    """

    def __init__(self, pool: asyncpg.Pool, settings: Settings, worker: str) -> None:
        self.pool = pool
        self.settings = settings
        self.worker = worker
        self.running: dict[int, asyncio.Task[None]] = {}
        self.again: set[int] = set()

    async def tick(self, chain_id: int) -> None:
        self._start(chain_id, follow=False)

    def wake(self, chain_id: int) -> None:
        """A request on this chain can run: start a window now if the tick allows."""
        if chain_id in self.settings.chains:
            self._start(chain_id, follow=True)

    def _start(self, chain_id: int, *, follow: bool) -> None:
        task = self.running.get(chain_id)
        if task is not None and not task.done():
            self.again.add(chain_id)
            return
        self.running[chain_id] = asyncio.create_task(
            self._windows(chain_id, follow), name=f"window:{chain_id}"
        )

    async def _windows(self, chain_id: int, follow: bool) -> None:
        await window_job(self.pool, self.settings, chain_id, self.worker, follow=follow)
        while chain_id in self.again:
            self.again.discard(chain_id)
            await window_job(self.pool, self.settings, chain_id, self.worker, follow=True)

    async def stop(self) -> None:
        """Cancel windows in flight (a commit is one transaction: nothing half-written)."""
        tasks = [task for task in self.running.values() if not task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


REQUESTS_CHANNEL = "logfill_requests"  # NOTIFY'd by migrations/0014_window_wakeup.sql


async def listen_for_requests(
    database_url: str, windows: ChainWindows, *, retry_seconds: float = 5.0
) -> None:
    """Wake a chain's windows when one of its requests becomes runnable.

    One connection of its own LISTENs (a pooled one would be handed to others). If
    it is lost, windows still run on every tick; it reconnects after `retry_seconds`.
    """

    def on_notify(_conn: object, _pid: int, _channel: str, payload: object) -> None:
        if isinstance(payload, str) and payload.isdigit():
            windows.wake(int(payload))

    while True:
        try:
            conn = await connect(database_url)
        except DatabaseUnavailable as exc:
            log.warning("listen_unavailable", error=str(exc), retry_seconds=retry_seconds)
            await asyncio.sleep(retry_seconds)
            continue
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
        try:
            await conn.add_listener(REQUESTS_CHANNEL, on_notify)
            log.info("listening_for_requests", channel=REQUESTS_CHANNEL)
            await lost.wait()
            log.warning("listen_lost", retry_seconds=retry_seconds)
        finally:
            await conn.close()
        await asyncio.sleep(retry_seconds)


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
    settings: Settings,
    pool: asyncpg.Pool,
    stop: asyncio.Event,
    *,
    serve_metrics: bool = True,
    database_url: str | None = None,
) -> None:
    """Run the scheduler until `stop` is set, then shut it down. With `database_url`,
    a request queued, resumed or topped up starts its chain's window at once."""
    windows = ChainWindows(pool, settings, settings.worker_name or worker_name())
    scheduler = build_scheduler(settings, pool, windows=windows)
    if serve_metrics and settings.worker_metrics_port:
        serve_worker_metrics(settings)
    listening = (
        asyncio.create_task(listen_for_requests(database_url, windows), name="listen")
        if database_url and settings.chains
        else None
    )
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
            if listening is not None:
                listening.cancel()
                await asyncio.gather(listening, return_exceptions=True)
            await windows.stop()
    log.info("worker_stopped", worker=settings.worker_name or worker_name())
