"""Side by side on one chain and one PostgreSQL: a bare pipeline, logfill, Ponder.

One anvil holds --logs logs over --blocks blocks (10 a block by default, from 5
Emitter contracts: bench.chain_layout), behind a counting JSON-RPC proxy
(bench.cu_proxy) that every client below goes through. One PostgreSQL server
(LOGFILL_DATABASE_URL's, else an embedded one) holds a fresh database for every
run. Interleaved, --repeat times (bare, logfill, bare, logfill, ...):

- bare:    aiohttp eth_getLogs over the range (logfill's span, as many calls in
           flight) -> COPY into a temporary staging table -> INSERT ... SELECT ...
           ON CONFLICT DO NOTHING into a plain logs table with one unique key;
- logfill: real processes (`logfill api` and `logfill worker`) on a freshly
           migrated database; a workspace from `logfill admin`, a subscription
           matching every log (stored events), POST /v1/backfill with an
           Idempotency-Key, then GET until `completed`.

Then once each: twenty requests over the same range from five workspaces (four
subscriptions each) POSTed at once, the same twenty POSTed evenly over --spread
seconds, and Ponder (bench.ponder_run) from `ponder start` until /ready answers 200.

For every run: wall time, PostgreSQL CPU seconds (bench.procstat: the server's
processes, whoever used them), CU through the proxy (eth_getLogs 60,
eth_getBlockByNumber 20, eth_blockNumber 10, other methods 10); for logfill also
the worker's CPU seconds and peak RSS (VmHWM) and the windows table's
sum(cu_spent). Figures are medians with the range over the runs.
Results: bench/results/side_by_side.json.

Run: .venv/bin/python -m bench.side_by_side [--logs 200000] [--blocks 20000] [--repeat 3]
     [--span 500] [--in-flight 4] [--tick 1] [--spread 20] [--no-ponder]
     (a quick check: --logs 20000 --blocks 2000 --repeat 1 --spread 5 --no-ponder)
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import orjson

from bench import ponder_run
from bench.backfill_e2e import server_database
from bench.chain_layout import ANVIL_ARGS, fill_spread
from bench.cu_proxy import cu_of
from bench.procstat import PostgresCpu, cpu_seconds, peak_rss_mib
from indexer.localhost import free_port
from tests.support import anvil as chain

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]
LOGFILL = str(Path(sys.executable).parent / "logfill")
CHAIN_ID = chain.CHAIN_ID
# Empty blocks mined after the range: Ponder backfills only blocks it holds final
# (30 behind the head on a local chain), the rest it would follow live.
FINALITY_PADDING = 100
TERMINAL = ("completed", "completed_noop", "cancelled", "failed")
GOALS = {
    "speed_bare_over_logfill": 0.8,  # at least: logfill at >= 80% of the bare speed
    "pg_cpu_per_match_logfill_over_bare": 2.0,  # at most
    "twenty_cu_vs_one": 1.1,  # at most
    "twenty_peak_rss_mib": 200,  # at most
    "burst_post_seconds": 0.15,  # the twenty POSTs within
}

BARE_SCHEMA = """
CREATE TABLE logs (
    block_hash   bytea   NOT NULL,
    log_index    integer NOT NULL,
    block_number bigint  NOT NULL,
    tx_hash      bytea   NOT NULL,
    tx_index     integer NOT NULL,
    address      bytea   NOT NULL,
    topic0       bytea,
    topic1       bytea,
    topic2       bytea,
    topic3       bytea,
    data         bytea   NOT NULL,
    UNIQUE (block_hash, log_index)
);
CREATE TEMPORARY TABLE staging (LIKE logs) ON COMMIT DELETE ROWS;
"""
BARE_INSERT = "INSERT INTO logs SELECT * FROM staging ON CONFLICT DO NOTHING"


# --- databases ---------------------------------------------------------------------


def database_url(server_url: str, name: str) -> str:
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


@asynccontextmanager
async def fresh_database(server_url: str, prefix: str) -> AsyncIterator[str]:
    """A new, empty database on the server for the block; dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield database_url(server_url, name)
    finally:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def server_version(server_url: str) -> str:
    conn = await asyncpg.connect(server_url)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


# --- the counting proxy ---------------------------------------------------------------


