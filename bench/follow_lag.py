"""A following backfill request on the demo chain's settings: its CU an hour and its lag.

Real processes: anvil mining a block every 2 s (`--block-time 2`) whether or not
there are transactions, with one Emitter contract and a thread sending one
Transfer every TRANSFER_SECONDS; `logfill run` (API and worker in one process,
demo.service.Service) on a fresh, migrated database of the server of
LOGFILL_DATABASE_URL (else an embedded PostgreSQL), configured like the demo's
chain (demo.service.chain_config: tick 1 s, window budget 250 CU, 0
confirmations; verification and the reorg check at their defaults, so their
calls are in the CU), reaching anvil through the counting proxy (bench.cu_proxy)
to tell the calls apart. A workspace from `logfill admin workspace create`, a
subscription to the Emitter's logs and POST /v1/backfill (Idempotency-Key)
`{"from_block": <the block after the deploy>, "to_block": "follow"}`.

Once the request is `following`: the same body as a dry run, for its
`following_cu_per_hour` (it needs the chain's seconds per block, which the
windows learn), then --seconds of measurement:

- CU an hour: the windows table's sum(cu_spent) over the windows started in the
  measured period, scaled to an hour, beside the dry run's figure; also the
  request's own cu_spent over the period and the proxy's calls by method;
- lag, sampled once a second: GET /v1/backfill/{id}'s `lag_blocks` and
  `lag_seconds` (behind the safe head the worker last read), and the blocks the
  request is behind anvil's head at that moment (head - cursor + 1);
- stored after mined, for every Transfer mined in the period: its match's
  `created_at` in the matches table (now() of the transaction that stored it, a
  few ms before its commit) minus the moment this script first saw its receipt
  (polled every RECEIPT_POLL_SECONDS).

Then the request is cancelled (POST /v1/backfill/{id}/cancel) and its stored
matches are compared with eth_getLogs over the blocks it scanned (from_block to
the last block scanned, read from the request's row): `exact` when they are the
same logs (block, log index, block hash, transaction hash), none missing, none
extra, none twice, and the blocks scanned have no gap. Every process (anvil, the
proxy, logfill) is stopped on the way out, on error too.
Results: bench/results/follow_lag.json.

Run: .venv/bin/python -m bench.follow_lag [--seconds 120]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import asyncpg
import httpx
import orjson

from bench.backfill_e2e import server_database
from bench.side_by_side import counting_proxy, logfill_cli, machine, server_version
from bench.webhooks import fresh_database
from demo.service import Service, chain_config, service_env
from tests.support import anvil as chain

RESULTS = Path(__file__).parent / "results"
CHAIN_ID = chain.CHAIN_ID
BLOCK_SECONDS = 2
TRANSFER_SECONDS = 3.0
RECEIPT_POLL_SECONDS = 0.01
# demo.run's default history (2,000 blocks, the last one included): what the demo's
# chain_config sizes its eth_getLogs span from.
DEMO_BLOCKS = 2001
CATCH_UP_SECONDS = 120.0
STORED_WAIT_SECONDS = 30.0


# --- the chain -------------------------------------------------------------------------


@dataclass(frozen=True)
class Transfer:
    block_number: int
    log_index: int
    mined_at: float  # epoch seconds: when its receipt was first seen


def send_transfer(url: str, emitter: str, value: int, client: httpx.Client) -> Transfer:
    """One emitTransfer; returns once its receipt is there (polled every 10 ms)."""
    data = chain.transfer_calldata(chain.DEV_ACCOUNTS[0], chain.DEV_ACCOUNTS[1], value)
    tx_hash = chain.send_tx(url, emitter, data, client=client)
    deadline = time.monotonic() + 10 * BLOCK_SECONDS
    while True:
        receipt = chain.rpc(url, "eth_getTransactionReceipt", [tx_hash], client=client)
        if receipt is not None:
            mined_at = time.time()
            log = receipt["logs"][0]
            return Transfer(int(log["blockNumber"], 16), int(log["logIndex"], 16), mined_at)
        if time.monotonic() > deadline:
            raise TimeoutError(f"transfer {tx_hash} not mined")
        time.sleep(RECEIPT_POLL_SECONDS)


class TransferSender:
    """A thread sending a Transfer every `every` seconds while the `with` block lasts."""

    def __init__(self, url: str, emitter: str, every: float) -> None:
        self.url, self.emitter, self.every = url, emitter, every
        self.transfers: list[Transfer] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send, name="transfers", daemon=True)

    def __enter__(self) -> TransferSender:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _send(self) -> None:
        next_at, value = time.monotonic(), 1
        with chain.http_client() as client:
            while not self._stop.is_set():
                try:
                    self.transfers.append(send_transfer(self.url, self.emitter, value, client))
                except Exception as exc:  # recorded: the run reports it
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                value += 1
                next_at += self.every
                self._stop.wait(max(0.0, next_at - time.monotonic()))


async def chain_head(session: aiohttp.ClientSession, url: str) -> int:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
    async with session.post(url, json=body) as answer:
        return int((await answer.json())["result"], 16)


# --- logfill ---------------------------------------------------------------------------


@dataclass
class Logfill:
    """`logfill run` and what the bench talks to it with."""

    service: Service
    env: dict[str, str]
    folder: Path
    database_url: str
    key: str = ""

    @property
    def base(self) -> str:
        return self.service.url

    def check_alive(self) -> None:
        proc = self.service.proc
        if proc is None or proc.poll() is not None:
            raise RuntimeError(f"logfill run exited:\n{self.service.log_tail()}")


async def api(
    session: aiohttp.ClientSession,
    logfill: Logfill,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """One API call with the workspace's key; its JSON answer, or an error."""
    async with session.request(
        method,
        f"{logfill.base}{path}",
        data=None if body is None else orjson.dumps(body),
        headers={
            "Authorization": f"Bearer {logfill.key}",
            "Content-Type": "application/json",
            **(headers or {}),
        },
    ) as answer:
        text = await answer.text()
        if answer.status >= 300:
            raise RuntimeError(f"{method} {path}: {answer.status} {text[:500]}")
        return orjson.loads(text)


