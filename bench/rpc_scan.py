"""RPC scan benchmark: logfill's client against a bare aiohttp + orjson loop.

Starts a local anvil, fills it with LOGS logs from 5 Emitter contracts, then
fetches the same block ranges with the same number of calls in flight three ways:

- bare:   aiohttp + orjson eth_getLogs, nothing else (the limit);
- client: logfill's RpcClient + LogScanner (budget, retries, typed logs) and the
          Matcher for 50 subscriptions (what a window does before committing);
- web3:   web3.py's AsyncWeb3.eth.get_logs on the same ranges (the alternative).

Bare and client run --repeat times, interleaved; the best of each is reported
(and every run's ratio), since other work on a 2-core machine only slows a run.

Run: .venv/bin/python -m bench.rpc_scan [--logs 200000] [--span 20] [--in-flight 4]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from indexer.chain.budget import WindowBudget
from indexer.chain.client import RpcClient
from indexer.chain.filters import LogFilter, Matcher, merge_filters
from indexer.chain.scanner import LogScanner
from indexer.chain.span import AdaptiveRange
from indexer.settings import ChainSettings
from tests.support import anvil as chain

RESULTS = Path(__file__).parent / "results"
CONTRACTS = 5
SUBSCRIPTIONS = 50


def build_subscriptions(
    contracts: list[bytes], topic0s: list[bytes], topic1s: list[bytes]
) -> dict[str, LogFilter]:
    """50 filters: each contract x each event kind, the rest narrowed by a topic1 OR-list."""
    subscriptions: dict[str, LogFilter] = {}
    for i, (contract, topic0) in enumerate(itertools.product(contracts, topic0s)):
        subscriptions[f"s{i}"] = LogFilter.build([contract], [[topic0]])
    i = len(subscriptions)
    while len(subscriptions) < SUBSCRIPTIONS:
        contract = contracts[i % len(contracts)]
        topic1 = [topic1s[i % len(topic1s)], topic1s[(i + 1) % len(topic1s)]]
        subscriptions[f"s{i}"] = LogFilter.build([contract], [[topic0s[i % len(topic0s)]], topic1])
        i += 1
    return subscriptions


def chunks(low: int, high: int, span: int) -> list[tuple[int, int]]:
    return [(start, min(high, start + span - 1)) for start in range(low, high + 1, span)]


async def bare_loop(url: str, params: dict[str, Any], ranges: list[tuple[int, int]], n: int) -> int:
    semaphore = asyncio.Semaphore(n)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=n)) as session:

        async def fetch(low: int, high: int) -> int:
            body = orjson.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "eth_getLogs",
                    "params": [{**params, "fromBlock": hex(low), "toBlock": hex(high)}],
                }
            )
            async with (
                semaphore,
                session.post(
                    url, data=body, headers={"Content-Type": "application/json"}
                ) as response,
            ):
                return len(orjson.loads(await response.read())["result"])

        counts = await asyncio.gather(*(fetch(low, high) for low, high in ranges))
    return sum(counts)


async def client_scan(
    chain_settings: ChainSettings,
    calls: list[LogFilter],
    matcher: Matcher[str],
    low: int,
    high: int,
) -> tuple[int, int, int]:
    budget = WindowBudget(10**9)
    ranges = AdaptiveRange(max_span=chain_settings.max_block_range)
    logs = matches = 0
    async with RpcClient.open(chain_settings) as client:
        async for chunk in LogScanner(client, ranges).scan(calls, low, high, budget):
            logs += len(chunk.logs)
            for entry in chunk.logs:
                matches += len(matcher.match(entry))
    return logs, matches, budget.spent_cu


async def web3_loop(url: str, params: dict[str, Any], ranges: list[tuple[int, int]], n: int) -> int:
    from web3 import AsyncHTTPProvider, AsyncWeb3

    w3 = AsyncWeb3(AsyncHTTPProvider(url))
    semaphore = asyncio.Semaphore(n)
    params = {**params, "address": [AsyncWeb3.to_checksum_address(a) for a in params["address"]]}

    async def fetch(low: int, high: int) -> int:
        async with semaphore:
            query: Any = {**params, "fromBlock": low, "toBlock": high}
            return len(await w3.eth.get_logs(query))

    try:
        return sum(await asyncio.gather(*(fetch(low, high) for low, high in ranges)))
    finally:
        await w3.provider.disconnect()


async def timed(label: str, work: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = await work
    elapsed = time.perf_counter() - started
    print(f"  {label:<8} {elapsed:7.2f} s", flush=True)
    return result, elapsed


def fill(url: str, total: int) -> tuple[list[bytes], int, int]:
    addresses = [chain.deploy_emitter(url) for _ in range(CONTRACTS)]
    per_contract = total // CONTRACTS
    first = last = None
    for k, address in enumerate(addresses):
        low, high = chain.fill_logs(
            url, address, per_contract, per_tx=500, seed=k * 10_000, txs_per_block=1
        )
        first = low if first is None else min(first, low)
        last = high if last is None else max(last, high)
    assert first is not None and last is not None
    return [bytes.fromhex(a[2:]) for a in addresses], first, last


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with chain.AnvilNode("--gas-limit", "100000000") as node:
        started = time.perf_counter()
        contracts, low, high = fill(node.url, args.logs)
        print(
            f"filled {args.logs} logs in blocks {low}-{high} in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )
        sample = chain.get_logs(node.url, low, low)
        topic0s = sorted({bytes.fromhex(raw["topics"][0][2:]) for raw in sample if raw["topics"]})
        topic1s = sorted(
            {bytes.fromhex(r["topics"][1][2:]) for r in sample if len(r["topics"]) > 1}
        )
        subscriptions = build_subscriptions(contracts, topic0s, topic1s)
        calls = merge_filters(subscriptions.values())
        params = calls[0].to_rpc(low, high)
        del params["fromBlock"], params["toBlock"]
        ranges = chunks(low, high, args.span)
        settings = ChainSettings.model_validate(
            {
                "rpc_url": node.url,
                "max_block_range": args.span,
                "max_calls_in_flight": args.in_flight,
                "request_timeout_seconds": 120,
            }
        )
        print(f"{len(ranges)} eth_getLogs calls of {args.span} blocks, {args.in_flight} in flight")

        await bare_loop(node.url, params, ranges[:2], args.in_flight)  # warm up anvil
        matcher = Matcher(subscriptions)
        bare_runs, client_runs = [], []
        for _ in range(args.repeat):  # interleaved, best of each: the machine is shared
            bare_logs, bare_s = await timed(
                "bare", bare_loop(node.url, params, ranges, args.in_flight)
            )
            (client_logs, matches, cu), client_s = await timed(
                "client", client_scan(settings, calls, matcher, low, high)
            )
            bare_runs.append(bare_s)
            client_runs.append(client_s)
        bare_s, client_s = min(bare_runs), min(client_runs)
        web3_logs, web3_s = (None, None)
        if not args.skip_web3:
            web3_logs, web3_s = await timed(
                "web3", web3_loop(node.url, params, ranges, args.in_flight)
            )
    assert bare_logs == client_logs == args.logs, (bare_logs, client_logs)
    result = {
        "benchmark": "rpc_scan",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {platform.system()}, Python {platform.python_version()}",
        "logs": args.logs,
        "subscriptions": len(subscriptions),
        "calls": len(ranges),
        "span_blocks": args.span,
        "in_flight": args.in_flight,
        "repeat": args.repeat,
        "bare_logs_per_s": round(bare_logs / bare_s),
        "client_logs_per_s": round(client_logs / client_s),
        "client_matches": matches,
        "client_cu": cu,
        "client_vs_bare": round(bare_s / client_s, 3),
        "client_vs_bare_runs": [
            round(b / c, 3) for b, c in zip(bare_runs, client_runs, strict=True)
        ],
        "web3_logs_per_s": round(web3_logs / web3_s) if web3_logs and web3_s else None,
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", type=int, default=200_000)
    parser.add_argument("--span", type=int, default=20, help="blocks per eth_getLogs call")
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="runs of bare and client (best kept)")
    parser.add_argument("--skip-web3", action="store_true")
    result = asyncio.run(run(parser.parse_args()))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "rpc_scan.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"client / bare: {result['client_vs_bare']:.0%} (goal: at least 80%)")


if __name__ == "__main__":
    main()
