"""The demo: the whole mission on one machine, set up and torn down in one command.

`python -m demo` (also `make demo` and `logfill demo`, which hand over to it):
an embedded PostgreSQL in a temporary directory (or LOGFILL_DATABASE_URL), a
local anvil with DemoToken/DemoNFT/DemoItems and a few thousand blocks of
transfers, the demo's webhook receiver, and `logfill run` with a 1 s tick. The
workspace is made the operator's way (`indexer.accounts.create_workspace`);
everything else goes through the HTTP API (`demo.story`). Every child process,
the embedded PostgreSQL and the temporary folder are stopped or removed on the
way out, on success, failure, Ctrl-C, SIGTERM and SIGHUP (the terminal was
closed) alike. Exit code 0 when the summary adds up, 1 when it does not or a
step failed. With `--keep` it stays up and prints commands that work against it
as pasted (`demo.commands`); `--chain-only` is the chain alone, for `make run`
(`demo.chain_only`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from aiohttp import web
from rich.console import Console
from rich.table import Table

from api.client import ApiClient, ApiError
from demo.chain import CHAIN_ID, LocalChain, local_chain
from demo.chain_only import DEFAULT_PORT, run_chain_only
from demo.commands import Running, logfill_program, try_commands
from demo.receiver import WebhookReceiver, start_receiver
from demo.service import Service, chain_config
from demo.signals import stop_like_ctrl_c, wait_for_signal
from demo.story import Plan, Summary, check_summary, run_story
from indexer.accounts import create_workspace
from indexer.db.embedded import embedded_database
from indexer.db.migrate import load_migrations, migrate
from indexer.db.pool import connect
from indexer.errors import LogfillError
from indexer.logging import configure_logging
from indexer.settings import Settings, load_settings

DEFAULT_BLOCKS = 2000
MIN_BLOCKS = 20  # fewer leaves the progress bar and the windows nothing to show
DEMO_PLAN = "pro"
DEMO_CREDITS = 1_000_000


@dataclass(frozen=True)
class DemoOptions:
    blocks: int = DEFAULT_BLOCKS
    keep: bool = False
    database_url: str | None = None  # None: an embedded PostgreSQL of the demo's own


@dataclass(frozen=True)
class DemoResult:
    summary: Summary
    problems: list[str]
    child_pids: tuple[int, ...]  # anvil and `logfill run`, all stopped on return


@dataclass(frozen=True)
class Stage:
    """What is running while the story is told."""

    database_url: str
    embedded: bool  # the demo's own PostgreSQL, deleted on the way out
    workspace_id: str
    api_key: str
    chain: LocalChain
    service: Service
    data_dir: Path


async def _open_workspace(database_url: str) -> tuple[str, str]:
    """Migrate, then the operator's step: a workspace on the pro plan; its id and API key."""
    conn = await connect(database_url)
    try:
        await migrate(conn, load_migrations())
        created = await create_workspace(
            conn, name="logfill demo", plan=DEMO_PLAN, credits=DEMO_CREDITS
        )
    finally:
        await conn.close()
    return str(created.workspace_id), created.api_key


@contextmanager
def staged(options: DemoOptions, console: Console) -> Iterator[Stage]:
    """PostgreSQL, anvil with history, `logfill run`; all stopped when the block ends."""
    with ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="logfill-demo-")))
        database_url = options.database_url
        if database_url is None:
            console.print(f"[dim]- starting an embedded PostgreSQL in {data_dir}[/]")
            database_url = stack.enter_context(embedded_database(data_dir))
        workspace_id, api_key = asyncio.run(_open_workspace(database_url))
        chain = stack.enter_context(
            local_chain(options.blocks, lambda step: console.print(f"[dim]- {step}[/]"))
        )
        config = chain_config(chain.url, chain.history.last_block + 1)
        service = stack.enter_context(Service(database_url, data_dir, config))
        console.print(f"[dim]- logfill run at {service.url} (log: {service.log_path})[/]")
        yield Stage(
            database_url=database_url,
            embedded=options.database_url is None,
            workspace_id=workspace_id,
            api_key=api_key,
            chain=chain,
            service=service,
            data_dir=data_dir,
        )