async def wait_for(
    logfill: Logfill, what: str, ready: Any, timeout: float, every: float = 0.2
) -> Any:
    """`await ready()` until it gives something truthy; that."""
    deadline = time.monotonic() + timeout
    while not (value := await ready()):
        logfill.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        await asyncio.sleep(every)
    return value


async def start_request(
    session: aiohttp.ClientSession, logfill: Logfill, conn: asyncpg.Connection, body: Any
) -> dict[str, Any]:
    """The follow request, POSTed once the worker has seen its first block."""

    async def head_known() -> bool:
        head = await conn.fetchval("SELECT head FROM chain_state WHERE chain_id = $1", CHAIN_ID)
        return head is not None and head >= body["from_block"]

    await wait_for(logfill, "the worker reading the head", head_known, 60)
    key = {"Idempotency-Key": f"bench-follow-{uuid.uuid4()}"}
    created: dict[str, Any] = await api(session, logfill, "POST", "/v1/backfill", body, key)
    return created


async def dry_run(
    session: aiohttp.ClientSession, logfill: Logfill, body: dict[str, Any]
) -> dict[str, Any]:
    """The same request as a dry run, once the chain's pace is known (a figure an hour)."""

    async def estimate() -> dict[str, Any] | None:
        answer: dict[str, Any] = await api(
            session, logfill, "POST", "/v1/backfill", {**body, "dry_run": True}
        )
        return answer if answer.get("following_cu_per_hour") is not None else None

    found: dict[str, Any] = await wait_for(logfill, "the dry run's CU an hour", estimate, 60, 1)
    return found


# --- measuring -------------------------------------------------------------------------


@dataclass(frozen=True)
class LagSample:
    at: float  # seconds into the measured period
    status: str
    cursor: int | None
    lag_blocks: int | None
    lag_seconds: float | None
    chain_head: int

    @property
    def behind_head(self) -> int | None:
        return None if self.cursor is None else max(0, self.chain_head - self.cursor + 1)