@contextmanager
def counting_proxy(upstream: str) -> Iterator[str]:
    """`python -m bench.cu_proxy` in front of `upstream`; its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.cu_proxy", "--upstream", upstream],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().split()
        if len(line) != 2 or line[0] != "listening":
            raise RuntimeError(f"bench.cu_proxy did not start: {line}")
        yield line[1]
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass(frozen=True)
class Reading:
    """What the proxy had counted, the PostgreSQL server's CPU, at one moment."""

    calls: dict[str, int]
    pg_cpu: float
    at: float

    def since(self, before: Reading) -> tuple[dict[str, int], int, float, float]:
        """(calls by method, their CU, PostgreSQL CPU seconds, wall seconds) in between."""
        calls = {
            method: n - before.calls.get(method, 0)
            for method, n in self.calls.items()
            if n - before.calls.get(method, 0)
        }
        return calls, cu_of(calls), self.pg_cpu - before.pg_cpu, self.at - before.at


async def read(session: aiohttp.ClientSession, proxy: str, pg: PostgresCpu) -> Reading:
    async with session.get(f"{proxy}/_counts") as answer:
        counts = await answer.json()
    return Reading(counts["calls"], pg.seconds(), time.perf_counter())


# --- the bare pipeline ---------------------------------------------------------------


@dataclass
class BareRun:
    seconds: float
    logs: int
    calls: int
    cu: int
    pg_cpu_seconds: float
    client_cpu_seconds: float

    @property
    def logs_per_s(self) -> float:
        return self.logs / self.seconds


def hex_bytea(value: str) -> str:
    """A 0x-hex JSON-RPC field as a bytea in COPY text (`\\x...`, the backslash doubled)."""
    return "\\\\x" + value[2:]


def copy_text(logs: list[dict[str, Any]]) -> bytes:
    """COPY text rows for the logs table, straight from the provider's hex."""
    lines = []
    for entry in logs:
        topics = [hex_bytea(t) for t in entry["topics"]] + ["\\N"] * (4 - len(entry["topics"]))
        lines.append(
            "\t".join(
                (
                    hex_bytea(entry["blockHash"]),
                    str(int(entry["logIndex"], 16)),
                    str(int(entry["blockNumber"], 16)),
                    hex_bytea(entry["transactionHash"]),
                    str(int(entry["transactionIndex"], 16)),
                    hex_bytea(entry["address"]),
                    *topics,
                    hex_bytea(entry["data"]),
                )
            )
        )
    return ("\n".join(lines) + "\n").encode()


def chunks(low: int, high: int, span: int) -> list[tuple[int, int]]:
    return [(start, min(high, start + span - 1)) for start in range(low, high + 1, span)]


async def fetch_and_store(
    conn: asyncpg.Connection,
    rpc_url: str,
    addresses: list[str],
    ranges: list[tuple[int, int]],
    in_flight: int,
) -> int:
    """eth_getLogs, `in_flight` calls at once; each answer COPYed and inserted in one
    transaction on one connection, while the next calls are in flight. Logs stored."""
    semaphore = asyncio.Semaphore(in_flight)
    answers: asyncio.Queue[list[dict[str, Any]] | BaseException] = asyncio.Queue(in_flight)
    connector = aiohttp.TCPConnector(limit=in_flight)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def fetch(low: int, high: int) -> None:
            body = orjson.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "eth_getLogs",
                    "params": [{"address": addresses, "fromBlock": hex(low), "toBlock": hex(high)}],
                }
            )
            async with semaphore:  # held until queued: answers in memory stay bounded
                try:
                    async with http.post(
                        rpc_url, data=body, headers={"Content-Type": "application/json"}
                    ) as answer:
                        payload = orjson.loads(await answer.read())
                    if "error" in payload:
                        raise RuntimeError(f"eth_getLogs {low}-{high}: {payload['error']}")
                    await answers.put(payload["result"])
                except Exception as exc:
                    await answers.put(exc)

        tasks = [asyncio.create_task(fetch(low, high)) for low, high in ranges]
        stored = 0
        try:
            for _ in ranges:
                item = await answers.get()
                if isinstance(item, BaseException):
                    raise item
                async with conn.transaction():
                    await conn.copy_to_table("staging", source=io.BytesIO(copy_text(item)))
                    await conn.execute(BARE_INSERT)
                stored += len(item)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return stored


