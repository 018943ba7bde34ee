"""Dashboard page times: every page of a signed-in owner, with 50 requests in history.

Starts `logfill api` as a subprocess on a fresh database (on --server, dropped
afterwards) and fills it the way a busy owner's workspace looks: one subscription
with 50 backfill requests in every status, 200 windows behind the newest request
(so its chart has 200 bars), 1,000 stored events, and 50 webhook deliveries.
Then it signs in through the sign-in form, as a browser does, and asks each page
--requests times, one at a time (a person clicks one page at a time; the figure
is the page's own time, not a queue's), after --warmup requests that are not
counted. Prints p50/p99 per page and writes bench/results/dashboard_pages.json.

Goal: every page under 100 ms at p99.

Run: .venv/bin/python -m bench.dashboard_pages [--requests 300] [--warmup 20]
     [--server postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench.api_load import wait_ready
from indexer.accounts import create_workspace
from indexer.db.admin import create_database, drop_database
from indexer.db.pool import connect
from indexer.domain import TERMINAL
from indexer.localhost import free_port

RESULTS = Path(__file__).parent / "results"
LOGFILL = str(Path(sys.executable).parent / "logfill")
GOAL_P99_MS = 100.0
HISTORY = 50
WINDOWS = 200
EVENTS = 1000
DELIVERIES = 50
STATUSES = ("completed", "processing", "queued", "paused", "paused_credits", "failed", "cancelled")
TRANSFER = "Transfer(address indexed from, address indexed to, uint256 value)"
TRANSFER_TOPIC = bytes.fromhex("ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef")


async def seed(database_url: str, base: str) -> dict[str, Any]:
    """The owner's workspace, filled through the API and, for what windows write, SQL."""
    conn = await connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO plans (name, backfill_enabled, max_backfill_blocks,"
            " api_requests_per_minute) VALUES ('bench', true, 1000000000, 100000000)"
        )
        created = await create_workspace(conn, name="bench", plan="bench", credits=10**9)
        await conn.execute(
            "INSERT INTO chain_state (chain_id, head, safe_head) VALUES (1, 10000000, 10000000)"
        )
    finally:
        await conn.close()
    headers = {"Authorization": f"Bearer {created.api_key}"}
    body = {"chain_id": 1, "name": "usdc transfers", "events": [TRANSFER]}
    async with aiohttp.ClientSession(base, headers=headers) as session:
        async with session.post("/v1/subscriptions", json=body) as response:
            assert response.status == 201, await response.text()
            subscription = (await response.json())["id"]
        requests = []
        for i in range(HISTORY):
            range_ = {"from_block": i * 10_000, "to_block": i * 10_000 + 9_999}
            request = {"subscription_id": subscription, "labels": {"n": str(i)}, **range_}
            async with session.post("/v1/backfill", json=request) as response:
                assert response.status == 202, await response.text()
                requests.append((await response.json())["id"])
    conn = await connect(database_url)
    try:
        await fill_history(conn, uuid.UUID(subscription), [uuid.UUID(r) for r in requests])
    finally:
        await conn.close()
    return {"api_key": created.api_key, "subscription": subscription, "request": requests[-1]}


async def fill_history(
    conn: asyncpg.Connection, subscription: uuid.UUID, requests: list[uuid.UUID]
) -> None:
    for i, request in enumerate(requests):
        await conn.execute(
            "UPDATE backfill_requests SET status = $2, blocks_scanned = 5000, matches = 120,"
            " new_matches = 100, duplicate_matches = 20, credits_charged = 100, cu_spent = 900,"
            " windows = 3, started_at = now(),"
            " cursor = CASE WHEN $2 = ANY($3::text[]) THEN NULL ELSE from_block + 5000 END,"
            " finished_at = CASE WHEN $2 = ANY($3::text[]) THEN now() END,"
            " error = CASE WHEN $2 = 'failed' THEN 'eth_getLogs: HTTP 403 Forbidden' END"
            " WHERE id = $1",
            request,
            STATUSES[i % len(STATUSES)],
            list(TERMINAL),
        )
    newest = requests[-1]
    await conn.execute(
        "UPDATE backfill_requests SET status = 'processing', finished_at = NULL, error = NULL,"
        " cursor = from_block + 5000 WHERE id = $1",
        newest,
    )
    window_ids = await conn.fetch(
        "INSERT INTO windows (chain_id, worker, started_at, finished_at, budget_cu, cu_spent,"
        " calls, requests_served)"
        " SELECT 1, 'bench', now() - (g * interval '5 seconds'),"
        " now() - (g * interval '5 seconds') + interval '2 seconds', 12000, 6000 + g * 20, 100, 2"
        " FROM generate_series(1, $1) AS g RETURNING id",
        WINDOWS,
    )
    await conn.executemany(
        "INSERT INTO backfill_request_windows"
        " (backfill_request_id, window_id, cu_spent, blocks_scanned, matches, new_matches)"
        " VALUES ($1, $2, 3000, 2000, 10, 8)",
        [(newest, row["id"]) for row in window_ids],
    )
    await conn.execute(
        "INSERT INTO logs (chain_id, block_number, block_hash, log_index, transaction_hash,"
        " transaction_index, address, topics, data)"
        " SELECT 1, g, sha256(int8send(g)), 0, sha256(int8send(-g)), 0,"
        " substring(sha256('token'::bytea) from 1 for 20),"
        " ARRAY[$2::bytea, decode(repeat('00', 12) || repeat('11', 20), 'hex'),"
        "       decode(repeat('00', 12) || repeat('22', 20), 'hex')],"
        " int4send(g::int) || decode(repeat('00', 28), 'hex')"
        " FROM generate_series(1, $1) AS g",
        EVENTS,
        TRANSFER_TOPIC,
    )
    await conn.execute(
        "INSERT INTO matches (subscription_id, block_number, log_index,"
        " backfill_request_id) SELECT $1, block_number, 0, $2 FROM logs",
        subscription,
        newest,
    )
    await conn.execute(
        "INSERT INTO webhook_deliveries (subscription_id, workspace_id, payload, event_count,"
        " first_block, status, attempts, last_status_code, last_error, delivered_at)"
        " SELECT s.id, s.workspace_id, '{}'::jsonb, 100, g * 100,"
        " (ARRAY['pending', 'delivered', 'dead'])[1 + g % 3], g % 10, 500, 'HTTP 500',"
        " CASE WHEN g % 3 = 1 THEN now() END"
        " FROM subscriptions s, generate_series(1, $2) AS g WHERE s.id = $1",
        subscription,
        DELIVERIES,
    )


