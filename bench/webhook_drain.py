"""Webhook drain time: a finished 4,000-match backfill, to a receiver failing 10% of attempts.

For each case and seed, a fresh database gets one workspace, one webhook
subscription and one backfill request, and real windows (`indexer.window`) scan
it over the scripted fake provider of the tests (a log every EVERY blocks, so
MATCHES matches in chunks of the default span) until the request is completed:
the outbox then holds the deliveries the window wrote, each of at most
`LOGFILL_WEBHOOK_MAX_EVENTS_PER_DELIVERY` events. Only then does the delivery
loop (`indexer.webhooks.dispatcher`) start, with default settings except that
local targets are allowed: the worst case, every delivery still pending when the
backfill completes. The drain time is from the request's completion
(`finished_at`) to the receiver's first 2xx of the last delivery.

The receiver runs in its own process (aiohttp): it verifies every signature with
the `standardwebhooks` package, answers 500 to a seeded random 10% of attempts,
and processes each `webhook-id` once (a repeat is acknowledged, not processed),
as the README tells receivers to.

Cases:
- before: strict order and the old schedule (0, 5 s, 5 min, ...): what a
  subscription got before `webhook_ordering` and the short early retries;
- strict: `webhook_ordering: "strict"` with today's default schedule;
- after: today's defaults (independent deliveries, default schedule).

The goal is every match delivered and verified within GOAL_SECONDS of completion.
Results: bench/results/webhook_drain.json.

Run: .venv/bin/python -m bench.webhook_drain [--matches 4000] [--every 25] [--seeds 3]
                                             [--cases before,strict,after] [--cap 900]
                                             [--output webhook_drain.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import random
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.webhooks import fresh_database, serve_receiver
from indexer.accounts import create_workspace
from indexer.db.pool import connect, create_pool
from indexer.logging import configure_logging
from indexer.settings import Settings
from indexer.webhooks.dispatcher import delivering
from tests.support.fake_provider import ADDRESS_A, FakeProvider, SyntheticChain
from tests.support.webhooks import SECRET
from tests.support.window import create_backfill, create_subscription, run_until_settled
from tests.support.window import window_settings as chain_settings

RESULTS = Path(__file__).parent / "results"
GOAL_SECONDS = 60.0
FAIL_RATE = 0.1
OLD_SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
FIRST_BLOCK = 1_000
CASES = {
    "before": ("strict", OLD_SCHEDULE),
    "strict": ("strict", None),  # None: the default schedule
    "after": ("independent", None),
}


# ----------------------------------------------------------------------------- receiver


def run_receiver(port_queue: Any) -> None:
    """The receiver process: verify, fail a seeded 10%, process each webhook-id once."""
    from standardwebhooks.webhooks import Webhook

    webhook = Webhook(SECRET)
    state: dict[str, Any] = {}

    def reset(seed: int) -> None:
        state.update(
            rng=random.Random(seed),
            processed={},  # webhook-id -> wall time of its first 2xx
            events=set(),
            attempts=0,
            failures=0,
            repeats=0,
            bad_signatures=0,
        )

    reset(0)

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        state["attempts"] += 1
        try:
            webhook.verify(body, dict(request.headers))
        except Exception:
            state["bad_signatures"] += 1
            return web.Response(status=400)
        webhook_id = request.headers["webhook-id"]
        if webhook_id in state["processed"]:
            state["repeats"] += 1
            return web.Response(status=204)
        if state["rng"].random() < FAIL_RATE:
            state["failures"] += 1
            return web.Response(status=500, text="flaky")
        state["processed"][webhook_id] = time.time()
        state["events"].update(event["id"] for event in json.loads(body)["events"])
        return web.Response(status=204)

    async def stats(_: web.Request) -> web.Response:
        summary = {key: value for key, value in state.items() if key not in ("rng", "events")}
        summary["unique_events"] = len(state["events"])
        return web.json_response(summary)

    async def restart(request: web.Request) -> web.Response:
        reset(int(request.query["seed"]))
        return web.Response(status=204)

    serve_receiver(port_queue, hook=hook, stats=stats, reset=restart)


# ----------------------------------------------------------------------------- one run


async def finished_backfill(
    url: str, hook: str, ordering: str, matches: int, every: int
) -> tuple[uuid.UUID, datetime, int]:
    """Scan a backfill of `matches` matches to completion; (request, finished_at, rows)."""
    last_block = FIRST_BLOCK + matches * every - 1
    chain = SyntheticChain(
        logs_per_block=lambda n: 1 if n >= FIRST_BLOCK and n % every == 0 else 0,
        addresses=(ADDRESS_A,),
        head=last_block + 10,
        finalized=last_block + 10,
    )
    conn = await connect(url)
    pool = await create_pool(url, min_size=1, max_size=4, timeout=10)
    try:
        created = await create_workspace(conn, name="bench", plan="enterprise", credits=10**9)
        subscription = await create_subscription(
            conn, created.workspace_id, addresses=[ADDRESS_A], webhook_url=hook
        )
        await conn.execute(
            "UPDATE subscriptions SET webhook_ordering = $2 WHERE id = $1", subscription, ordering
        )
        request = await create_backfill(conn, subscription, FIRST_BLOCK, last_block)
        async with FakeProvider(chain=chain) as fake:
            await run_until_settled(pool, chain_settings(fake.url), [request], max_windows=500)
        row = await conn.fetchrow(
            "SELECT status, finished_at, new_matches FROM backfill_requests WHERE id = $1",
            request,
        )
        assert row is not None and row["status"] == "completed", row
        assert row["new_matches"] == matches, row
        rows = await conn.fetchval("SELECT count(*) FROM webhook_deliveries")
        return request, row["finished_at"], rows
    finally:
        await pool.close()
        await conn.close()


async def drain(url: str, settings: Settings, rows: int, cap: float) -> tuple[bool, dict[str, int]]:
    """Run the delivery loop until every row is delivered (or `cap` seconds pass)."""
    pool = await create_pool(url, min_size=2, max_size=10)
    try:
        async with delivering(settings, pool):
            deadline = time.monotonic() + cap
            while time.monotonic() < deadline:
                done = await pool.fetchval(
                    "SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'"
                )
                if done == rows:
                    break
                await asyncio.sleep(0.05)
        counts = await pool.fetch(
            "SELECT status, count(*) AS n, max(attempts) AS most FROM webhook_deliveries"
            " GROUP BY status"
        )
    finally:
        await pool.close()
    by_status = {r["status"]: r["n"] for r in counts}
    most = max((r["most"] for r in counts), default=0)
    return by_status.get("delivered", 0) == rows, {**by_status, "max_attempts": most}


async def one_run(
    server: str, base: str, case: str, seed: int, args: argparse.Namespace
) -> dict[str, Any]:
    ordering, schedule = CASES[case]
    overrides: dict[str, Any] = {"worker_metrics_port": 0, "webhook_allow_private": True}
    if schedule is not None:
        overrides["webhook_retry_schedule"] = schedule
    settings = Settings(_env_file=None, **overrides)  # type: ignore[call-arg]
    async with fresh_database(server) as url, aiohttp.ClientSession() as http:
        _, finished_at, rows = await finished_backfill(
            url, f"{base}/hook", ordering, args.matches, args.every
        )
        await http.post(f"{base}/reset", params={"seed": str(seed)})
        complete, statuses = await drain(url, settings, rows, args.cap)
        async with http.get(f"{base}/stats") as response:
            stats = await response.json()
    last = max(stats["processed"].values(), default=finished_at.timestamp())
    return {
        "case": case,
        "seed": seed,
        "ordering": ordering,
        "deliveries": rows,
        "all_delivered": complete and stats["unique_events"] == args.matches,
        "drain_seconds": round(last - finished_at.timestamp(), 2) if complete else None,
        "events_processed": stats["unique_events"],
        "attempts": stats["attempts"],
        "failed_attempts": stats["failures"],
        "repeats": stats["repeats"],
        "bad_signatures": stats["bad_signatures"],
        "statuses": statuses,
    }


# ----------------------------------------------------------------------------- report


def summary(runs: list[dict[str, Any]], cap: float) -> dict[str, Any]:
    drains = [r["drain_seconds"] for r in runs]
    finished = [d for d in drains if d is not None]
    return {
        "runs": len(runs),
        "drain_seconds": [d if d is not None else f"> {cap:g} (cap)" for d in drains],
        "median_seconds": round(statistics.median(finished), 2)
        if len(finished) == len(runs)
        else None,
        "max_seconds": round(max(finished), 2) if len(finished) == len(runs) else None,
        "within_goal": sum(1 for d in finished if d <= GOAL_SECONDS),
    }


async def bench(args: argparse.Namespace, base: str) -> dict[str, Any]:
    server = os.environ.get("LOGFILL_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    results: dict[str, Any] = {}
    for case in args.cases:
        runs = []
        for seed in range(1, args.seeds + 1):
            run = await one_run(server, base, case, seed, args)
            print(json.dumps(run), flush=True)
            runs.append(run)
        results[case] = {"summary": summary(runs, args.cap), "runs": runs}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--matches", type=int, default=4000)
    parser.add_argument("--every", type=int, default=25, help="a match every N blocks")
    parser.add_argument("--seeds", type=int, default=3, help="runs per case (seeds 1..N)")
    parser.add_argument("--cases", default="before,strict,after")
    parser.add_argument("--cap", type=float, default=900.0, help="give up a drain after (s)")
    parser.add_argument("--output", default="webhook_drain.json", help="file in bench/results")
    args = parser.parse_args()
    args.cases = [c for c in args.cases.split(",") if c]
    unknown = set(args.cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}; known: {', '.join(CASES)}")
    configure_logging("warning", "console")
    context = multiprocessing.get_context("spawn")
    queue: Any = context.Queue()
    receiver = context.Process(target=run_receiver, args=(queue,), daemon=True)
    receiver.start()
    try:
        base = f"http://127.0.0.1:{queue.get(timeout=30)}"
        results = asyncio.run(bench(args, base))
    finally:
        receiver.terminate()
        receiver.join()
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": {
            "matches": args.matches,
            "match_every_blocks": args.every,
            "fail_rate": FAIL_RATE,
            "events_per_delivery": defaults.webhook_max_events_per_delivery,
            "default_schedule": defaults.webhook_retry_schedule,
            "old_schedule": OLD_SCHEDULE,
            "max_in_flight_per_subscription": defaults.webhook_max_in_flight_per_subscription,
            "poll_seconds": defaults.webhook_poll_seconds,
            "cap_seconds": args.cap,
        },
        "goal_seconds": GOAL_SECONDS,
        "cases": {case: result["summary"] for case, result in results.items()},
        "runs": [run for result in results.values() for run in result["runs"]],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"goal_seconds": GOAL_SECONDS, "cases": report["cases"]}, indent=2))


if __name__ == "__main__":
    main()
