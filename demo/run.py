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
step failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import httpx
from aiohttp import web
from rich.console import Console
from rich.table import Table

from api.client import ApiClient, ApiError
from demo.chain import (
    CHAIN_ID,
    Anvil,
    Deployed,
    History,
    compile_contracts,
    deploy,
    make_history,
)
from demo.receiver import WebhookReceiver, start_receiver
from demo.service import Service, chain_config
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

    api_key: str
    anvil_url: str
    anvil_pid: int
    deployed: Deployed
    history: History
    service: Service
    data_dir: Path


async def _open_workspace(database_url: str) -> str:
    """Migrate, then the operator's step: a workspace on the pro plan; its API key."""
    conn = await connect(database_url)
    try:
        await migrate(conn, load_migrations())
        created = await create_workspace(
            conn, name="logfill demo", plan=DEMO_PLAN, credits=DEMO_CREDITS
        )
    finally:
        await conn.close()
    return created.api_key


@contextmanager
def staged(options: DemoOptions, console: Console) -> Iterator[Stage]:
    """PostgreSQL, anvil with history, `logfill run`; all stopped when the block ends."""
    with ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="logfill-demo-")))
        database_url = options.database_url
        if database_url is None:
            console.print(f"[dim]- starting an embedded PostgreSQL in {data_dir}[/]")
            database_url = stack.enter_context(embedded_database(data_dir))
        api_key = asyncio.run(_open_workspace(database_url))
        console.print("[dim]- compiling DemoToken, DemoNFT, DemoItems (OpenZeppelin, solcjs)[/]")
        artifacts = compile_contracts()
        anvil = stack.enter_context(Anvil())
        deployed = deploy(anvil.url, artifacts)
        console.print(f"[dim]- anvil at {anvil.url}: contracts deployed, mining history[/]")
        history = make_history(anvil.url, deployed, options.blocks)
        console.print(
            f"[dim]- {history.last_block} blocks, {history.token_transfers} token transfers, "
            f"{history.nft_mints} NFT mints, {history.item_mints} item mints[/]"
        )
        config = chain_config(anvil.url, history.last_block + 1)
        service = stack.enter_context(Service(database_url, data_dir, config))
        console.print(f"[dim]- logfill run at {service.url} (log: {service.log_path})[/]")
        yield Stage(api_key, anvil.url, anvil.pid, deployed, history, service, data_dir)


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
        ("CU spent", f"{summary.cu_spent:,}", f"dry-run estimate {summary.cu_estimated:,}"),
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


def print_where(console: Console, stage: Stage, summary: Summary, receiver: str) -> None:
    url, key = stage.service.url, stage.api_key
    console.print(f"""
[bold]The service is up[/] (Ctrl-C stops everything and deletes the demo's data):
  API          {url}   (OpenAPI: {url}/openapi.json)
  API key      {key}
  anvil        {stage.anvil_url}   chain {CHAIN_ID}, DemoToken {stage.deployed.token}
  webhooks     {receiver}
  service log  {stage.service.log_path}
Try:
  export LOGFILL_API_URL={url} LOGFILL_API_KEY={key}
  logfill backfill list --subscription {summary.subscription_id}
  logfill backfill status {summary.backfill_id}""")


# Besides Ctrl-C (SIGINT): `kill` and a closing terminal stop the demo too.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _ignore_stop_signals() -> None:
    """The demo is stopping: a repeated SIGTERM or SIGHUP must not cut the clean-up short.

    A closing terminal can send SIGHUP twice (the shell passes it on to its jobs,
    then the kernel sends it to the foreground group); dying on the second one
    would leave anvil, `logfill run` (both in sessions of their own, so the
    terminal does not reach them) and the embedded PostgreSQL running.
    """
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def _stop_like_ctrl_c(signum: int, frame: FrameType | None) -> None:
    _ignore_stop_signals()
    raise KeyboardInterrupt


async def _wait_for_signal() -> None:
    """Until Ctrl-C, SIGTERM or SIGHUP; later SIGTERM and SIGHUP are then ignored."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, *STOP_SIGNALS):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    # Taken back from the loop, which would reset them to "die at once" when it closes.
    for signum in (signal.SIGINT, *STOP_SIGNALS):
        loop.remove_signal_handler(signum)
    _ignore_stop_signals()


async def _serve_story(stage: Stage, options: DemoOptions, console: Console) -> Summary:
    receiver = WebhookReceiver()
    runner: web.AppRunner = await start_receiver(receiver)
    plan = Plan(stage.deployed.token, 0, stage.history.last_block, stage.history.token_transfers)
    try:
        async with ApiClient(stage.service.url, stage.api_key) as api:
            summary = await run_story(api, plan, receiver, console)
        print_summary(console, summary)
        if options.keep:
            print_where(console, stage, summary, receiver.url)
            await _wait_for_signal()
        return summary
    finally:
        await runner.cleanup()


def run_demo(options: DemoOptions, console: Console) -> DemoResult:
    with staged(options, console) as stage:
        pids = (stage.anvil_pid, stage.service.pid)
        summary = asyncio.run(_serve_story(stage, options, console))
    return DemoResult(summary, check_summary(summary), pids)


# --- the command -------------------------------------------------------------------


def _history_blocks(value: str) -> int:
    if not value.isdigit() or int(value) < MIN_BLOCKS:
        raise argparse.ArgumentTypeError(f"at least {MIN_BLOCKS} blocks, got {value!r}")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logfill demo",
        description="Starts PostgreSQL, anvil with token contracts, a webhook receiver and "
        "logfill run; backfills the token's transfers through the API; prints a summary.",
    )
    parser.add_argument("--keep", action="store_true", help="leave everything up until Ctrl-C")
    parser.add_argument(
        "--blocks",
        type=_history_blocks,
        default=DEFAULT_BLOCKS,
        help=f"blocks of history, at least {MIN_BLOCKS} (default %(default)s)",
    )
    return parser


def tell_story(settings: Settings, args: argparse.Namespace) -> int:
    """Run the demo, print its summary and any problem; the exit code."""
    configure_logging("warning", settings.log_format)
    for signum in STOP_SIGNALS:  # stop like Ctrl-C, cleaning up
        signal.signal(signum, _stop_like_ctrl_c)
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
    args = build_parser().parse_args(argv)
    try:
        code = tell_story(load_settings(), args)
    except LogfillError as exc:
        sys.stderr.write(f"logfill: {exc}\n")
        code = exc.exit_code
    except KeyboardInterrupt:
        code = 130
    raise SystemExit(code)
