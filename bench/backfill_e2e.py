"""Backfill end to end: one request over a local anvil, committed to PostgreSQL.

Starts anvil, fills it with LOGS logs from 5 Emitter contracts (the layout of
bench.rpc_scan: 500 logs a block), then creates one workspace, one subscription
matching every log (the 5 contracts) and one backfill request over the filled
blocks, and runs windows (`indexer.window.run_window`) with a high CU budget
until the request is completed. Reported beside it:

- the bare aiohttp + orjson eth_getLogs loop of bench.rpc_scan over the same
  block ranges with the same number of calls in flight (the fetch limit);
- the CU the windows spent beside the minimum: ceil(blocks / span) eth_getLogs
  calls and one head read per window (`indexer.window.eta.estimate_request`).

Each end-to-end run gets a fresh, migrated database: `logfill_bench_<random>` on
the server of LOGFILL_DATABASE_URL if set, else on an embedded PostgreSQL in a
temporary directory; it is dropped afterwards. Bare runs are interleaved with
the end-to-end runs (bare, e2e, bare, e2e, bare); the best of each is reported.

Run: .venv/bin/python -m bench.backfill_e2e [--logs 200000] [--span 20] [--in-flight 4]
                                            [--budget 10000000] [--repeat 2] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import platform
import pstats
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.rpc_scan import bare_loop, chunks, fill
from indexer.accounts import create_workspace
from indexer.chain.filters import Matcher, merge_filters, subscription_filter
from indexer.db.admin import create_database, drop_database
from indexer.db.migrate import load_migrations, migrate
from indexer.db.pool import connect, create_pool
from indexer.logging import configure_logging
from indexer.settings import Settings
from indexer.store.chunk import ChunkPlan
from indexer.window.eta import estimate_request
from indexer.window.run import Window, run_window
from tests.support import anvil as chain
from tests.support.window import create_backfill, create_subscription, window_settings

RESULTS = Path(__file__).parent / "results"
CHAIN_ID = 1
MAX_WINDOWS = 50
GOAL_E2E_VS_BARE = 0.5
GOAL_CU_VS_MINIMUM = 1.05


@dataclass
class E2eRun:
    seconds: float
    matches: int
    logs_stored: int
    cu_spent: int
    calls: int
    windows: int
    commits: int
    commit_seconds: float
    status: str


@contextmanager
def server_database() -> Iterator[tuple[str, str]]:
    """(URL of a database on a server we may create databases on, what it is)."""
    configured = os.environ.get("LOGFILL_DATABASE_URL")
    if configured:
        yield configured, "LOGFILL_DATABASE_URL server"
        return
    from indexer.db.embedded import embedded_database

    with (
        tempfile.TemporaryDirectory(prefix="logfill-bench-pg-") as data_dir,
        embedded_database(Path(data_dir)) as url,
    ):
        yield url, "embedded PostgreSQL"


class CommitTimer:
    """Wall time inside Window.commit (one transaction per answered chunk).

    A thin wrapper installed for the run; while a commit awaits the database,
    the event loop also reads and decodes answers of the calls in flight, so
    this is an upper bound of the time commits hold the window back.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.commits = 0

    @contextmanager
    def installed(self) -> Iterator[None]:
        original = Window.commit

        async def timed_commit(this: Window, plan: ChunkPlan, matcher: Matcher[uuid.UUID]) -> None:
            started = time.perf_counter()
            try:
                await original(this, plan, matcher)
            finally:
                self.seconds += time.perf_counter() - started
                self.commits += 1

        Window.commit = timed_commit  # type: ignore[method-assign,assignment]
        try:
            yield
        finally:
            Window.commit = original  # type: ignore[method-assign]


async def prepare(url: str, contracts: list[bytes], low: int, high: int, credits: int) -> uuid.UUID:
    """Migrate, then one workspace, one subscription (the contracts), one request."""
    conn = await connect(url)
    try:
        await migrate(conn, load_migrations())
        workspace = await create_workspace(conn, name="bench", plan="enterprise", credits=credits)
        subscription_id = await create_subscription(
            conn,
            workspace.workspace_id,
            chain_id=CHAIN_ID,
            addresses=["0x" + c.hex() for c in contracts],
        )
        return await create_backfill(conn, subscription_id, low, high)
    finally:
        await conn.close()


