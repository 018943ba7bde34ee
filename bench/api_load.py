"""HTTP API load: POST /v1/backfill with fresh and replayed Idempotency-Keys, GET status.

Starts `logfill api` as a subprocess on a fresh database
(`logfill_bench_api_<random>` on --server, dropped afterwards), creates one
workspace on a plan whose rate limit is out of the way, one subscription, and
then drives each scenario for --seconds with --concurrency requests in flight
from --clients load processes:

- post_fresh:    POST /v1/backfill, a new Idempotency-Key each time (creates a request);
- post_replayed: POST /v1/backfill with keys already used (answers the stored response);
- get_status:    GET /v1/backfill/{id} of existing requests.

Prints a table (requests/s, p50/p99 latency, non-2xx count) and writes
bench/results/api_load.json. The load generator runs on the same machine, so
its CPU counts against the server's.

Run: .venv/bin/python -m bench.api_load [--seconds 10] [--concurrency 32] [--clients 1]
     [--server postgresql://postgres@127.0.0.1:5432/postgres] [--repeat 2]
     [--only post_fresh] [--profile server.prof]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from indexer.accounts import create_workspace
from indexer.db.admin import create_database, drop_database
from indexer.db.pool import connect
from indexer.localhost import free_port

RESULTS = Path(__file__).parent / "results"
LOGFILL = str(Path(sys.executable).parent / "logfill")
GOALS = {"post_fresh": (1000, 50.0), "post_replayed": (1000, 50.0), "get_status": (4000, None)}
REPLAY_KEYS = 500


@dataclass
class Result:
    scenario: str
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float


async def wait_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            if process.poll() is not None:
                raise RuntimeError("logfill api exited during start-up")
            try:
                async with session.get(f"{base}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("logfill api did not become ready")


async def _seed(database_url: str, base: str) -> dict[str, Any]:
    """A workspace without a practical rate limit, a subscription, requests and used keys."""
    conn = await connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO plans (name, backfill_enabled, max_backfill_blocks,"
            " api_requests_per_minute) VALUES ('bench', true, 1000000000, 100000000)"
        )
        created = await create_workspace(conn, name="bench", plan="bench", credits=0)
    finally:
        await conn.close()
    headers = {"Authorization": f"Bearer {created.api_key}"}
    async with aiohttp.ClientSession(base, headers=headers) as session:
        async with session.post("/v1/subscriptions", json={"chain_id": 1}) as response:
            subscription = (await response.json())["id"]
        ids, keys = [], []
        for i in range(REPLAY_KEYS):
            key = f"seed-{i}"
            body = {"subscription_id": subscription, "from_block": i, "to_block": i + 1000}
            async with session.post(
                "/v1/backfill", json=body, headers={"Idempotency-Key": key}
            ) as response:
                assert response.status == 202, await response.text()
                ids.append((await response.json())["id"])
                keys.append((key, body))
    return {"api_key": created.api_key, "subscription": subscription, "ids": ids, "keys": keys}


def _request(
    scenario: str, seed: dict[str, Any], n: int, worker: str
) -> tuple[str, str, bytes, dict[str, str]]:
    if scenario == "get_status":
        return "GET", f"/v1/backfill/{seed['ids'][n % len(seed['ids'])]}", b"", {}
    if scenario == "post_replayed":
        key, body = seed["keys"][n % len(seed["keys"])]
        return "POST", "/v1/backfill", orjson.dumps(body), {"Idempotency-Key": key}
    body = {
        "subscription_id": seed["subscription"],
        "from_block": n % 100000,
        "to_block": n % 100000 + 50,
    }
    key = f"{worker}-{n}"
    return "POST", "/v1/backfill", orjson.dumps(body), {"Idempotency-Key": key}


async def _drive(
    base: str, scenario: str, seed: dict[str, Any], seconds: float, concurrency: int, worker: str
) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    counter = iter(range(10**9))
    deadline = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {seed['api_key']}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base, headers=headers, connector=connector) as session:

        async def loop() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                method, path, data, extra = _request(scenario, seed, next(counter), worker)
                start = time.perf_counter()
                async with session.request(
                    method, path, data=data or None, headers=extra
                ) as response:
                    await response.read()
                    if response.status >= 300:
                        errors += 1
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(loop() for _ in range(concurrency)))
    return latencies, errors


def _client_process(
    args: tuple[str, str, dict[str, Any], float, int, str],
) -> tuple[list[float], int]:
    base, scenario, seed, seconds, concurrency, worker = args
    return asyncio.run(_drive(base, scenario, seed, seconds, concurrency, worker))


WRK_SCRIPT = """
local scenario, api_key, subscription = %(scenario)s, %(api_key)s, %(subscription)s
local ids = {%(ids)s}
local keys = {%(keys)s}
local bodies = {%(bodies)s}
local run = %(run)s
local n = 0
local auth = "Bearer " .. api_key
request = function()
  n = n + 1
  if scenario == "get_status" then
    return wrk.format("GET", "/v1/backfill/" .. ids[(n %% #ids) + 1], {["Authorization"] = auth})
  end
  local headers = {["Authorization"] = auth, ["Content-Type"] = "application/json"}
  if scenario == "post_replayed" then
    local i = (n %% #keys) + 1
    headers["Idempotency-Key"] = keys[i]
    return wrk.format("POST", "/v1/backfill", headers, bodies[i])
  end
  headers["Idempotency-Key"] = run .. "-" .. n
  local block = n %% 100000
  local body = '{"subscription_id":"' .. subscription .. '","from_block":' .. block ..
               ',"to_block":' .. (block + 50) .. '}'
  return wrk.format("POST", "/v1/backfill", headers, body)
end
"""


def _lua(value: str) -> str:
    return json.dumps(value)  # a JSON string of ASCII is a valid Lua string literal


def _wrk_script(scenario: str, seed: dict[str, Any], run: str) -> str:
    return WRK_SCRIPT % {
        "scenario": _lua(scenario),
        "api_key": _lua(seed["api_key"]),
        "subscription": _lua(seed["subscription"]),
        "ids": ",".join(_lua(i) for i in seed["ids"]),
        "keys": ",".join(_lua(k) for k, _ in seed["keys"]),
        "bodies": ",".join(_lua(orjson.dumps(b).decode()) for _, b in seed["keys"]),
        "run": _lua(run),
    }


def _wrk_ms(text: str) -> float:
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    raise ValueError(text)


def run_wrk(
    base: str, scenario: str, seed: dict[str, Any], opts: argparse.Namespace, run: int
) -> Result:
    """wrk (C, one thread) as the load generator: it leaves the CPU to the server."""
    script = Path(f"/tmp/logfill_api_load_{os.getpid()}.lua")
    script.write_text(_wrk_script(scenario, seed, f"r{run}-{uuid.uuid4().hex[:8]}"))
    try:
        output = subprocess.run(
            [
                "wrk",
                "-t",
                str(opts.clients),
                "-c",
                str(opts.concurrency),
                "-d",
                f"{max(1, round(opts.seconds))}s",
                "--latency",
                "-s",
                str(script),
                base,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        script.unlink(missing_ok=True)
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", output, re.MULTILINE))
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    if socket_errors:
        print(f"wrk socket errors ({scenario}): {socket_errors.group(1)}", flush=True)
    return Result(
        scenario,
        requests,
        int(errors.group(1)) if errors else 0,
        opts.seconds,
        round(rps, 1),
        round(_wrk_ms(percentiles["50"]), 2),
        round(_wrk_ms(percentiles["99"]), 2),
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def run_scenario(
    base: str, scenario: str, seed: dict[str, Any], opts: argparse.Namespace, run: int
) -> Result:
    per_client = max(1, opts.concurrency // opts.clients)
    jobs = [
        (base, scenario, seed, opts.seconds, per_client, f"r{run}c{i}-{uuid.uuid4().hex[:6]}")
        for i in range(opts.clients)
    ]
    start = time.perf_counter()
    if opts.clients == 1:
        outcomes = [_client_process(jobs[0])]
    else:
        with multiprocessing.get_context("spawn").Pool(opts.clients) as pool:
            outcomes = pool.map(_client_process, jobs)
    elapsed = time.perf_counter() - start
    latencies = [x for lat, _ in outcomes for x in lat]
    errors = sum(e for _, e in outcomes)
    seconds = min(elapsed, opts.seconds) if opts.clients == 1 else opts.seconds
    return Result(
        scenario,
        len(latencies),
        errors,
        round(seconds, 2),
        round(len(latencies) / seconds, 1),
        round(_percentile(latencies, 0.50), 2),
        round(_percentile(latencies, 0.99), 2),
    )


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
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--clients", type=int, default=1, help="wrk threads / client processes")
    parser.add_argument(
        "--tool", choices=("wrk", "python"), default="wrk" if shutil.which("wrk") else "python"
    )
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--pool-size", type=int, default=20)
    parser.add_argument("--profile", help="write a cProfile of the server to this file")
    parser.add_argument(
        "--only", action="append", choices=tuple(GOALS), help="run only this scenario (repeatable)"
    )
    opts = parser.parse_args()

    name = f"logfill_bench_api_{uuid.uuid4().hex[:10]}"
    database_url = asyncio.run(create_database(opts.server, name))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGFILL_")}
    env.update(
        LOGFILL_DATABASE_URL=database_url,
        LOGFILL_LOG_LEVEL="warning",
        LOGFILL_LOG_FORMAT="json",
        LOGFILL_CHAINS='{"1": {"rpc_url": "http://127.0.0.1:9"}}',
        LOGFILL_DB_POOL_MIN_SIZE=str(opts.pool_size),
        LOGFILL_DB_POOL_MAX_SIZE=str(opts.pool_size),
    )
    command = [LOGFILL, "api", "--host", "127.0.0.1", "--port", str(port)]
    if opts.profile:  # written when the server stops on SIGTERM (it exits normally then)
        command = [sys.executable, "-m", "cProfile", "-o", opts.profile, *command]
    process = subprocess.Popen(command, env=env)
    results: list[Result] = []
    try:
        asyncio.run(wait_ready(base, process))
        seed = asyncio.run(_seed(database_url, base))
        for run in range(opts.repeat):
            for scenario in opts.only or GOALS:
                drive = run_wrk if opts.tool == "wrk" else run_scenario
                results.append(drive(base, scenario, seed, opts, run))
                print(asdict(results[-1]), flush=True)
    finally:
        process.terminate()
        process.wait(timeout=20)
        asyncio.run(drop_database(opts.server, name))
    _report(results, opts)


def _report(results: list[Result], opts: argparse.Namespace) -> None:
    best: dict[str, Result] = {}
    for result in results:
        if result.scenario not in best or result.rps > best[result.scenario].rps:
            best[result.scenario] = result
    header = f"{'scenario':<15} {'req/s':>9} {'range':>17} {'p50 ms':>8} {'p99 ms':>8}"
    print(f"\n{header} {'errors':>7}  goal")
    for scenario, result in best.items():
        runs = [r.rps for r in results if r.scenario == scenario]
        rps_goal, p99_goal = GOALS[scenario]
        ok = result.rps >= rps_goal and (p99_goal is None or result.p99_ms < p99_goal)
        goal = f">= {rps_goal}/s" + (f", p99 < {p99_goal:.0f} ms" if p99_goal else "")
        print(
            f"{scenario:<15} {result.rps:>9.1f} {min(runs):>8.1f}-{max(runs):<8.1f} "
            f"{result.p50_ms:>8.2f} {result.p99_ms:>8.2f} {result.errors:>7}  "
            f"{goal} {'met' if ok else 'MISSED'}"
        )
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "options": {k: v for k, v in vars(opts).items() if k != "server"},
        "best": {k: asdict(v) for k, v in best.items()},
        "runs": [asdict(r) for r in results],
    }
    (RESULTS / "api_load.json").write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
