"""`logfill migrate`, `api`, `worker` and `run`: the service's processes.

`api` serves HTTP, `worker` runs the scheduler (backfill windows, webhook
deliveries), `run` both in one process sharing one pool. Each migrates first
and runs until SIGINT, SIGTERM or SIGHUP (the terminal was closed), then closes
what it opened: the listening socket, the worker's tasks, the pool, and the
embedded PostgreSQL when it uses one (`api.cli.database.on_database`). Without
a chain configured each of them says so once at start-up (`no_chains_configured`).
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import asyncpg
import structlog
from aiohttp import web

from api.app import create_app
from api.cli.database import Command, apply_migrations, on_database, print_json
from api.problems import ProblemRunner
from indexer.db.migrate import load_migrations
from indexer.db.pool import create_pool
from indexer.errors import ConfigError
from indexer.settings import Settings
from indexer.worker import run_worker

log = structlog.get_logger("logfill")


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    async def work(url: str) -> None:
        applied = await apply_migrations(settings, url)
        print_json({"applied": applied, "schema_version": load_migrations()[-1].label})

    on_database(settings, work)
    return 0


async def serve(settings: Settings, url: str, *, api: bool, worker: bool) -> None:
    """Migrate, then serve until SIGINT, SIGTERM or SIGHUP; always closes what it opened.

    The handlers go in first: a signal during the migrations is a graceful stop
    too, before anything is served.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, stop.set)
    if not settings.chains:
        warn_no_chains()
    await apply_migrations(settings, url)
    if stop.is_set():
        log.info("stopped")
        return
    pool = await create_pool(
        url,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        timeout=settings.db_connect_timeout_seconds,
    )
    runner: web.AppRunner | None = None
    try:
        if api:
            runner = await _start_api(settings, pool)
        if worker:
            await run_worker(settings, pool, stop, serve_metrics=not api, database_url=url)
        else:
            await stop.wait()
    finally:
        if runner is not None:
            await runner.cleanup()
        await pool.close()
        log.info("stopped")


def warn_no_chains() -> None:
    """Runs, but can do nothing useful: a newcomer's `make run` should not look fine."""
    log.warning(
        "no_chains_configured",
        hint="LOGFILL_CHAINS is empty: the API refuses every subscription and backfill "
        "(chain not configured) and the worker scans nothing. Set LOGFILL_CHAINS (see "
        ".env.example); for a local chain run `make chain` in another terminal and start "
        "with the LOGFILL_CHAINS line it prints.",
    )


async def _start_api(settings: Settings, pool: asyncpg.Pool) -> web.AppRunner:
    runner = ProblemRunner(create_app(settings, pool=pool), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.api_host, settings.api_port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(
            f"cannot listen on {settings.api_host}:{settings.api_port} "
            f"(LOGFILL_API_HOST/LOGFILL_API_PORT): {exc.strerror or exc}"
        ) from exc
    log.info("api_listening", url=f"http://{settings.api_host}:{settings.api_port}")
    return runner


def _serve_command(*, api: bool, worker: bool) -> Command:
    def command(settings: Settings, args: argparse.Namespace) -> int:
        if getattr(args, "port", None) is not None:
            settings = settings.model_copy(update={"api_port": args.port})
        if getattr(args, "host", None) is not None:
            settings = settings.model_copy(update={"api_host": args.host})

        async def work(url: str) -> None:
            await serve(settings, url, api=api, worker=worker)

        on_database(settings, work)
        return 0

    return command


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    migrate = commands.add_parser("migrate", help="apply pending database migrations")
    migrate.set_defaults(func=cmd_migrate)
    for name, help_text, api, worker in (
        ("api", "serve the HTTP API", True, False),
        ("worker", "run the scheduler (backfill windows, webhook deliveries)", False, True),
        ("run", "run the API and the worker in one process", True, True),
    ):
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if api:
            sub.add_argument("--host", help="listen address (default LOGFILL_API_HOST)")
            sub.add_argument("--port", type=int, help="listen port (default LOGFILL_API_PORT)")
        sub.set_defaults(func=_serve_command(api=api, worker=worker))