@dataclass
class Period:
    """What the measured period saw."""

    started_at: datetime
    ended_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    samples: list[LagSample] = field(default_factory=list)
    request_before: dict[str, Any] = field(default_factory=dict)
    request_after: dict[str, Any] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)  # through the proxy, by method
    windows: dict[str, int] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return (self.ended_at - self.started_at).total_seconds()

    def per_hour(self, value: float) -> int:
        return round(value * 3600 / self.seconds)


async def proxy_calls(session: aiohttp.ClientSession, proxy: str) -> dict[str, int]:
    async with session.get(f"{proxy}/_counts") as answer:
        calls: dict[str, int] = (await answer.json())["calls"]
    return calls


async def sample_lag(
    session: aiohttp.ClientSession, logfill: Logfill, request_id: str, rpc_url: str, seconds: int
) -> list[LagSample]:
    """The request's lag and anvil's head, once a second for `seconds` seconds."""
    samples, started = [], time.monotonic()
    for k in range(seconds):
        await asyncio.sleep(max(0.0, started + k - time.monotonic()))
        logfill.check_alive()
        at = time.monotonic() - started
        backfill, head = await asyncio.gather(
            api(session, logfill, "GET", f"/v1/backfill/{request_id}"),
            chain_head(session, rpc_url),
        )
        samples.append(
            LagSample(
                round(at, 3),
                backfill["status"],
                backfill["cursor"],
                backfill["lag_blocks"],
                backfill["lag_seconds"],
                head,
            )
        )
    return samples


async def measure(
    session: aiohttp.ClientSession,
    logfill: Logfill,
    conn: asyncpg.Connection,
    proxy: str,
    rpc_url: str,
    request_id: str,
    seconds: int,
) -> Period:
    path = f"/v1/backfill/{request_id}"
    period = Period(await conn.fetchval("SELECT now()"))
    period.request_before = await api(session, logfill, "GET", path)
    calls_before = await proxy_calls(session, proxy)
    period.samples = await sample_lag(session, logfill, request_id, rpc_url, seconds)
    period.ended_at = await conn.fetchval("SELECT now()")
    period.request_after = await api(session, logfill, "GET", path)
    calls_after = await proxy_calls(session, proxy)
    period.calls = {
        method: n - calls_before.get(method, 0)
        for method, n in calls_after.items()
        if n - calls_before.get(method, 0)
    }
    row = await conn.fetchrow(
        "SELECT count(*)::bigint AS windows, coalesce(sum(cu_spent), 0)::bigint AS cu_spent,"
        " coalesce(sum(calls), 0)::bigint AS calls, coalesce(sum(errors), 0)::bigint AS errors"
        " FROM windows WHERE chain_id = $1 AND started_at >= $2 AND started_at < $3",
        CHAIN_ID,
        period.started_at,
        period.ended_at,
    )
    assert row is not None
    period.windows = dict(row)
    return period


async def stored_after_mined(
    logfill: Logfill,
    conn: asyncpg.Connection,
    subscription_id: uuid.UUID,
    transfers: list[Transfer],
) -> tuple[list[float], list[Transfer]]:
    """Seconds from mined to stored for each transfer (waiting for the last ones to be
    stored); those never stored."""

    async def stored() -> dict[tuple[int, int], float]:
        rows = await conn.fetch(
            "SELECT block_number, log_index, extract(epoch FROM created_at)::float8 AS at"
            " FROM matches WHERE subscription_id = $1",
            subscription_id,
        )
        return {(r["block_number"], r["log_index"]): r["at"] for r in rows}

    async def all_stored() -> dict[tuple[int, int], float] | None:
        found = await stored()
        return found if all((t.block_number, t.log_index) in found for t in transfers) else None

    try:
        found = await wait_for(logfill, "the last matches", all_stored, STORED_WAIT_SECONDS)
    except TimeoutError:
        found = await stored()
    latencies = [
        found[(t.block_number, t.log_index)] - t.mined_at
        for t in transfers
        if (t.block_number, t.log_index) in found
    ]
    missing = [t for t in transfers if (t.block_number, t.log_index) not in found]
    return latencies, missing