async def bare_run(
    server_url: str,
    session: aiohttp.ClientSession,
    proxy: str,
    pg: PostgresCpu,
    addresses: list[str],
    ranges: list[tuple[int, int]],
    in_flight: int,
) -> BareRun:
    async with fresh_database(server_url, "logfill_bench_bare") as url:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(BARE_SCHEMA)
            before = await read(session, proxy, pg)
            client_before = time.process_time()
            started = time.perf_counter()
            stored = await fetch_and_store(conn, proxy, addresses, ranges, in_flight)
            seconds = time.perf_counter() - started
            client_cpu = time.process_time() - client_before
            calls, cu, pg_cpu, _ = (await read(session, proxy, pg)).since(before)
            in_table = await conn.fetchval("SELECT count(*) FROM logs")
        finally:
            await conn.close()
    assert in_table == stored, (in_table, stored)
    return BareRun(seconds, stored, sum(calls.values()), cu, pg_cpu, client_cpu)


# --- logfill -------------------------------------------------------------------------


@dataclass
class Service:
    """`logfill api` and `logfill worker` on a database of their own."""

    database_url: str
    base: str
    env: dict[str, str]
    folder: Path
    api: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]
    logs: list[IO[bytes]] = field(default_factory=list)

    def check_alive(self) -> None:
        for name, process in (("api", self.api), ("worker", self.worker)):
            if process.poll() is not None:
                tail = (self.folder / f"{name}.log").read_text(errors="replace")[-1500:]
                raise RuntimeError(f"logfill {name} exited ({process.returncode}): {tail}")


@dataclass
class LogfillRun:
    requests: int
    seconds: float  # first POST sent -> every request seen terminal by GET
    post_seconds: float  # first POST sent -> last POST answered
    statuses: dict[str, int]
    matches: int  # sum(new_matches) of backfill_requests
    calls: dict[str, int]  # through the proxy
    cu: int  # through the proxy
    cu_windows: int  # sum(cu_spent) of the windows between the first POST and the end
    windows: int
    worker_cpu_seconds: float
    api_cpu_seconds: float
    pg_cpu_seconds: float
    worker_peak_rss_mib: float | None
    db_seconds: float | None  # backfill_requests: first created_at -> last finished_at

    @property
    def matches_per_s(self) -> float:
        return self.matches / self.seconds