async def e2e_run(
    url: str, settings: Settings, contracts: list[bytes], low: int, high: int, logs: int
) -> E2eRun:
    """Windows back to back until the request settles; the database is fresh and migrated."""
    request_id = await prepare(url, contracts, low, high, credits=logs * 2)
    pool = await create_pool(url, min_size=1, max_size=4, timeout=10)
    timer = CommitTimer()
    try:
        with timer.installed():
            started = time.perf_counter()
            for _ in range(MAX_WINDOWS):
                report = await run_window(pool, settings, CHAIN_ID, "bench")
                assert report is not None, "the only worker must always get the lease"
                assert report.stats.error is None, report.stats.error
                status = await pool.fetchval(
                    "SELECT status FROM backfill_requests WHERE id = $1", request_id
                )
                if status not in ("queued", "processing", "paused_credits"):
                    break
            seconds = time.perf_counter() - started
        matches = await pool.fetchval("SELECT count(*) FROM matches")
        logs_stored = await pool.fetchval("SELECT count(*) FROM logs")
        totals = await pool.fetchrow(
            "SELECT coalesce(sum(cu_spent), 0)::bigint AS cu, coalesce(sum(calls), 0)::bigint"
            " AS calls, count(*) AS windows FROM windows"
        )
        assert totals is not None
    finally:
        await pool.close()
    return E2eRun(
        seconds=seconds,
        matches=matches,
        logs_stored=logs_stored,
        cu_spent=totals["cu"],
        calls=totals["calls"],
        windows=totals["windows"],
        commits=timer.commits,
        commit_seconds=timer.seconds,
        status=status,
    )


async def e2e_fresh(
    server_url: str,
    settings: Settings,
    contracts: list[bytes],
    low: int,
    high: int,
    logs: int,
    profile: cProfile.Profile | None = None,
) -> E2eRun:
    """One end-to-end run in a database of its own, dropped afterwards."""
    name = f"logfill_bench_{uuid.uuid4().hex[:12]}"
    database_url = await create_database(server_url, name)
    try:
        if profile is not None:
            profile.enable()
        try:
            run = await e2e_run(database_url, settings, contracts, low, high, logs)
        finally:
            if profile is not None:
                profile.disable()
    finally:
        await drop_database(server_url, name)
    print(
        f"  e2e    {run.seconds:7.2f} s  {run.matches} matches, {run.windows} window(s),"
        f" {run.calls} calls, {run.cu_spent} CU; {run.commits} commits took"
        f" {run.commit_seconds:.2f} s",
        flush=True,
    )
    return run


async def bare_timed(
    url: str, params: dict[str, Any], ranges: list[tuple[int, int]], n: int
) -> tuple[int, float]:
    started = time.perf_counter()
    logs = await bare_loop(url, params, ranges, n)
    elapsed = time.perf_counter() - started
    print(f"  bare   {elapsed:7.2f} s  {logs} logs", flush=True)
    return logs, elapsed