async def check_exact(
    conn: asyncpg.Connection, rpc_url: str, emitter: str, request_id: str, subscription_id: Any
) -> dict[str, Any]:
    """The cancelled request's stored matches against eth_getLogs over the blocks it
    scanned: [from_block, to_block] less what it still had to scan."""
    ranges = [
        (r["low"], r["high"] - 1)
        for r in await conn.fetch(
            "SELECT lower(r) AS low, upper(r) AS high FROM backfill_requests,"
            " unnest(int8multirange(int8range(from_block, to_block, '[]'))"
            "        - coalesce(remaining, '{}'::int8multirange)) AS r"
            " WHERE id = $1 ORDER BY 1",
            uuid.UUID(request_id),
        )
    ]
    on_chain: list[tuple[int, int, str, str]] = []
    for low, high in ranges:
        logs = await asyncio.to_thread(chain.get_logs, rpc_url, low, high, address=emitter)
        on_chain += [
            (
                int(x["blockNumber"], 16),
                int(x["logIndex"], 16),
                x["blockHash"],
                x["transactionHash"],
            )
            for x in logs
        ]
    rows = await conn.fetch(
        "SELECT m.block_number, m.log_index, l.block_hash, l.transaction_hash FROM matches m"
        " LEFT JOIN logs l ON l.chain_id = $2 AND l.block_number = m.block_number"
        "                 AND l.log_index = m.log_index"
        " WHERE m.subscription_id = $1",
        subscription_id,
        CHAIN_ID,
    )
    stored = [
        (
            r["block_number"],
            r["log_index"],
            "0x" + bytes(r["block_hash"] or b"").hex(),
            "0x" + bytes(r["transaction_hash"] or b"").hex(),
        )
        for r in rows
    ]
    chain_count, stored_count = Counter(on_chain), Counter(stored)
    missing, extra = chain_count - stored_count, stored_count - chain_count
    twice = sum(n - 1 for n in stored_count.values() if n > 1)
    gap = len(ranges) != 1
    return {
        "exact": not (missing or extra or twice or gap),
        "scanned_ranges": ranges,
        "last_scanned_block": ranges[-1][1] if ranges else None,
        "logs_on_chain": len(on_chain),
        "matches_stored": len(stored),
        "missing": len(missing),
        "extra": len(extra),
        "stored_twice": twice,
        "gap": gap,
    }


# --- the whole -------------------------------------------------------------------------


def spread(values: list[float], digits: int = 3) -> dict[str, Any]:
    """Median, 95th percentile and max (None when there are no values)."""
    if not values:
        return {"n": 0, "median": None, "p95": None, "max": None}
    p95 = statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else None
    return {
        "n": len(values),
        "median": round(statistics.median(values), digits),
        "p95": round(p95 if p95 is not None else values[0], digits),
        "max": round(max(values), digits),
    }


def compose(
    period: Period,
    estimate: dict[str, Any],
    latencies: list[float],
    missing: list[Transfer],
    exact: dict[str, Any],
) -> dict[str, Any]:
    samples = period.samples
    windows_per_hour = period.per_hour(period.windows["cu_spent"])
    request_cu = period.request_after["cu_spent"] - period.request_before["cu_spent"]
    dry = estimate["following_cu_per_hour"]
    return {
        "measured_seconds": round(period.seconds, 1),
        "cu": {
            "windows_cu_spent": period.windows["cu_spent"],
            "windows": period.windows["windows"],
            "window_calls": period.windows["calls"],
            "window_errors": period.windows["errors"],
            "windows_cu_per_hour": windows_per_hour,
            "request_cu_per_hour": period.per_hour(request_cu),
            "dry_run_following_cu_per_hour": dry,
            "windows_over_dry_run": round(windows_per_hour / dry, 3) if dry else None,
            "proxy_calls": period.calls,
            "proxy_calls_per_hour": {m: period.per_hour(n) for m, n in period.calls.items()},
        },
        "lag": {
            "samples": len(samples),
            "statuses": dict(Counter(s.status for s in samples)),
            "lag_blocks": spread([s.lag_blocks for s in samples if s.lag_blocks is not None], 1),
            "lag_seconds": spread([s.lag_seconds for s in samples if s.lag_seconds is not None], 3),
            "behind_chain_head_blocks": spread(
                [b for s in samples if (b := s.behind_head) is not None], 1
            ),
        },
        "stored_after_mined_seconds": {
            **spread(latencies),
            "not_stored": len(missing),
        },
        "check": exact,
        "dry_run": estimate,
    }