def print_summary(console: Console, summary: Summary) -> None:
    table = Table(title="Summary", show_header=False, title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("note")
    same = "same id" if summary.replay_id == summary.backfill_id else "ANOTHER id"
    rows = [
        ("token transfers on chain", f"{summary.transfers_on_chain:,}",
         f"in {summary.blocks:,} blocks"),
        ("matches stored", f"{summary.matches_stored:,}",
         "= transfers" if summary.matches_stored == summary.transfers_on_chain else "MISMATCH"),
        ("credits charged", f"{summary.credits_charged:,}",
         f"balance {summary.credits_before:,} -> {summary.credits_after:,}"),
        ("CU spent", f"{summary.cu_spent:,}", f"estimate {summary.cu_estimated:,} (at most)"),
        ("windows", f"{summary.windows}", "1 s tick, at most 250 CU each"),
        ("webhook deliveries", f"{summary.webhook_deliveries}",
         f"{summary.webhook_verified} signatures verified, {summary.webhook_rejected} rejected"),
        ("webhook events received", f"{summary.webhook_events:,}",
         f"of {summary.new_matches:,} new matches"),
        ("repeated POST", "deduplicated" if summary.replayed else "NOT deduplicated",
         f"{same}, Idempotent-Replayed: {str(summary.replayed).lower()}"),
    ]  # fmt: skip
    for figure, value, note in rows:
        table.add_row(figure, value, note)
    console.print(table)
    console.print(
        f"Request {summary.backfill_id} {summary.status}; story told in {summary.seconds:.1f} s."
    )


def print_database(console: Console, stage: Stage) -> None:
    """Where the demo's data is: admin commands need this URL (the default is another)."""
    note = (
        "the demo's own PostgreSQL, deleted when the demo stops"
        if stage.embedded
        else "LOGFILL_DATABASE_URL: the demo's workspace stays there"
    )
    console.print(f"Database: {stage.database_url}   ({note})", markup=False, highlight=False)
    console.print(
        "`make demo ARGS=--keep` (`python -m demo --keep`) leaves it all up, "
        "with commands to try against it.",
        markup=False,
    )


def print_where(console: Console, stage: Stage, summary: Summary, receiver: str) -> None:
    url, chain = stage.service.url, stage.chain
    rows = [
        ("dashboard", f"{url}/dashboard/   (sign in with the API key below)"),
        ("request", f"{url}/dashboard/requests/{summary.backfill_id}"),
        ("API", f"{url}   (OpenAPI: {url}/openapi.json)"),
        ("API key", stage.api_key),
        ("workspace", f"{stage.workspace_id}   ({DEMO_PLAN} plan)"),
        ("database", stage.database_url),
        ("anvil", f"{chain.url}   chain {CHAIN_ID}, DemoToken {chain.deployed.token}"),
        ("webhooks", receiver),
        ("service log", str(stage.service.log_path)),
    ]
    console.print(
        "\n[bold]The service is up[/] (Ctrl-C stops everything and deletes the demo's data):"
    )
    for name, value in rows:
        console.print(f"  {name:<12} {value}", markup=False, highlight=False)
    running = Running(
        api_url=url,
        api_key=stage.api_key,
        database_url=stage.database_url,
        workspace_id=stage.workspace_id,
        subscription_id=summary.subscription_id,
        backfill_id=summary.backfill_id,
    )
    console.print("Try (each line works as pasted, in this folder):")
    for line in try_commands(running, logfill_program()):
        console.print(f"  {line}", markup=False, highlight=False)


async def _serve_story(stage: Stage, options: DemoOptions, console: Console) -> Summary:
    receiver = WebhookReceiver()
    runner: web.AppRunner = await start_receiver(receiver)
    history = stage.chain.history
    plan = Plan(stage.chain.deployed.token, 0, history.last_block, history.token_transfers)
    try:
        async with ApiClient(stage.service.url, stage.api_key) as api:
            summary = await run_story(api, plan, receiver, console)
        print_summary(console, summary)
        if options.keep:
            print_where(console, stage, summary, receiver.url)
            await wait_for_signal()
        else:
            print_database(console, stage)
        return summary
    finally:
        await runner.cleanup()


def run_demo(options: DemoOptions, console: Console) -> DemoResult:
    with staged(options, console) as stage:
        pids = (stage.chain.pid, stage.service.pid)
        summary = asyncio.run(_serve_story(stage, options, console))
    return DemoResult(summary, check_summary(summary), pids)


# --- the command -------------------------------------------------------------------


def _history_blocks(value: str) -> int:
    if not value.isdigit() or int(value) < MIN_BLOCKS:
        raise argparse.ArgumentTypeError(f"at least {MIN_BLOCKS} blocks, got {value!r}")
    return int(value)


def _tcp_port(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise argparse.ArgumentTypeError(f"a TCP port (1-65535), got {value!r}")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logfill demo",
        description="Starts PostgreSQL, anvil with token contracts, a webhook receiver and "
        "logfill run; backfills the token's transfers through the API; prints a summary.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--keep", action="store_true", help="leave everything up until Ctrl-C")
    mode.add_argument(
        "--chain-only",
        action="store_true",
        help="only the chain (make chain): anvil with the demo's tokens and transfers; prints "
        "the LOGFILL_CHAINS line for `make run` and stays up until Ctrl-C",
    )
    parser.add_argument(
        "--blocks",
        type=_history_blocks,
        default=DEFAULT_BLOCKS,
        help=f"blocks of history, at least {MIN_BLOCKS} (default %(default)s)",
    )
    parser.add_argument(
        "--port",
        type=_tcp_port,
        help=f"anvil's port with --chain-only (default {DEFAULT_PORT})",
    )
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.port is not None and not args.chain_only:
        parser.error("--port goes with --chain-only (the demo's own anvil takes a free port)")
    return args


def tell_story(settings: Settings, args: argparse.Namespace) -> int:
    """Run the demo, print its summary and any problem; the exit code."""
    configure_logging("warning", settings.log_format)
    stop_like_ctrl_c()  # cleaning up on the way out
    console = Console(soft_wrap=True)
    options = DemoOptions(blocks=args.blocks, keep=args.keep, database_url=settings.database_url)
    try:
        result = run_demo(options, console)
    except (ApiError, httpx.HTTPError) as exc:
        console.print(f"[red]demo failed:[/] {exc}")
        return 1
    finally:
        # After SIGHUP the terminal may be gone (EIO); the clean-up is done either way.
        with contextlib.suppress(OSError):
            console.print("Everything the demo started is stopped.")
    for problem in result.problems:
        console.print(f"[red]problem:[/] {problem}")
    return 1 if result.problems else 0


def main(argv: list[str] | None = None) -> None:
    """`python -m demo`: a failure of ours is one line on stderr, as `logfill` says it."""
    args = parse_args(argv)
    try:
        if args.chain_only:  # no database, so no settings to read
            code = run_chain_only(args.blocks, DEFAULT_PORT if args.port is None else args.port)
        else:
            code = tell_story(load_settings(), args)
    except LogfillError as exc:
        sys.stderr.write(f"logfill: {exc}\n")
        code = exc.exit_code
    except KeyboardInterrupt:
        code = 130
    raise SystemExit(code)