async def run(args: argparse.Namespace, server_url: str, db_kind: str) -> dict[str, Any]:
    with chain.AnvilNode("--gas-limit", "100000000") as node:
        started = time.perf_counter()
        contracts, low, high = fill(node.url, args.logs)
        blocks = high - low + 1
        print(
            f"filled {args.logs} logs in blocks {low}-{high} ({blocks} blocks) in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )

        settings = window_settings(
            node.url,
            CHAIN_ID,
            max_block_range=args.span,
            window_budget_cu=args.budget,
            max_calls_in_flight=args.in_flight,
            request_timeout_seconds=120,
        )
        chain_settings = settings.chains[CHAIN_ID]
        # The very calls a window makes: the subscription's filter, merged.
        calls = merge_filters([subscription_filter(contracts, [])])
        params = calls[0].to_rpc(low, high)
        del params["fromBlock"], params["toBlock"]
        ranges = chunks(low, high, args.span)
        print(
            f"{len(ranges)} eth_getLogs calls of {args.span} blocks, {args.in_flight} in flight;"
            f" database: {db_kind}",
            flush=True,
        )

        await bare_loop(node.url, params, ranges[:2], args.in_flight)  # warm up anvil
        bare_runs: list[float] = []
        e2e_runs: list[E2eRun] = []
        bare_logs = 0
        for _ in range(args.repeat):  # bare, e2e, ..., bare: the machine is shared
            bare_logs, elapsed = await bare_timed(node.url, params, ranges, args.in_flight)
            bare_runs.append(elapsed)
            e2e_runs.append(await e2e_fresh(server_url, settings, contracts, low, high, args.logs))
        bare_logs, elapsed = await bare_timed(node.url, params, ranges, args.in_flight)
        bare_runs.append(elapsed)

        profile_text = None
        if args.profile:
            print("profiling one more end-to-end run (cProfile; slower than the runs above)")
            profile = cProfile.Profile()
            await e2e_fresh(server_url, settings, contracts, low, high, args.logs, profile)
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(15)
            profile_text = out.getvalue()

    assert bare_logs == args.logs, (bare_logs, args.logs)
    for e2e in e2e_runs:
        assert e2e.status == "completed", e2e.status
        assert e2e.matches == e2e.logs_stored == args.logs, (e2e.matches, e2e.logs_stored)
    best = min(e2e_runs, key=lambda r: r.seconds)
    bare_s = min(bare_runs)
    min_calls, cu_minimum, min_windows = estimate_request(
        blocks,
        span=args.span,
        call_cu=chain_settings.cu_cost("eth_getLogs") * len(calls),
        window_cu=chain_settings.window_budget_cu,
        head_cu=chain_settings.head_read_cu(),
    )
    e2e_per_s = best.matches / best.seconds
    bare_per_s = bare_logs / bare_s
    result: dict[str, Any] = {
        "benchmark": "backfill_e2e",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {platform.system()}, Python {platform.python_version()}",
        "database": db_kind,
        "logs": args.logs,
        "matches": best.matches,
        "blocks": blocks,
        "span_blocks": args.span,
        "in_flight": args.in_flight,
        "budget_cu": args.budget,
        "e2e_seconds": round(best.seconds, 3),
        "e2e_matches_per_s": round(e2e_per_s),
        "bare_logs_per_s": round(bare_per_s),
        "e2e_vs_bare": round(e2e_per_s / bare_per_s, 3),
        "e2e_vs_bare_runs": [round(r.matches / r.seconds / bare_per_s, 3) for r in e2e_runs],
        "cu_spent": best.cu_spent,
        "cu_minimum": cu_minimum,
        "cu_vs_minimum": round(best.cu_spent / cu_minimum, 4),
        "calls": best.calls,
        "calls_minimum": min_calls + min_windows,
        "windows": best.windows,
        "commits": best.commits,
        "commit_seconds": round(best.commit_seconds, 3),
        "commit_share": round(best.commit_seconds / best.seconds, 3),
        "outside_commit_seconds": round(best.seconds - best.commit_seconds, 3),
    }
    if profile_text is not None:
        print(profile_text)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", type=int, default=200_000)
    parser.add_argument("--span", type=int, default=20, help="blocks per eth_getLogs call")
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--budget", type=int, default=10_000_000, help="window budget, CU")
    parser.add_argument(
        "--repeat", type=int, default=2, help="end-to-end runs, each on a fresh database"
    )
    parser.add_argument(
        "--profile", action="store_true", help="one more run under cProfile: top 15 by tottime"
    )
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    configure_logging("warning")
    with server_database() as (server_url, db_kind):
        result = asyncio.run(run(args, server_url, db_kind))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "backfill_e2e.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"end to end / bare: {result['e2e_vs_bare']:.0%} (goal: at least {GOAL_E2E_VS_BARE:.0%})")
    print(f"CU / minimum: {result['cu_vs_minimum']:.2%} (goal: at most {GOAL_CU_VS_MINIMUM:.0%})")


if __name__ == "__main__":
    main()
