"""Webhook delivery throughput and latency against a local receiver.

A receiver process (aiohttp, verifying every signature with the `standardwebhooks`
package) runs on 127.0.0.1; the delivery loop (`indexer.webhooks.dispatcher`) runs
in this process with default settings except that local targets are allowed.

1. Throughput: the outbox is filled with DELIVERIES rows of 100 ERC-20 Transfer
   events each (with decoded arguments, about 70 KB a body), spread over
   SUBSCRIPTIONS subscriptions, then drained: events/s and deliveries/s from the
   start of the loop to the last receipt.
2. Latency: rows are committed one by one at half the measured throughput for
   a few seconds; latency is from the row's commit (`created_at`) to its receipt
   by the receiver (p50, p99).

Each run gets a fresh, migrated database `logfill_bench_<random>` on the server of
LOGFILL_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres),
dropped afterwards. Results: bench/results/webhooks.json.

Run: .venv/bin/python -m bench.webhooks [--deliveries 2000] [--subscriptions 20]
                                        [--latency-seconds 5] [--in-flight 32] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import multiprocessing
import os
import platform
import pstats
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from indexer.db.admin import create_database, drop_database
from indexer.db.migrate import load_migrations, migrate
from indexer.db.pool import connect, create_pool
from indexer.logging import configure_logging
from indexer.settings import Settings
from indexer.webhooks.dispatcher import delivering

RESULTS = Path(__file__).parent / "results"
SECRET = "whsec_YmVuY2htYXJrLXNlY3JldC1iZW5jaG1hcmstc2VjcmV0"
EVENTS_PER_DELIVERY = 100
GOAL_EVENTS_PER_SECOND = 5000


# ----------------------------------------------------------------------------- receiver


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def serve_receiver(port_queue: Any, *, hook: Handler, stats: Handler, reset: Handler) -> None:
    """Serve a benchmark's receiver (POST /hook, GET /stats, POST /reset) on a free port,
    told to the parent through `port_queue`, until the process is killed."""

    async def main() -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/hook", hook)
        app.router.add_get("/stats", stats)
        app.router.add_post("/reset", reset)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        port_queue.put(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


def run_receiver(port_queue: Any) -> None:
    """The receiver process: verify, remember (id, receipt time), answer 204."""
    from standardwebhooks.webhooks import Webhook

    webhook = Webhook(SECRET)
    receipts: list[tuple[str, float, int]] = []
    failures = [0]

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            webhook.verify(body, dict(request.headers))
        except Exception:
            failures[0] += 1
            return web.Response(status=400)
        receipts.append((request.headers["webhook-id"], time.time(), body.count(b'"evt_')))
        return web.Response(status=204)

    async def stats(_: web.Request) -> web.Response:
        return web.json_response({"receipts": receipts, "bad_signatures": failures[0]})

    async def reset(_: web.Request) -> web.Response:
        receipts.clear()
        return web.Response(status=204)

    serve_receiver(port_queue, hook=hook, stats=stats, reset=reset)


# ----------------------------------------------------------------------------- database


@asynccontextmanager
async def fresh_database(server_url: str) -> AsyncIterator[str]:
    name = f"logfill_bench_{uuid.uuid4().hex[:10]}"
    url = await create_database(server_url, name)
    try:
        conn = await connect(url)
        try:
            await migrate(conn, load_migrations())
        finally:
            await conn.close()
        yield url
    finally:
        await drop_database(server_url, name)


def transfer_event(block: int, index: int) -> dict[str, Any]:
    """An ERC-20 Transfer match as the window writes it (with decoded arguments)."""
    sender, receiver = f"{block:040x}", f"{index:040x}"
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "block_number": block,
        "block_hash": "0x" + os.urandom(32).hex(),
        "transaction_hash": "0x" + os.urandom(32).hex(),
        "transaction_index": index,
        "log_index": index,
        "address": "0x6B175474E89094C44Da98b954EedeAC495271d0F",
        "topics": [
            "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef",
            "0x" + "0" * 24 + sender,
            "0x" + "0" * 24 + receiver,
        ],
        "data": "0x" + f"{block * 1000 + index:064x}",
        "decoded": {
            "event": "Transfer",
            "args": {"from": "0x" + sender, "to": "0x" + receiver, "value": str(block * 1000)},
        },
    }


def payload(subscription_id: uuid.UUID, block: int) -> dict[str, Any]:
    return {
        "type": "backfill.matches",
        "subscription_id": str(subscription_id),
        "backfill_id": None,
        "chain_id": 1,
        "events": [transfer_event(block, i) for i in range(EVENTS_PER_DELIVERY)],
    }


async def make_subscriptions(conn: asyncpg.Connection, count: int, url: str) -> list[Any]:
    workspace = await conn.fetchval(
        "INSERT INTO workspaces (name, plan, credits) VALUES ('bench', 'pro', 0) RETURNING id"
    )
    rows = await conn.fetch(
        """
        INSERT INTO subscriptions (workspace_id, chain_id, webhook_url, webhook_secret)
        SELECT $1, 1, $2, $3 FROM generate_series(1, $4) RETURNING id, workspace_id
        """,
        workspace,
        url,
        SECRET,
        count,
    )
    return list(rows)


INSERT = """
INSERT INTO webhook_deliveries (subscription_id, workspace_id, payload, event_count, first_block)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::jsonb[], $4::integer[], $5::bigint[])
"""


async def fill(conn: asyncpg.Connection, subscriptions: list[Any], deliveries: int) -> None:
    """The backlog: rows spread round-robin over the subscriptions, in block order."""
    rows = []
    for n in range(deliveries):
        sub = subscriptions[n % len(subscriptions)]
        rows.append((sub["id"], sub["workspace_id"], payload(sub["id"], n), 100, n))
    for start in range(0, len(rows), 200):
        chunk = rows[start : start + 200]
        await conn.execute(INSERT, *[list(c) for c in zip(*chunk, strict=True)])


# ----------------------------------------------------------------------------- phases


async def receipts(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with http.get(f"{base}/stats") as response:
        result: dict[str, Any] = await response.json()
        return result


async def wait_delivered(conn: asyncpg.Connection, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        done = await conn.fetchval(
            "SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'"
        )
        if done >= count:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done}/{count} delivered within {timeout} s")
        await asyncio.sleep(0.1)


async def throughput(
    settings: Settings, url: str, base: str, args: argparse.Namespace
) -> dict[str, Any]:
    conn = await connect(url)
    pool = await create_pool(url, min_size=2, max_size=10)
    try:
        subs = await make_subscriptions(conn, args.subscriptions, f"{base}/hook")
        await fill(conn, subs, args.deliveries)
        async with aiohttp.ClientSession() as http:
            await http.post(f"{base}/reset")
            started = time.time()
            async with delivering(settings, pool):
                await wait_delivered(conn, args.deliveries, timeout=600)
            stats = await receipts(http, base)
    finally:
        await pool.close()
        await conn.close()
    got = stats["receipts"]
    seconds = max(t for _, t, _ in got) - started
    events = sum(n for _, _, n in got)
    return {
        "deliveries": len(got),
        "unique_deliveries": len({i for i, _, _ in got}),
        "events": events,
        "seconds": round(seconds, 3),
        "events_per_second": round(events / seconds),
        "deliveries_per_second": round(len(got) / seconds, 1),
        "bad_signatures": stats["bad_signatures"],
    }


async def latency(
    settings: Settings, url: str, base: str, rate: float, seconds: float
) -> dict[str, Any]:
    """Rows committed one at a time at `rate` per second; commit-to-receipt latency."""
    conn = await connect(url)
    pool = await create_pool(url, min_size=2, max_size=10)
    try:
        subs = await make_subscriptions(conn, 20, f"{base}/hook")
        committed: dict[str, float] = {}
        async with aiohttp.ClientSession() as http:
            await http.post(f"{base}/reset")
            async with delivering(settings, pool):
                start = time.monotonic()
                n = 0
                while time.monotonic() - start < seconds:
                    sub = subs[n % len(subs)]
                    row = await conn.fetchrow(
                        """
                        INSERT INTO webhook_deliveries (subscription_id, workspace_id, payload,
                                                        event_count, first_block)
                        VALUES ($1, $2, $3, 100, $4) RETURNING id, created_at
                        """,
                        sub["id"],
                        sub["workspace_id"],
                        payload(sub["id"], n),
                        n,
                    )
                    assert row is not None
                    committed[str(row["id"])] = row["created_at"].timestamp()
                    n += 1
                    await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
                await wait_delivered(conn, n, timeout=120)
            stats = await receipts(http, base)
    finally:
        await pool.close()
        await conn.close()
    waits = sorted(t - committed[i] for i, t, _ in stats["receipts"] if i in committed)
    return {
        "rate_deliveries_per_second": round(rate, 1),
        "deliveries": len(waits),
        "p50_ms": round(statistics.median(waits) * 1000, 1),
        "p99_ms": round(waits[min(len(waits) - 1, int(len(waits) * 0.99))] * 1000, 1),
        "max_ms": round(waits[-1] * 1000, 1),
    }


async def bench(args: argparse.Namespace, base: str) -> dict[str, Any]:
    server = os.environ.get("LOGFILL_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    settings = Settings(
        worker_metrics_port=0,
        webhook_allow_private=True,
        webhook_max_in_flight=args.in_flight,
        webhook_poll_seconds=0.05,
    )
    async with fresh_database(server) as url:
        profile = cProfile.Profile() if args.profile else None
        started_cpu = time.process_time()
        if profile:
            profile.enable()
        result = {"throughput": await throughput(settings, url, base, args)}
        if profile:
            profile.disable()
            pstats.Stats(profile, stream=sys.stderr).sort_stats("tottime").print_stats(25)
        result["throughput"]["worker_cpu_seconds"] = round(time.process_time() - started_cpu, 2)
    rate = result["throughput"]["deliveries_per_second"] / 2
    async with fresh_database(server) as url:
        result["latency"] = await latency(settings, url, base, rate, args.latency_seconds)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--subscriptions", type=int, default=20)
    parser.add_argument("--latency-seconds", type=float, default=5.0)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--profile", action="store_true", help="cProfile the throughput phase")
    args = parser.parse_args()
    configure_logging("warning", "console")
    queue: Any = multiprocessing.get_context("spawn").Queue()
    receiver = multiprocessing.get_context("spawn").Process(
        target=run_receiver, args=(queue,), daemon=True
    )
    receiver.start()
    try:
        base = f"http://127.0.0.1:{queue.get(timeout=30)}"
        result = asyncio.run(bench(args, base))
    finally:
        receiver.terminate()
        receiver.join()
    result.update(
        {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "settings": {
                "events_per_delivery": EVENTS_PER_DELIVERY,
                "deliveries": args.deliveries,
                "subscriptions": args.subscriptions,
                "max_in_flight": args.in_flight,
                # Subscriptions made by INSERT take the schema's default ordering.
                "webhook_ordering": "independent",
                "per_subscription": Settings().webhook_max_in_flight_per_subscription,
            },
            "goal_events_per_second": GOAL_EVENTS_PER_SECOND,
        }
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "webhooks.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