def pages(seeded: dict[str, Any]) -> dict[str, str]:
    sub, request = seeded["subscription"], seeded["request"]
    return {
        "workspace": "/dashboard/",
        "subscriptions": "/dashboard/subscriptions",
        "backfill form": f"/dashboard/subscriptions/{sub}/backfill",
        "history": f"/dashboard/subscriptions/{sub}/history",
        "events": f"/dashboard/subscriptions/{sub}/events",
        "deliveries": f"/dashboard/subscriptions/{sub}/deliveries",
        "settings": f"/dashboard/subscriptions/{sub}/settings",
        "request": f"/dashboard/requests/{request}",
        "request live part": f"/dashboard/requests/{request}/live",
    }


async def time_pages(
    base: str, seeded: dict[str, Any], opts: argparse.Namespace
) -> list[dict[str, Any]]:
    results = []
    jar = aiohttp.CookieJar(unsafe=True)  # cookies of an IP address (127.0.0.1) too
    async with aiohttp.ClientSession(base, cookie_jar=jar) as browser:
        form = {"api_key": seeded["api_key"], "next": "/dashboard/"}
        async with browser.post("/dashboard/sign-in", data=form) as response:
            assert response.status == 200 and "Credits" in await response.text()
        for name, path in pages(seeded).items():
            times, sizes = [], set()
            for n in range(opts.warmup + opts.requests):
                started = time.perf_counter()
                async with browser.get(path, allow_redirects=False) as response:
                    page = await response.read()
                    elapsed = time.perf_counter() - started
                    if response.status != 200:
                        raise RuntimeError(f"{path}: {response.status} {page[:300]!r}")
                if n >= opts.warmup:
                    times.append(elapsed * 1000)
                    sizes.add(len(page))
            times.sort()
            result = {
                "page": name,
                "path": path,
                "requests": len(times),
                "p50_ms": round(statistics.median(times), 2),
                "p99_ms": round(times[max(0, round(len(times) * 0.99) - 1)], 2),
                "max_ms": round(times[-1], 2),
                "bytes": max(sizes),
            }
            results.append(result)
            print(json.dumps(result), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--server",
        default=os.environ.get(
            "LOGFILL_BENCH_SERVER", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    opts = parser.parse_args()
    name = f"logfill_bench_dash_{uuid.uuid4().hex[:10]}"
    database_url = asyncio.run(create_database(opts.server, name))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGFILL_")}
    env.update(
        LOGFILL_DATABASE_URL=database_url,
        LOGFILL_LOG_LEVEL="warning",
        LOGFILL_LOG_FORMAT="json",
        LOGFILL_CHAINS='{"1": {"rpc_url": "http://127.0.0.1:9"}}',
    )
    process = subprocess.Popen(
        [LOGFILL, "api", "--host", "127.0.0.1", "--port", str(port)], env=env
    )
    try:
        asyncio.run(wait_ready(base, process))
        seeded = asyncio.run(seed(database_url, base))
        results = asyncio.run(time_pages(base, seeded, opts))
    finally:
        process.terminate()
        process.wait(timeout=20)
        asyncio.run(drop_database(opts.server, name))
    worst = max(r["p99_ms"] for r in results)
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "history": HISTORY,
        "windows": WINDOWS,
        "events": EVENTS,
        "deliveries": DELIVERIES,
        "goal_p99_ms": GOAL_P99_MS,
        "worst_p99_ms": worst,
        "pages": results,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dashboard_pages.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{'page':<20} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'KiB':>6}")
    for r in results:
        print(
            f"{r['page']:<20} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['max_ms']:>8}"
            f" {r['bytes'] / 1024:>6.1f}"
        )
    print(f"worst p99 {worst} ms (goal < {GOAL_P99_MS:g} ms)")


if __name__ == "__main__":
    main()