def logfill_env(database_url: str, rpc_url: str, opts: argparse.Namespace) -> dict[str, str]:
    chains = {
        str(CHAIN_ID): {
            "rpc_url": rpc_url,
            "confirmations": 0,
            "tick_seconds": opts.tick,
            "max_block_range": opts.span,
            "max_calls_in_flight": opts.in_flight,
            "window_budget_cu": opts.budget,
            "request_timeout_seconds": 120,
        }
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGFILL_")}
    env.update(
        LOGFILL_DATABASE_URL=database_url,
        LOGFILL_CHAINS=json.dumps(chains),
        LOGFILL_LOG_LEVEL="warning",
        LOGFILL_LOG_FORMAT="json",
        LOGFILL_WORKER_METRICS_PORT="0",
    )
    return env


async def logfill_cli(env: dict[str, str], folder: Path, *args: str) -> Any:
    """`logfill ARGS...`; its JSON answer on stdout."""
    process = await asyncio.create_subprocess_exec(
        LOGFILL,
        *args,
        env=env,
        cwd=folder,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"logfill {' '.join(args)}: exit {process.returncode}: {err[-1500:]!r}")
    return orjson.loads(out) if out.strip() else None


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@asynccontextmanager
async def logfill_service(
    server_url: str, rpc_url: str, opts: argparse.Namespace, last_block: int
) -> AsyncIterator[Service]:
    """Fresh database, `logfill migrate`, then api and worker until the worker knows
    the head (a window recorded it); stopped (SIGTERM) and dropped afterwards."""
    async with fresh_database(server_url, "logfill_bench_sbs") as database_url:
        folder = Path(tempfile.mkdtemp(prefix="logfill-bench-sbs-"))
        env = logfill_env(database_url, rpc_url, opts)
        processes: list[subprocess.Popen[bytes]] = []
        logs: list[IO[bytes]] = []

        def start(name: str, *args: str) -> subprocess.Popen[bytes]:
            log = (folder / f"{name}.log").open("wb")
            logs.append(log)
            process = subprocess.Popen(
                [LOGFILL, *args], env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT
            )
            processes.append(process)
            return process

        try:
            await logfill_cli(env, folder, "migrate")
            port = free_port()
            api = start("api", "api", "--host", "127.0.0.1", "--port", str(port))
            worker = start("worker", "worker")
            service = Service(database_url, f"http://127.0.0.1:{port}", env, folder, api, worker)
            await _wait_ready(service, last_block)
            yield service
        finally:
            for process in processes:
                _stop(process)
            for log in logs:
                log.close()
            shutil.rmtree(folder, ignore_errors=True)


async def _wait_ready(service: Service, last_block: int, timeout: float = 90.0) -> None:
    """The API answers /readyz, and a window has seen the head at or past the range."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            service.check_alive()
            try:
                async with session.get(f"{service.base}/readyz") as answer:
                    if answer.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("logfill api did not become ready")
            await asyncio.sleep(0.1)
    conn = await asyncpg.connect(service.database_url)
    try:
        while (await conn.fetchval("SELECT max(head) FROM windows") or -1) < last_block:
            service.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError("no logfill window saw the chain's head")
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def _api(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    key: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """One API call; its JSON answer. Waits out a 429; raises on any other error."""
    for _ in range(20):
        async with session.request(
            method,
            url,
            data=None if body is None else orjson.dumps(body),
            headers={
                "Authorization": f"Bearer {key}",
                "Content-Type": "application/json",
                **(headers or {}),
            },
        ) as answer:
            if answer.status == 429:
                await asyncio.sleep(float(answer.headers.get("Retry-After", "1")))
                continue
            text = await answer.text()
            if answer.status >= 300:
                raise RuntimeError(f"{method} {url}: {answer.status} {text[:500]}")
            return orjson.loads(text)
    raise RuntimeError(f"{method} {url}: rate limited")


async def subscribers(
    service: Service,
    session: aiohttp.ClientSession,
    addresses: list[str],
    workspaces: int,
    per_workspace: int,
    credits: int,
) -> list[tuple[str, str]]:
    """Workspaces from `logfill admin workspace create` (enterprise plan), each with
    `per_workspace` subscriptions to every log of the contracts: [(api key, id)]."""
    created = await asyncio.gather(
        *(
            logfill_cli(
                service.env, service.folder, "admin", "workspace", "create",
                "--name", f"bench-{w}", "--plan", "enterprise", "--credits", str(credits),
            )
            for w in range(workspaces)
        )
    )  # fmt: skip
    pairs = []
    for w, workspace in enumerate(created):
        for s in range(per_workspace):
            body = {"chain_id": CHAIN_ID, "name": f"bench-{w}-{s}", "addresses": addresses}
            answer = await _api(
                session, "POST", f"{service.base}/v1/subscriptions", workspace["api_key"], body
            )
            pairs.append((workspace["api_key"], answer["id"]))
    return pairs


async def measured_backfills(
    service: Service,
    session: aiohttp.ClientSession,
    proxy: str,
    pg: PostgresCpu,
    pairs: list[tuple[str, str]],
    low: int,
    high: int,
    spread: float,
    poll: float = 0.1,
) -> LogfillRun:
    """One POST /v1/backfill per (key, subscription), all at once (spread 0) or evenly
    over `spread` seconds; GET until every one is terminal. Figures of the whole."""
    worker_before = cpu_seconds(service.worker.pid)
    api_before = cpu_seconds(service.api.pid)
    before = await read(session, proxy, pg)
    first_post = datetime.now(UTC)
    started = time.perf_counter()
    answered: list[float] = []

    async def post(key: str, subscription: str) -> tuple[str, str]:
        body = {"subscription_id": subscription, "from_block": low, "to_block": high}
        answer = await _api(
            session, "POST", f"{service.base}/v1/backfill", key, body,
            {"Idempotency-Key": f"bench-{uuid.uuid4()}"},
        )  # fmt: skip
        answered.append(time.perf_counter() - started)
        return key, str(answer["id"])

    if spread <= 0 or len(pairs) == 1:
        requests = await asyncio.gather(*(post(k, s) for k, s in pairs))
    else:
        tasks = []
        for i, (key, subscription) in enumerate(pairs):
            delay = started + i * spread / (len(pairs) - 1) - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(key, subscription)))
        requests = await asyncio.gather(*tasks)

    pending, statuses = list(requests), {}
    while pending:
        key, request_id = pending[0]
        answer = await _api(session, "GET", f"{service.base}/v1/backfill/{request_id}", key)
        if answer["status"] in TERMINAL:
            statuses[request_id] = answer["status"]
            pending.pop(0)
            continue
        service.check_alive()
        await asyncio.sleep(poll)
    seconds = time.perf_counter() - started
    last_seen = datetime.now(UTC)
    worker_cpu = cpu_seconds(service.worker.pid) - worker_before
    api_cpu = cpu_seconds(service.api.pid) - api_before
    rss = peak_rss_mib(service.worker.pid)
    calls, cu, pg_cpu, _ = (await read(session, proxy, pg)).since(before)

    conn = await asyncpg.connect(service.database_url)
    try:
        requests_row = await conn.fetchrow(
            "SELECT coalesce(sum(new_matches), 0)::bigint AS matches,"
            " extract(epoch FROM max(finished_at) - min(created_at))::float8 AS seconds"
            " FROM backfill_requests"
        )
        windows_row = await conn.fetchrow(
            "SELECT coalesce(sum(cu_spent), 0)::bigint AS cu, count(*) AS windows FROM windows"
            " WHERE coalesce(finished_at, now()) >= $1 AND started_at <= $2",
            first_post,
            last_seen,
        )
    finally:
        await conn.close()
    assert requests_row is not None and windows_row is not None
    counted: dict[str, int] = {}
    for status in statuses.values():
        counted[status] = counted.get(status, 0) + 1
    return LogfillRun(
        requests=len(pairs),
        seconds=seconds,
        post_seconds=max(answered),
        statuses=counted,
        matches=requests_row["matches"],
        calls=calls,
        cu=cu,
        cu_windows=windows_row["cu"],
        windows=windows_row["windows"],
        worker_cpu_seconds=worker_cpu,
        api_cpu_seconds=api_cpu,
        pg_cpu_seconds=pg_cpu,
        worker_peak_rss_mib=rss,
        db_seconds=requests_row["seconds"],
    )


async def logfill_run(
    server_url: str,
    session: aiohttp.ClientSession,
    proxy: str,
    pg: PostgresCpu,
    opts: argparse.Namespace,
    addresses: list[str],
    low: int,
    high: int,
    *,
    workspaces: int = 1,
    per_workspace: int = 1,
    spread: float = 0.0,
) -> LogfillRun:
    """A fresh logfill (database, api, worker); the backfills; everything stopped."""
    async with logfill_service(server_url, proxy, opts, high) as service:
        credits = 2 * opts.logs * per_workspace
        pairs = await subscribers(service, session, addresses, workspaces, per_workspace, credits)
        return await measured_backfills(service, session, proxy, pg, pairs, low, high, spread)


# --- Ponder --------------------------------------------------------------------------


async def ponder_side(
    server_url: str,
    session: aiohttp.ClientSession,
    proxy: str,
    pg: PostgresCpu,
    opts: argparse.Namespace,
    addresses: list[str],
    low: int,
    high: int,
) -> dict[str, Any]:
    """Ponder's row: its figures, or {"status": "skipped", "reason": ...}."""
    folder = Path(tempfile.mkdtemp(prefix="logfill-bench-ponder-"))
    try:
        print("  ponder: npm install", flush=True)
        version = await asyncio.to_thread(ponder_run.install, folder, opts.ponder_version)
        async with fresh_database(server_url, "logfill_bench_ponder") as url:
            ponder_run.write_project(
                folder, rpc_url=proxy, database_url=url, addresses=addresses,
                first=low, last=high, span=opts.span,
            )  # fmt: skip
            before = await read(session, proxy, pg)
            readings: list[Reading] = []

            async def at_ready() -> None:
                readings.append(await read(session, proxy, pg))

            print(f"  ponder {version}: start", flush=True)
            run = await ponder_run.run_ponder(folder, version, url, opts.ponder_timeout, at_ready)
        calls, cu, pg_cpu, _ = readings[0].since(before)
        return {
            **ponder_run.describe(run),
            "calls": calls,
            "cu": cu,
            "pg_cpu_seconds": round(pg_cpu, 2),
        }
    except ponder_run.PonderSkipped as exc:
        return {"status": "skipped", "reason": str(exc)}
    except Exception as exc:  # whatever else fails, the other rows stand
        return {"status": "skipped", "reason": f"{type(exc).__name__}: {exc}"}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- the whole -----------------------------------------------------------------------


def summary(values: list[float]) -> dict[str, Any]:
    """Median, min and max of the runs' values (None when there are none)."""
    if not values:
        return {"median": None, "min": None, "max": None, "runs": []}
    return {
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
        "runs": [round(v, 4) for v in values],
    }


def _ratio(a: float, b: float) -> float | None:
    return None if not b else a / b


def compose(
    opts: argparse.Namespace,
    bare: list[BareRun],
    logfill: list[LogfillRun],
    burst: LogfillRun | None,
    spread: LogfillRun | None,
    ponder: dict[str, Any],
) -> dict[str, Any]:
    """The result: every run, medians and ranges, ratios per interleaved pair."""
    one_cu = statistics.median(r.cu for r in logfill) if logfill else None
    speed = [b.seconds / r.seconds for b, r in zip(bare, logfill, strict=False)]
    pg_per_match = [
        value
        for b, r in zip(bare, logfill, strict=False)
        if (value := _ratio(r.pg_cpu_seconds / r.matches, b.pg_cpu_seconds / b.logs)) is not None
    ]

    def twenty(run: LogfillRun | None) -> dict[str, Any] | None:
        if run is None:
            return None
        return {
            **asdict(run),
            "matches_per_s": round(run.matches_per_s),
            "cu_vs_one": round(run.cu / one_cu, 3) if one_cu else None,
            "cu_one": one_cu,
        }

    return {
        "bare": {
            "runs": [asdict(r) | {"logs_per_s": round(r.logs_per_s)} for r in bare],
            "seconds": summary([r.seconds for r in bare]),
            "logs_per_s": summary([r.logs_per_s for r in bare]),
            "pg_cpu_seconds": summary([r.pg_cpu_seconds for r in bare]),
            "client_cpu_seconds": summary([r.client_cpu_seconds for r in bare]),
            "cu": summary([r.cu for r in bare]),
        },
        "logfill": {
            "runs": [asdict(r) | {"matches_per_s": round(r.matches_per_s)} for r in logfill],
            "seconds": summary([r.seconds for r in logfill]),
            "matches_per_s": summary([r.matches_per_s for r in logfill]),
            "worker_cpu_seconds": summary([r.worker_cpu_seconds for r in logfill]),
            "pg_cpu_seconds": summary([r.pg_cpu_seconds for r in logfill]),
            "cu": summary([r.cu for r in logfill]),
            "cu_windows": summary([r.cu_windows for r in logfill]),
            "worker_peak_rss_mib": summary(
                [r.worker_peak_rss_mib for r in logfill if r.worker_peak_rss_mib is not None]
            ),
        },
        "speed_bare_over_logfill": summary(speed),
        "pg_cpu_per_match_logfill_over_bare": summary(pg_per_match),
        "twenty_burst": twenty(burst),
        "twenty_spread": twenty(spread),
        "ponder": ponder,
    }


def machine() -> dict[str, Any]:
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(memory / 2**30, 1),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def _line(run: BareRun | LogfillRun) -> str:
    if isinstance(run, BareRun):
        return (
            f"  bare     {run.seconds:7.2f} s  {run.logs} logs ({run.logs_per_s:,.0f}/s),"
            f" PostgreSQL {run.pg_cpu_seconds:.2f} s CPU, {run.cu} CU"
        )
    return (
        f"  logfill  {run.seconds:7.2f} s  {run.requests} request(s) {run.statuses},"
        f" {run.matches} matches ({run.matches_per_s:,.0f}/s), POSTs in {run.post_seconds:.3f} s,"
        f" PostgreSQL {run.pg_cpu_seconds:.2f} s CPU, worker {run.worker_cpu_seconds:.2f} s CPU,"
        f" peak RSS {run.worker_peak_rss_mib or 0:.0f} MiB, {run.cu} CU"
        f" (windows: {run.cu_windows} CU in {run.windows})"
    )


class Scenarios:
    """Runs logfill's scenarios, keeping going when one fails: its problem is noted."""

    def __init__(self, opts: argparse.Namespace) -> None:
        self.opts = opts
        self.problems: list[str] = []

    async def attempt(self, label: str, work: Awaitable[LogfillRun]) -> LogfillRun | None:
        try:
            run = await asyncio.wait_for(work, self.opts.timeout)
        except TimeoutError:
            self.problems.append(f"{label}: not finished within --timeout {self.opts.timeout:g} s")
        except Exception as exc:  # the other scenarios, and the figures so far, still count
            self.problems.append(f"{label}: {type(exc).__name__}: {str(exc)[:500]}")
        else:
            print(_line(run), flush=True)
            expected = self.opts.logs * run.requests
            if run.statuses != {"completed": run.requests} or run.matches != expected:
                self.problems.append(
                    f"{label}: statuses {run.statuses}, {run.matches} matches of {expected}"
                )
            return run
        print(f"  {label} failed: {self.problems[-1]}", flush=True)
        return None


async def run(opts: argparse.Namespace, server_url: str, db_kind: str) -> dict[str, Any]:
    pg = await PostgresCpu.find(server_url)
    version = await server_version(server_url)
    print(f"PostgreSQL {version} ({db_kind}); its CPU: {pg.how}", flush=True)
    scenarios = Scenarios(opts)
    with chain.AnvilNode(*ANVIL_ARGS) as node:
        started = time.perf_counter()
        contracts, low, high = fill_spread(
            node.url, opts.logs, opts.blocks, contracts=opts.contracts, txs_per_block=2
        )
        chain.mine(node.url, FINALITY_PADDING)
        print(
            f"filled {opts.logs} logs in blocks {low}-{high} ({opts.logs // opts.blocks} a block,"
            f" {opts.contracts} contracts) in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        addresses = ["0x" + c.hex() for c in contracts]
        ranges = chunks(low, high, opts.span)
        print(f"{len(ranges)} eth_getLogs calls of {opts.span} blocks, {opts.in_flight} in flight")
        with counting_proxy(node.url) as proxy:
            async with aiohttp.ClientSession() as session:

                def logfill(**kwargs: Any) -> Awaitable[LogfillRun]:
                    return logfill_run(
                        server_url, session, proxy, pg, opts, addresses, low, high, **kwargs
                    )

                bare: list[BareRun] = []
                single: list[LogfillRun] = []
                # Warm up anvil (and the proxy) with one unmeasured bare run.
                await bare_run(server_url, session, proxy, pg, addresses, ranges, opts.in_flight)
                for i in range(opts.repeat):  # interleaved: the machine is shared
                    bare.append(
                        await bare_run(
                            server_url, session, proxy, pg, addresses, ranges, opts.in_flight
                        )
                    )
                    print(_line(bare[-1]), flush=True)
                    one = await scenarios.attempt(f"logfill, one request, run {i + 1}", logfill())
                    if one is None:
                        break
                    single.append(one)
                burst = spread = None
                if opts.twenty and len(single) == opts.repeat:
                    print("twenty requests, five workspaces, POSTed at once", flush=True)
                    burst = await scenarios.attempt(
                        "twenty requests at once", logfill(workspaces=5, per_workspace=4)
                    )
                    if opts.spread > 0:
                        print(f"twenty requests POSTed over {opts.spread:g} s", flush=True)
                        spread = await scenarios.attempt(
                            f"twenty requests over {opts.spread:g} s",
                            logfill(workspaces=5, per_workspace=4, spread=opts.spread),
                        )
                if opts.ponder:
                    ponder = await ponder_side(
                        server_url, session, proxy, pg, opts, addresses, low, high
                    )
                else:
                    ponder = {"status": "skipped", "reason": "--no-ponder"}
                print(f"  ponder: {ponder}", flush=True)
    return {
        "benchmark": "side_by_side",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "database": db_kind,
        "postgres_version": version,
        "postgres_cpu": pg.how,
        "settings": {
            "logs": opts.logs,
            "blocks": opts.blocks,
            "logs_per_block": opts.logs // opts.blocks,
            "contracts": opts.contracts,
            "span_blocks": opts.span,
            "calls": len(ranges),
            "in_flight": opts.in_flight,
            "tick_seconds": opts.tick,
            "window_budget_cu": opts.budget,
            "repeat": opts.repeat,
            "spread_seconds": opts.spread,
        },
        "goals": GOALS,
        "problems": scenarios.problems,
        **compose(opts, bare, single, burst, spread, ponder),
    }


def _range(s: dict[str, Any], fmt: str = "{:,.2f}") -> str:
    if s["median"] is None:
        return "n/a"
    return f"{fmt.format(s['median'])} ({fmt.format(s['min'])}-{fmt.format(s['max'])})"


def print_summary(result: dict[str, Any]) -> None:
    bare, logfill = result["bare"], result["logfill"]
    print()
    print(
        f"bare pipeline        {_range(bare['seconds'])} s, {_range(bare['logs_per_s'], '{:,.0f}')}"
        f" logs/s, PostgreSQL CPU {_range(bare['pg_cpu_seconds'])} s"
    )
    print(
        f"logfill, one request {_range(logfill['seconds'])} s, "
        f"{_range(logfill['matches_per_s'], '{:,.0f}')} matches/s, PostgreSQL CPU "
        f"{_range(logfill['pg_cpu_seconds'])} s, worker CPU "
        f"{_range(logfill['worker_cpu_seconds'])} s, {_range(logfill['cu'], '{:,.0f}')} CU"
    )
    print(
        f"bare/logfill speed   {_range(result['speed_bare_over_logfill'])}"
        f" (goal >= {GOALS['speed_bare_over_logfill']})"
    )
    print(
        f"PostgreSQL CPU per match, logfill / bare "
        f"{_range(result['pg_cpu_per_match_logfill_over_bare'])}"
        f" (goal <= {GOALS['pg_cpu_per_match_logfill_over_bare']})"
    )
    for name in ("twenty_burst", "twenty_spread"):
        run = result[name]
        if run:
            goal = f" (goal <= {GOALS['twenty_cu_vs_one']})" if name == "twenty_burst" else ""
            print(
                f"{name:<20} {run['seconds']:.1f} s, {run['matches_per_s']:,} matches/s, CU x one "
                f"request {run['cu_vs_one']}{goal}, worker peak RSS "
                f"{run['worker_peak_rss_mib'] or 0:.0f} MiB"
                f" (goal <= {GOALS['twenty_peak_rss_mib']}),"
                f" POSTs in {run['post_seconds']:.3f} s"
            )
    print(f"ponder               {result['ponder']}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--logs", type=int, default=200_000)
    parser.add_argument("--blocks", type=int, default=20_000)
    parser.add_argument("--contracts", type=int, default=5, help="Emitter contracts")
    parser.add_argument("--span", type=int, default=500, help="blocks per eth_getLogs call")
    parser.add_argument("--in-flight", type=int, default=4, help="eth_getLogs calls at once")
    parser.add_argument("--tick", type=float, default=1.0, help="logfill's tick_seconds")
    parser.add_argument(
        "--budget", type=int, default=12_000, help="logfill's window_budget_cu (its default)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="interleaved bare/logfill pairs")
    parser.add_argument(
        "--twenty",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="twenty requests from five workspaces, at once and spread",
    )
    parser.add_argument(
        "--spread", type=float, default=20.0, help="seconds the spread twenty POSTs take (0: none)"
    )
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds a logfill scenario may take"
    )
    parser.add_argument("--ponder", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--ponder-version", default="^0.16", help="npm version range")
    parser.add_argument(
        "--ponder-timeout", type=float, default=900, help="seconds until /ready, else skipped"
    )
    opts = parser.parse_args()
    if opts.repeat < 1:
        parser.error("--repeat must be at least 1")
    if opts.logs % (2 * opts.blocks):
        parser.error("--logs must fill --blocks evenly, two transactions a block")
    with server_database() as (server_url, db_kind):
        result = asyncio.run(run(opts, server_url, db_kind))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "side_by_side.json").write_text(json.dumps(result, indent=2) + "\n")
    print_summary(result)
    print(f"written: {RESULTS / 'side_by_side.json'}")
    if result["problems"]:
        print("problems:\n  " + "\n  ".join(result["problems"]))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