async def follow(opts: argparse.Namespace, server_url: str) -> dict[str, Any]:
    with chain.AnvilNode("--block-time", str(BLOCK_SECONDS)) as node:
        emitter = chain.deploy_emitter(node.url)
        from_block = chain.block_number(node.url) + 1
        print(f"anvil: a block every {BLOCK_SECONDS} s; Emitter {emitter}; from {from_block}")
        with (
            counting_proxy(node.url) as proxy,
            TransferSender(node.url, emitter, TRANSFER_SECONDS) as sender,
        ):
            async with fresh_database(server_url) as database_url:
                chains = chain_config(proxy, DEMO_BLOCKS)
                result = await with_logfill(
                    opts, database_url, chains, node.url, proxy, emitter, from_block, sender
                )
        result["transfers_sent"] = len(sender.transfers)
        result["transfer_errors"] = sender.errors
        result["settings"] = {
            "block_seconds": BLOCK_SECONDS,
            "transfer_every_seconds": TRANSFER_SECONDS,
            "receipt_poll_seconds": RECEIPT_POLL_SECONDS,
            "chains": chains,  # rpc_url: the counting proxy in front of anvil
            "from_block": from_block,
            "seconds": opts.seconds,
        }
    return result


async def with_logfill(
    opts: argparse.Namespace,
    database_url: str,
    chains: dict[str, object],
    rpc_url: str,
    proxy: str,
    emitter: str,
    from_block: int,
    sender: TransferSender,
) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="logfill-bench-follow-"))
    try:
        with Service(database_url, folder, chains) as service:
            env = service_env(database_url, folder, service.port, chains)
            logfill = Logfill(service, env, folder, database_url)
            conn = await asyncpg.connect(database_url)
            try:
                async with aiohttp.ClientSession() as session:
                    return await scenario(
                        opts, logfill, session, conn, rpc_url, proxy, emitter, from_block, sender
                    )
            finally:
                await conn.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def scenario(
    opts: argparse.Namespace,
    logfill: Logfill,
    session: aiohttp.ClientSession,
    conn: asyncpg.Connection,
    rpc_url: str,
    proxy: str,
    emitter: str,
    from_block: int,
    sender: TransferSender,
) -> dict[str, Any]:
    workspace = await logfill_cli(
        logfill.env, logfill.folder, "admin", "workspace", "create",
        "--name", "bench-follow", "--plan", "enterprise", "--credits", "1000000",
    )  # fmt: skip
    logfill.key = workspace["api_key"]
    subscription = await api(
        session, logfill, "POST", "/v1/subscriptions",
        {"chain_id": CHAIN_ID, "name": "bench-follow", "addresses": [emitter]},
    )  # fmt: skip
    body = {"subscription_id": subscription["id"], "from_block": from_block, "to_block": "follow"}
    posted = time.monotonic()
    request = await start_request(session, logfill, conn, body)
    request_id = str(request["id"])

    async def following() -> bool:
        answer = await api(session, logfill, "GET", f"/v1/backfill/{request_id}")
        if answer["status"] not in ("queued", "processing", "following"):
            raise RuntimeError(f"request {request_id} is {answer['status']}: {answer}")
        return bool(answer["status"] == "following")

    await wait_for(logfill, "the request following", following, CATCH_UP_SECONDS)
    caught_up = time.monotonic() - posted
    print(f"request {request_id} following after {caught_up:.1f} s", flush=True)
    estimate = await dry_run(session, logfill, body)
    print(f"dry run: following_cu_per_hour {estimate['following_cu_per_hour']}", flush=True)
    print(f"measuring for {opts.seconds} s", flush=True)
    period = await measure(session, logfill, conn, proxy, rpc_url, request_id, opts.seconds)
    started, ended = period.started_at.timestamp(), period.ended_at.timestamp()
    in_period = [t for t in list(sender.transfers) if started <= t.mined_at < ended]
    subscription_id = uuid.UUID(subscription["id"])
    latencies, missing = await stored_after_mined(logfill, conn, subscription_id, in_period)
    cancelled = await api(session, logfill, "POST", f"/v1/backfill/{request_id}/cancel")
    exact = await check_exact(conn, rpc_url, emitter, request_id, subscription_id)
    block_seconds = await conn.fetchval(
        "SELECT block_seconds FROM chain_state WHERE chain_id = $1", CHAIN_ID
    )
    return {
        "caught_up_seconds": round(caught_up, 1),
        "learned_block_seconds": block_seconds,
        "cancelled_status": cancelled["status"],
        **compose(period, estimate, latencies, missing, exact),
        "lag_samples": [asdict(s) | {"behind_head": s.behind_head} for s in period.samples],
    }


