"""Worker memory: the peak RSS of the windows that run one backfill, by call size.

Starts anvil and fills it with --logs logs (the layout of bench.rpc_scan: 500 logs
a block from 5 contracts). Then, for each call size in --spans, a fresh Python
process (so that nothing measured before is still in its heap) creates a fresh
database, queues one request over every filled block for a subscription matching
every log, and runs windows (`indexer.window.run_window`) with a high budget until
the request completes, sampling its own RSS every 10 ms. A first window over ten
blocks runs before, unmeasured: it shows the chain's density, as any worker knows
it once the chain was scanned before (chain_state keeps it). A call of N blocks
would bring 500 x N logs: the spans are what one answer would weigh at the
configured maximum.

Then twenty requests over the same range at once (five workspaces, four
subscriptions each), at the largest span. Goal: the windows' peak RSS under 200
MiB, whatever the call size or the number of requests.
Results: bench/results/worker_memory.json.

Run: .venv/bin/python -m bench.worker_memory [--logs 200000] [--spans 20,100,400]
     [--server postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench.backfill_e2e import e2e_run
from bench.rpc_scan import fill
from indexer.accounts import create_workspace
from indexer.db.admin import create_database, drop_database
from indexer.db.pool import connect
from indexer.settings import Settings
from tests.support import anvil as chain
from tests.support.window import (
    create_backfill,
    create_subscription,
    run_until_settled,
    window_pool,
    window_settings,
)

RESULTS = Path(__file__).parent / "results"
GOAL_MIB = 200
LOGS_PER_BLOCK = 500


async def twenty_requests(
    database_url: str, settings: Settings, contracts: list[bytes], low: int, high: int
) -> int:
    """Five workspaces, four subscriptions each on every contract, one request each over
    the whole range, all queued at once; windows until every one settled. Matches."""
    conn = await connect(database_url)
    try:
        requests = []
        for w in range(5):
            workspace = await create_workspace(conn, name=f"w{w}", plan="enterprise", credits=10**9)
            for _ in range(4):
                subscription = await create_subscription(
                    conn,
                    workspace.workspace_id,
                    chain_id=1,
                    addresses=["0x" + c.hex() for c in contracts],
                )
                requests.append(await create_backfill(conn, subscription, low, high))
    finally:
        await conn.close()
    async with window_pool(database_url) as pool:
        await run_until_settled(pool, settings, requests, max_windows=1000)
        matches: int = await pool.fetchval("SELECT count(*) FROM matches")
    return matches


def measure(
    url: str,
    server: str,
    span: int,
    contracts: list[bytes],
    low: int,
    high: int,
    logs: int,
    requests: int = 1,
) -> dict[str, Any]:
    """In a fresh process: one backfill's windows, and the process's peak RSS meanwhile."""
    process = psutil.Process()
    peak, done = [process.memory_info().rss], threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], process.memory_info().rss)

    async def run() -> dict[str, Any]:
        name = f"logfill_bench_mem_{uuid.uuid4().hex[:10]}"
        database_url = await create_database(server, name)
        try:
            settings = window_settings(url, max_block_range=span, window_budget_cu=10_000_000)
            # A first window over ten blocks: the chain's density is then known (as it is
            # to any worker once its chain has been scanned before), as it is not to the
            # very first call ever made on a chain.
            await e2e_run(database_url, settings, contracts, low, low + 9, logs)
            before = process.memory_info().rss
            peak[0] = before
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.perf_counter()
            if requests == 1:
                matches = (
                    await e2e_run(database_url, settings, contracts, low, high, logs)
                ).matches
            else:
                matches = await twenty_requests(database_url, settings, contracts, low, high)
            seconds = time.perf_counter() - started
            done.set()
            sampler.join()
            return {
                "requests": requests,
                "span_blocks": span,
                "logs_per_call": span * LOGS_PER_BLOCK,
                "matches": matches,
                "seconds": round(seconds, 2),
                "rss_before_mib": round(before / 2**20, 1),
                "peak_rss_mib": round(peak[0] / 2**20, 1),
            }
        finally:
            await drop_database(server, name)

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--logs", type=int, default=200_000)
    parser.add_argument("--spans", default="20,100,400", help="blocks per eth_getLogs call")
    parser.add_argument(
        "--twenty",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also 20 requests over the range at once (5 workspaces), at the largest span",
    )
    parser.add_argument(
        "--server",
        default=os.environ.get(
            "LOGFILL_BENCH_SERVER", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    opts = parser.parse_args()
    spans = [int(s) for s in opts.spans.split(",") if s]
    runs = []
    context = multiprocessing.get_context("spawn")
    with chain.AnvilNode("--gas-limit", "100000000") as node:
        contracts, low, high = fill(node.url, opts.logs)
        with context.Pool(1, maxtasksperchild=1) as pool:
            cases = [(span, 1) for span in spans] + [(max(spans), 20)] * bool(opts.twenty)
            for span, requests in cases:
                args = (node.url, opts.server, span, contracts, low, high, opts.logs, requests)
                run = pool.apply(measure, args)
                print(json.dumps(run), flush=True)
                runs.append(run)
    worst = max(r["peak_rss_mib"] for r in runs)
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "logs": opts.logs,
        "goal_mib": GOAL_MIB,
        "worst_peak_rss_mib": worst,
        "runs": runs,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "worker_memory.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{'requests':>8} {'blocks/call':>11} {'logs/call':>10} {'seconds':>8} {'peak MiB':>9}")
    for r in runs:
        print(
            f"{r['requests']:>8} {r['span_blocks']:>11} {r['logs_per_call']:>10,}"
            f" {r['seconds']:>8} {r['peak_rss_mib']:>9}"
        )
    print(f"worst peak {worst} MiB (goal < {GOAL_MIB} MiB)")


if __name__ == "__main__":
    main()
