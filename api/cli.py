"""The `logfill` command: serve the API and the worker, migrate, administer.

It lives in `api/` because it is the one place that starts both the API and the
worker (`api` may import `indexer`, never the reverse).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import asyncpg
import orjson
import structlog
from aiohttp import web

from api.app import create_app
from indexer import workspaces
from indexer.db import connect, create_pool
from indexer.embedded import resolve_database
from indexer.errors import ConfigError, LogfillError
from indexer.logging import configure_logging
from indexer.migrations import load_migrations, migrate
from indexer.settings import Settings, load_settings
from indexer.worker import run_worker

log = structlog.get_logger("logfill")
Command = Callable[[Settings, argparse.Namespace], int]


def _print_json(value: object) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()


def _with_database(
    work: Callable[[str], Coroutine[Any, Any, object]],
) -> Callable[[Settings, argparse.Namespace], object]:
    """Run `work(database_url)` on the configured or the embedded database."""

    def run(settings: Settings, _: argparse.Namespace) -> object:
        with resolve_database(settings) as url:
            return asyncio.run(work(url))

    return run


async def _apply_migrations(settings: Settings, url: str) -> list[str]:
    conn = await connect(url, timeout=settings.db_connect_timeout_seconds)
    try:
        applied = await migrate(conn, load_migrations())
    finally:
        await conn.close()
    if applied:
        log.info("migrations_applied", migrations=[m.label for m in applied])
    return [m.label for m in applied]


# --- migrate -------------------------------------------------------------------


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    async def work(url: str) -> None:
        applied = await _apply_migrations(settings, url)
        _print_json({"applied": applied, "schema_version": load_migrations()[-1].label})

    _with_database(work)(settings, args)
    return 0


# --- api / worker / run ----------------------------------------------------------


async def _serve(settings: Settings, url: str, *, api: bool, worker: bool) -> None:
    """Migrate, then serve until SIGINT/SIGTERM; always closes what it opened."""
    await _apply_migrations(settings, url)
    pool = await create_pool(
        url,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        timeout=settings.db_connect_timeout_seconds,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner: web.AppRunner | None = None
    try:
        if api:
            runner = await _start_api(settings, pool)
        if worker:
            await run_worker(settings, pool, stop, serve_metrics=not api)
        else:
            await stop.wait()
    finally:
        if runner is not None:
            await runner.cleanup()
        await pool.close()
        log.info("stopped")


async def _start_api(settings: Settings, pool: asyncpg.Pool) -> web.AppRunner:
    runner = web.AppRunner(create_app(settings, pool=pool), access_log=None)
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
            await _serve(settings, url, api=api, worker=worker)

        _with_database(work)(settings, args)
        return 0

    return command


# --- admin -------------------------------------------------------------------------


def _admin(action: Callable[[asyncpg.Connection, argparse.Namespace], Awaitable[Any]]) -> Command:
    """Admin commands: one connection, one action, its JSON answer on stdout."""

    def command(settings: Settings, args: argparse.Namespace) -> int:
        async def work(url: str) -> Any:
            await _apply_migrations(settings, url)
            conn = await connect(url, timeout=settings.db_connect_timeout_seconds)
            try:
                return await action(conn, args)
            finally:
                await conn.close()

        _print_json(_with_database(work)(settings, args))
        return 0

    return command


async def _workspace_create(conn: asyncpg.Connection, args: argparse.Namespace) -> object:
    created = await workspaces.create_workspace(
        conn, name=args.name, plan=args.plan, credits=args.credits
    )
    return {"workspace_id": str(created.workspace_id), "api_key": created.api_key}


async def _credits_add(conn: asyncpg.Connection, args: argparse.Namespace) -> object:
    workspace_id = workspaces.parse_workspace_id(args.workspace)
    balance = await workspaces.add_credits(conn, workspace_id, args.amount)
    return {"workspace_id": str(workspace_id), "credits": balance}


async def _plan_set(conn: asyncpg.Connection, args: argparse.Namespace) -> object:
    workspace_id = workspaces.parse_workspace_id(args.workspace)
    plan = await workspaces.set_plan(conn, workspace_id, args.plan)
    return {"workspace_id": str(workspace_id), "plan": plan}


# --- parser ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logfill",
        description="Blockchain event-log backfill service. Settings come from LOGFILL_* "
        "environment variables or a .env file (see .env.example).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    migrate_parser = commands.add_parser("migrate", help="apply pending database migrations")
    migrate_parser.set_defaults(func=cmd_migrate)

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

    _add_admin_parser(commands)
    return parser


def _add_admin_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin = commands.add_parser("admin", help="operator commands (print JSON on stdout)")
    groups = admin.add_subparsers(dest="group", required=True, metavar="GROUP")

    workspace = groups.add_parser("workspace", help="manage workspaces")
    ws_actions = workspace.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = ws_actions.add_parser(
        "create", help="create a workspace and print its id and first API key (shown once)"
    )
    create.add_argument("--name", required=True, help="workspace name")
    create.add_argument("--plan", required=True, help="plan name: free, pro or enterprise")
    create.add_argument("--credits", type=int, default=0, help="opening credit balance")
    create.set_defaults(func=_admin(_workspace_create))

    credits = groups.add_parser("credits", help="manage credit balances")
    credit_actions = credits.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = credit_actions.add_parser(
        "add", help="top up a workspace; paused_credits requests resume at their next window"
    )
    add.add_argument("--workspace", required=True, help="workspace id")
    add.add_argument("--amount", type=int, required=True, help="credits to add (> 0)")
    add.set_defaults(func=_admin(_credits_add))

    plan = groups.add_parser("plan", help="manage plans of workspaces")
    plan_actions = plan.add_subparsers(dest="action", required=True, metavar="ACTION")
    set_plan = plan_actions.add_parser("set", help="move a workspace to another plan")
    set_plan.add_argument("--workspace", required=True, help="workspace id")
    set_plan.add_argument("--plan", required=True, help="plan name")
    set_plan.set_defaults(func=_admin(_plan_set))


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings.log_level, settings.log_format)
        code = args.func(settings, args)
    except LogfillError as exc:
        sys.stderr.write(f"logfill: {exc}\n")
        code = exc.exit_code
    except KeyboardInterrupt:
        code = 130
    raise SystemExit(code)


if __name__ == "__main__":
    main()