async def run(opts: argparse.Namespace, server_url: str, db_kind: str) -> dict[str, Any]:
    version = await server_version(server_url)
    print(f"PostgreSQL {version} ({db_kind})", flush=True)
    result = await follow(opts, server_url)
    return {
        "benchmark": "follow_lag",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "database": db_kind,
        "postgres_version": version,
        **result,
    }


def print_summary(result: dict[str, Any]) -> None:
    cu, lag, stored = result["cu"], result["lag"], result["stored_after_mined_seconds"]

    def line(s: dict[str, Any], unit: str) -> str:
        return f"median {s['median']} {unit}, p95 {s['p95']} {unit}, max {s['max']} {unit}"

    print()
    print(
        f"measured {result['measured_seconds']} s of following ({cu['windows']} windows); "
        f"caught up in {result['caught_up_seconds']} s; the chain's seconds a block as learned: "
        f"{result['learned_block_seconds']}"
    )
    print(
        f"CU an hour: windows {cu['windows_cu_per_hour']:,} (the request's own "
        f"{cu['request_cu_per_hour']:,}); dry run {cu['dry_run_following_cu_per_hour']:,}; "
        f"windows / dry run {cu['windows_over_dry_run']}"
    )
    print(f"calls an hour through the proxy: {cu['proxy_calls_per_hour']}")
    print(f"lag_blocks        {line(lag['lag_blocks'], 'blocks')}  statuses {lag['statuses']}")
    print(f"lag_seconds       {line(lag['lag_seconds'], 's')}")
    print(f"behind anvil head {line(lag['behind_chain_head_blocks'], 'blocks')}")
    print(
        f"stored after mined {line(stored, 's')} over {stored['n']} transfers"
        f" ({stored['not_stored']} not stored)"
    )
    check = result["check"]
    print(
        f"exact: {str(check['exact']).lower()} ({check['matches_stored']} matches, "
        f"{check['logs_on_chain']} logs on chain over {check['scanned_ranges']}; missing "
        f"{check['missing']}, extra {check['extra']}, twice {check['stored_twice']})"
    )


def problems_of(result: dict[str, Any]) -> list[str]:
    problems = []
    if not result["check"]["exact"]:
        problems.append(f"stored matches differ from eth_getLogs: {result['check']}")
    if result["stored_after_mined_seconds"]["not_stored"]:
        problems.append("some transfers mined in the period were never stored")
    if result["lag"]["statuses"].keys() != {"following"}:
        problems.append(f"the request was not following throughout: {result['lag']['statuses']}")
    if result["transfer_errors"]:
        problems.append(f"transfers failed: {result['transfer_errors'][:3]}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=120, help="seconds measured (default 120)")
    opts = parser.parse_args()
    if opts.seconds < 10:
        parser.error("--seconds must be at least 10")
    chain.anvil_bin()  # a clear error, before anything starts, when anvil is missing
    with server_database() as (server_url, db_kind):
        result = asyncio.run(run(opts, server_url, db_kind))
    result["problems"] = problems_of(result)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "follow_lag.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print_summary(result)
    print(f"written: {RESULTS / 'follow_lag.json'}")
    if result["problems"]:
        print("problems:\n  " + "\n  ".join(result["problems"]))
        sys.exit(1)


if __name__ == "__main__":
    main()
