"""The `logfill` command: serve the API and the worker, migrate, administer, and
drive a running API (`logfill backfill ...`) or the whole demo (`logfill demo`).

It lives in `api/` because it is the one place that starts both the API and the
worker (`api` may import `indexer`, never the reverse).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import asyncpg
import httpx
import orjson
import structlog
from aiohttp import web
from rich.console import Console
from rich.table import Table

from api.app import create_app
from api.client import ACTIONS, ApiClient, ApiError, watch_backfill
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


# --- backfill (a client of a running API) ---------------------------------------------

DEFAULT_API_URL = "http://127.0.0.1:8080"
ClientCommand = Callable[[ApiClient, argparse.Namespace], Awaitable[int]]


def _client_command(action: ClientCommand) -> Callable[[argparse.Namespace], int]:
    """Run `action` with an ApiClient; an API refusal is one line on stderr and exit 1."""

    def command(args: argparse.Namespace) -> int:
        if not args.api_key:
            sys.stderr.write("logfill: no API key: pass --api-key or set LOGFILL_API_KEY\n")
            return 2

        async def work() -> int:
            async with ApiClient(args.api_url, args.api_key) as client:
                return await action(client, args)

        try:
            return asyncio.run(work())
        except ApiError as exc:
            sys.stderr.write(f"logfill: {exc}\n")
            return 1

    return command


def _describe_backfill(b: dict[str, Any]) -> str:
    cursor = "-" if b["cursor"] is None else b["cursor"]
    labels = ", ".join(f"{k}={v}" for k, v in b["labels"].items()) or "-"
    lines = [
        f"backfill {b['id']}  {b['status']}",
        f"  subscription {b['subscription_id']}  chain {b['chain_id']}",
        f"  blocks       {b['from_block']} -> {b['to_block']} ({b['order']})  cursor {cursor}",
        f"  progress     {b['progress']:.0%} ({b['blocks_scanned']}/{b['blocks_total']} blocks)",
        f"  matches      {b['matches']} (new {b['new_matches']}, "
        f"duplicates {b['duplicate_matches']})",
        f"  cost         {b['credits_charged']} credits, {b['cu_spent']} CU, "
        f"{b['windows']} windows",
        f"  labels       {labels}",
        f"  created      {b['created_at']}  finished {b['finished_at'] or '-'}",
    ]
    if b["error"]:
        lines.append(f"  error        {b['error']}")
    return "\n".join(lines) + "\n"


def _show(args: argparse.Namespace, body: dict[str, Any], text: str) -> None:
    sys.stdout.write(
        orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n" if args.json else text
    )
    sys.stdout.flush()


def _block(value: str) -> int | str:
    """A block as typed: a decimal number, a 0x hex string or "safe" (the API checks it)."""
    return int(value) if value.isdigit() else value


def _label(value: str) -> tuple[str, str]:
    key, sep, text = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"a label is key=value, got {value!r}")
    return key, text


def _create_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"subscription_id": args.subscription, "order": args.order}
    if args.from_block is not None:
        body["from_block"] = args.from_block
    if args.to_block is not None:
        body["to_block"] = args.to_block
    if args.label:
        body["labels"] = dict(args.label)
    if args.dry_run:
        body["dry_run"] = True
    return body


async def _backfill_create(client: ApiClient, args: argparse.Namespace) -> int:
    key = None if args.dry_run else (args.idempotency_key or str(uuid.uuid4()))
    if key:
        sys.stderr.write(f"Idempotency-Key: {key} (send it again to retry safely)\n")
    created = await client.create_backfill(_create_body(args), key)
    b = created.body
    if args.dry_run:
        text = (
            f"dry run: {b['blocks']} blocks ({b['already_covered_blocks']} already covered), "
            f"{b['estimated_calls']} calls, {b['estimated_cu']} CU, "
            f"~{b['estimated_windows']} windows, finishing ~{b['estimated_finish_at']}\n"
        )
    else:
        replay = " (replayed: this key already created it)" if created.replayed else ""
        text = f"accepted{replay}\n" + _describe_backfill(b)
    _show(args, b, text)
    return 0


async def _backfill_status(client: ApiClient, args: argparse.Namespace) -> int:
    b = await client.get_backfill(args.id)
    _show(args, b, _describe_backfill(b))
    return 0


async def _backfill_list(client: ApiClient, args: argparse.Namespace) -> int:
    page = await client.list_backfills(
        args.subscription, status=args.status, limit=args.limit, after=args.after
    )
    if args.json:
        _show(args, page, "")
        return 0
    table = Table("id", "status", "blocks", "progress", "matches", "credits", "created")
    for b in page["items"]:
        table.add_row(
            b["id"],
            b["status"],
            f"{b['from_block']}-{b['to_block']}",
            f"{b['progress']:.0%}",
            str(b["matches"]),
            str(b["credits_charged"]),
            b["created_at"][:19],
        )
    console = Console(width=160)
    console.print(table)
    if page["next"]:
        console.print(f"more: --after {page['next']}")
    return 0


def _backfill_action(action: str) -> ClientCommand:
    async def run(client: ApiClient, args: argparse.Namespace) -> int:
        b = await client.backfill_action(args.id, action)
        _show(args, b, _describe_backfill(b))
        return 0

    return run


async def _backfill_watch(client: ApiClient, args: argparse.Namespace) -> int:
    """Exit 0 when the request completed, 1 when it failed or was cancelled."""
    b = await watch_backfill(
        client, args.id, console=Console(stderr=args.json), interval=args.interval
    )
    _show(args, b, _describe_backfill(b))
    return 0 if b["status"] in ("completed", "completed_noop") else 1


def _add_backfill_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--api-url",
        default=os.environ.get("LOGFILL_API_URL", DEFAULT_API_URL),
        help="the API (default: LOGFILL_API_URL or %(default)s)",
    )
    common.add_argument(
        "--api-key",
        default=os.environ.get("LOGFILL_API_KEY"),
        help="the workspace's API key (default: LOGFILL_API_KEY)",
    )
    common.add_argument("--json", action="store_true", help="print the JSON answer")
    backfill = commands.add_parser("backfill", help="queue and follow backfills on a running API")
    actions = backfill.add_subparsers(dest="action", required=True, metavar="ACTION")

    def sub(name: str, help_text: str, run: ClientCommand) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help_text, description=help_text, parents=[common])
        parser.set_defaults(client_func=_client_command(run))
        return parser

    create = sub("create", "queue a backfill (or estimate one with --dry-run)", _backfill_create)
    create.add_argument("--subscription", required=True, help="subscription id")
    create.add_argument("--from", dest="from_block", type=_block, help="first block")
    create.add_argument("--to", dest="to_block", type=_block, help='last block, or "safe"')
    create.add_argument("--order", choices=("asc", "desc"), default="asc")
    create.add_argument(
        "--label", type=_label, action="append", metavar="KEY=VALUE", help="a label (repeatable)"
    )
    create.add_argument("--idempotency-key", help="default: a fresh UUID (printed)")
    create.add_argument("--dry-run", action="store_true", help="estimate only; creates nothing")
    sub("status", "a backfill's status, cursor and cost", _backfill_status).add_argument("id")
    watch = sub("watch", "a progress bar until the backfill ends", _backfill_watch)
    watch.add_argument("id")
    watch.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    listing = sub("list", "a subscription's backfills, newest first", _backfill_list)
    listing.add_argument("--subscription", required=True, help="subscription id")
    listing.add_argument("--status", help="only this status")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--after", help="the `next` cursor of the previous page")
    for action in ACTIONS:
        sub(action, f"{action} a backfill", _backfill_action(action)).add_argument("id")


# --- demo ----------------------------------------------------------------------------


def _history_blocks(value: str) -> int:
    if not value.isdigit() or int(value) < 20:
        raise argparse.ArgumentTypeError(f"at least 20 blocks, got {value!r}")
    return int(value)


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from demo.run import DemoOptions, run_demo  # the demo's imports only when it runs

    configure_logging("warning", settings.log_format)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop like Ctrl-C, cleaning up
    console = Console(soft_wrap=True)
    options = DemoOptions(blocks=args.blocks, keep=args.keep, database_url=settings.database_url)
    try:
        result = run_demo(options, console)
    except (ApiError, httpx.HTTPError) as exc:
        console.print(f"[red]demo failed:[/] {exc}")
        return 1
    finally:
        console.print("Everything the demo started is stopped.")
    for problem in result.problems:
        console.print(f"[red]problem:[/] {problem}")
    return 1 if result.problems else 0


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
    _add_backfill_parser(commands)
    demo = commands.add_parser(
        "demo",
        help="the whole mission end to end on a local chain (make demo)",
        description="Starts PostgreSQL, anvil with token contracts, a webhook receiver and "
        "logfill run; backfills the token's transfers through the API; prints a summary.",
    )
    demo.add_argument("--keep", action="store_true", help="leave everything up until Ctrl-C")
    demo.add_argument(
        "--blocks",
        type=_history_blocks,
        default=2000,
        help="blocks of history, at least 20 (default %(default)s)",
    )
    demo.set_defaults(func=cmd_demo)
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
    if getattr(args, "client_func", None) is not None:
        raise SystemExit(args.client_func(args))  # a client: no settings, no database
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
