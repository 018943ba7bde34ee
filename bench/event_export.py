"""Event export: `logfill events list` streaming every stored event of a subscription.

A fresh database `logfill_bench_export_<random>` on --server (dropped afterwards)
gets one workspace and, through the API, one subscription per size with the
ERC-20 Transfer event. Logs and matches are stored with SQL (generate_series):
real Transfer topics and a 32-byte value, so every event is decoded on the way
out, 4 logs a block. The subscriptions share the logs: the one of size N matches
the first N.

Each (size, format) is one export by the real CLI (`logfill events list
--subscription ID --format F`) as a subprocess, its stdout read through a pipe
and counted, against a `logfill api` started for that run alone (so its memory
figures do not carry what earlier runs left in the allocator). A 4-event export
of the same format runs first: it warms the API (lazy imports, a pooled
connection) and gives the CLI's baseline. Measured:

- wall seconds from the CLI's start to its exit, events/s, bytes written;
- the CLI's peak RSS (`ru_maxrss` from `os.wait4`), and its growth over the
  4-event export's;
- the API's RSS before the export, its peak during it (psutil every 50 ms; and
  the kernel's high-water mark VmHWM, reset before the export, as a check), and
  the growth (peak minus before).

Every event must arrive decoded, once: the count of lines and of decoded
Transfers must be N, or the run fails and the benchmark exits non-zero.

Flat memory, for the API and for the CLI and each format: the growth at the
largest size is at most FLAT_RATIO times the growth at the smallest size plus
FLAT_SLACK_MIB. Results: bench/results/event_export.json. The API, the CLI and
this reader share the machine's cores.

Run: .venv/bin/python -m bench.event_export [--server URL] [--sizes 20000,200000]
                                            [--formats ndjson,csv,json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from indexer.accounts import create_workspace
from indexer.db.admin import create_database, drop_database
from indexer.db.pool import connect
from indexer.localhost import free_port

RESULTS = Path(__file__).parent / "results"
LOGFILL = str(Path(sys.executable).parent / "logfill")
MIB = 2**20
TRANSFER = "Transfer(address indexed from, address indexed to, uint256 value)"
TOPIC0 = bytes.fromhex("ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef")
TOKEN = bytes.fromhex("6b175474e89094c44da98b954eedeac495271d0f")  # DAI
FIRST_BLOCK = 18_000_000
LOGS_PER_BLOCK = 4
SAMPLE_SECONDS = 0.05
FLAT_RATIO = 1.5
FLAT_SLACK_MIB = 20.0
FLAT_RULE = (
    f"RSS growth during the export at the largest size <= {FLAT_RATIO}x the growth at the "
    f"smallest size + {FLAT_SLACK_MIB:.0f} MiB (API: peak minus RSS before the export; "
    "CLI: peak minus the peak of a 4-event export)"
)

INSERT_LOGS = """
INSERT INTO logs (chain_id, block_number, block_hash, log_index, transaction_hash,
                  transaction_index, address, topics, data)
SELECT 1, $1 + g / $2, sha256(convert_to('block ' || g / $2, 'UTF8')), g % $2,
       sha256(convert_to('tx ' || g, 'UTF8')), g % $2, $3,
       ARRAY[$4, '\\x000000000000000000000000'::bytea
                 || substring(sha256(convert_to('from ' || g, 'UTF8')) FROM 1 FOR 20),
             '\\x000000000000000000000000'::bytea
                 || substring(sha256(convert_to('to ' || g, 'UTF8')) FROM 1 FOR 20)],
       decode(lpad(to_hex(g::bigint * 1000000007 + 1), 64, '0'), 'hex')
FROM generate_series(0, $5 - 1) AS g
"""
INSERT_MATCHES = """
INSERT INTO matches (subscription_id, block_number, log_index)
SELECT $1, block_number, log_index FROM logs ORDER BY block_number, log_index LIMIT $2
"""


@dataclass(frozen=True)
class Shape:
    """What a format's output looks like: newlines beyond one per event, the bytes
    that occur once per decoded Transfer, how it starts and ends."""

    extra_lines: int
    decoded: bytes
    head: bytes
    tail: bytes


SHAPES = {
    "ndjson": Shape(0, b'"decoded":{"event":"Transfer"', b'{"id":"', b'Z"}\n'),
    "csv": Shape(1, b",Transfer,", b"id,block_number,", b"Z\r\n"),
    "json": Shape(2, b'"decoded":{"event":"Transfer"', b'[\n{"id":"', b'Z"}\n]\n'),
}


class StreamCount:
    """Bytes, newlines and a pattern counted over chunks cut anywhere."""

    def __init__(self, pattern: bytes) -> None:
        self.pattern = pattern
        self.bytes = self.lines = self.matches = 0
        self.head = self.tail = self._carry = b""

    def feed(self, chunk: bytes) -> None:
        self.bytes += len(chunk)
        self.lines += chunk.count(b"\n")
        window = self._carry + chunk  # a match cut in two is whole here, and counted once
        self.matches += window.count(self.pattern)
        self._carry = window[-(len(self.pattern) - 1) :]
        if len(self.head) < 64:
            self.head = (self.head + chunk)[:64]
        self.tail = (self.tail + chunk[-64:])[-64:]


@dataclass
class Export:
    count: StreamCount
    seconds: float
    first_byte_seconds: float | None
    peak_rss: int
    cpu_seconds: float
    exit_code: int


@dataclass
class Run:
    size: int
    format: str
    events: int
    lines: int
    bytes: int
    seconds: float
    first_byte_seconds: float | None
    events_per_second: float
    cli_cpu_seconds: float
    api_cpu_seconds: float
    cli_peak_rss_mib: float
    cli_baseline_rss_mib: float
    cli_growth_mib: float
    api_rss_before_mib: float
    api_peak_rss_mib: float
    api_growth_mib: float
    api_kernel_peak_mib: float | None
    problems: list[str] = field(default_factory=list)


def _mib(value: float) -> float:
    return round(value / MIB, 1)


# ----------------------------------------------------------------------------- processes


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGFILL_")}
    env.update(extra)
    return env


def _wait_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(400):
        if process.poll() is not None:
            raise RuntimeError("logfill api exited during start-up")
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.05)
    raise RuntimeError("logfill api did not become ready")


@contextmanager
def running_api(database_url: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`logfill api` on a free port (it migrates the database first), stopped on exit."""
    port = free_port()
    env = _env(
        LOGFILL_DATABASE_URL=database_url,
        LOGFILL_LOG_LEVEL="warning",
        LOGFILL_LOG_FORMAT="json",
        LOGFILL_CHAINS='{"1": {"rpc_url": "http://127.0.0.1:9"}}',
    )
    command = [LOGFILL, "api", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base, process)
        yield process, base
    finally:
        process.terminate()
        process.wait(timeout=20)


def export(
    base: str, api_key: str, subscription: str, fmt: str, *, to_block: int | None = None
) -> Export:
    """One `logfill events list` run, its stdout counted as it arrives, its peak RSS."""
    command = [LOGFILL, "events", "list", "--subscription", subscription, "--format", fmt]
    if to_block is not None:
        command += ["--to-block", str(to_block)]
    count = StreamCount(SHAPES[fmt].decoded)
    first_byte = None
    started = time.perf_counter()
    env = _env(LOGFILL_API_URL=base, LOGFILL_API_KEY=api_key)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=env)
    assert process.stdout is not None
    with process.stdout:
        fd = process.stdout.fileno()
        while chunk := os.read(fd, MIB):
            first_byte = first_byte or time.perf_counter() - started
            count.feed(chunk)
    _, status, usage = os.wait4(process.pid, 0)  # Popen.wait() would not give the rusage
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return Export(count, seconds, first_byte, usage.ru_maxrss * 1024, cpu, process.returncode)


class PeakRss(threading.Thread):
    """The largest RSS of a process seen by sampling it every SAMPLE_SECONDS."""

    def __init__(self, process: psutil.Process) -> None:
        super().__init__(daemon=True)
        self.process = process
        self.peak = process.memory_info().rss
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self._done.wait(SAMPLE_SECONDS)

    def finish(self) -> int:
        self._done.set()
        self.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
        return self.peak


def reset_kernel_peak(pid: int) -> bool:
    """Reset VmHWM (Linux: `echo 5 > /proc/PID/clear_refs`); False where it cannot."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def kernel_peak(pid: int) -> int | None:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


# ----------------------------------------------------------------------------- data


async def seed(database_url: str, base: str, sizes: list[int]) -> tuple[str, dict[int, str]]:
    """A workspace, the logs of the largest size, and a subscription per size with its
    matches (the first N logs); the API key and the subscription ids."""
    conn = await connect(database_url)
    try:
        created = await create_workspace(conn, name="bench", plan="enterprise", credits=0)
        started = time.perf_counter()
        await conn.execute(INSERT_LOGS, FIRST_BLOCK, LOGS_PER_BLOCK, TOKEN, TOPIC0, max(sizes))
        subscriptions: dict[int, str] = {}
        headers = {"Authorization": f"Bearer {created.api_key}"}
        async with aiohttp.ClientSession(base, headers=headers) as http:
            for size in sizes:
                body = {"chain_id": 1, "name": f"export {size}", "events": [TRANSFER]}
                async with http.post("/v1/subscriptions", json=body) as response:
                    if response.status != 201:
                        raise RuntimeError(f"POST /v1/subscriptions: {await response.text()}")
                    subscriptions[size] = (await response.json())["id"]
                await conn.execute(INSERT_MATCHES, uuid.UUID(subscriptions[size]), size)
        await conn.execute("VACUUM ANALYZE logs, matches")
        seconds = time.perf_counter() - started
        print(f"stored {max(sizes):,} logs, {sum(sizes):,} matches in {seconds:.1f} s", flush=True)
    finally:
        await conn.close()
    return created.api_key, subscriptions


# ----------------------------------------------------------------------------- runs


def problems_of(export: Export, fmt: str, size: int) -> list[str]:
    """Why the output is not `size` decoded events in the format (empty: it is)."""
    shape, count = SHAPES[fmt], export.count
    found = []
    if export.exit_code != 0:
        found.append(f"exit code {export.exit_code}")
    if count.lines != size + shape.extra_lines:
        found.append(f"{count.lines} lines, expected {size + shape.extra_lines}")
    if count.matches != size:
        found.append(f"{count.matches} decoded Transfer events, expected {size}")
    if not count.head.startswith(shape.head) or not count.tail.endswith(shape.tail):
        found.append(f"starts {count.head[:20]!r}, ends {count.tail[-20:]!r}")
    return found


def measure(database_url: str, api_key: str, subscription: str, size: int, fmt: str) -> Run:
    """One export against an API of its own, so that no earlier run's heap counts."""
    with running_api(database_url) as (process, base):
        warm = export(base, api_key, subscription, fmt, to_block=FIRST_BLOCK)
        problems = [f"warm-up: {p}" for p in problems_of(warm, fmt, LOGS_PER_BLOCK)]
        api = psutil.Process(process.pid)
        before, cpu_before = api.memory_info().rss, _cpu_seconds(api)
        kernel = reset_kernel_peak(process.pid)
        sampler = PeakRss(api)
        sampler.start()
        try:
            run = export(base, api_key, subscription, fmt)
        finally:
            peak = sampler.finish()
        api_cpu = _cpu_seconds(api) - cpu_before
        kernel_mib = _mib(hwm) if kernel and (hwm := kernel_peak(process.pid)) else None
    return Run(
        size=size,
        format=fmt,
        events=run.count.matches,
        lines=run.count.lines,
        bytes=run.count.bytes,
        seconds=round(run.seconds, 3),
        first_byte_seconds=round(run.first_byte_seconds or 0, 3) or None,
        events_per_second=round(run.count.matches / run.seconds),
        cli_cpu_seconds=round(run.cpu_seconds, 2),
        api_cpu_seconds=round(api_cpu, 2),
        cli_peak_rss_mib=_mib(run.peak_rss),
        cli_baseline_rss_mib=_mib(warm.peak_rss),
        cli_growth_mib=_mib(run.peak_rss - warm.peak_rss),
        api_rss_before_mib=_mib(before),
        api_peak_rss_mib=_mib(peak),
        api_growth_mib=_mib(peak - before),
        api_kernel_peak_mib=kernel_mib,
        problems=problems + problems_of(run, fmt, size),
    )


def flatness(runs: list[Run], fmt: str) -> dict[str, Any] | None:
    """The largest size against the smallest, by FLAT_RULE (None with one size)."""
    of_format = sorted((r for r in runs if r.format == fmt), key=lambda r: r.size)
    if len(of_format) < 2:
        return None
    small, large = of_format[0], of_format[-1]
    verdict: dict[str, Any] = {
        "smallest": small.size,
        "largest": large.size,
        "events_per_second": large.events_per_second,
    }
    for side in ("api", "cli"):
        grown_small = getattr(small, f"{side}_growth_mib")
        grown_large = getattr(large, f"{side}_growth_mib")
        limit = round(FLAT_RATIO * max(grown_small, 0.0) + FLAT_SLACK_MIB, 1)
        verdict[side] = {
            "smallest_growth_mib": grown_small,
            "largest_growth_mib": grown_large,
            "smallest_peak_mib": getattr(small, f"{side}_peak_rss_mib"),
            "largest_peak_mib": getattr(large, f"{side}_peak_rss_mib"),
            "limit_mib": limit,
            "met": grown_large <= limit,
        }
    return verdict


def print_table(runs: list[Run], flat: dict[str, Any]) -> None:
    print(
        f"\n{'events':>9} {'format':<7} {'MB':>7} {'seconds':>8} {'events/s':>9} "
        f"{'CPU s API/CLI':>13} {'CLI peak':>9} {'CLI +':>7} {'API before':>11} "
        f"{'API peak':>9} {'API +':>7} {'VmHWM':>7}"
    )
    for r in runs:
        hwm = "n/a" if r.api_kernel_peak_mib is None else f"{r.api_kernel_peak_mib:.1f}"
        print(
            f"{r.size:>9,} {r.format:<7} {r.bytes / 1e6:>7.1f} {r.seconds:>8.2f} "
            f"{r.events_per_second:>9,} {r.api_cpu_seconds:>6.1f}/{r.cli_cpu_seconds:<6.1f} "
            f"{r.cli_peak_rss_mib:>9.1f} {r.cli_growth_mib:>7.1f} "
            f"{r.api_rss_before_mib:>11.1f} {r.api_peak_rss_mib:>9.1f} {r.api_growth_mib:>7.1f} "
            f"{hwm:>7}" + (f"  FAILED: {'; '.join(r.problems)}" if r.problems else "")
        )
    print("(MiB for memory; '+' is growth during the export)")
    print(f"\nflat memory: {FLAT_RULE}")
    for fmt, verdict in flat.items():
        for side in ("api", "cli"):
            v = verdict[side]
            print(
                f"  {fmt:<7} {side}: +{v['largest_growth_mib']} MiB at {verdict['largest']:,} "
                f"vs +{v['smallest_growth_mib']} MiB at {verdict['smallest']:,} "
                f"(limit {v['limit_mib']}): {'met' if v['met'] else 'MISSED'}"
            )


def _csv_of(text: str, allowed: tuple[str, ...] | None = None) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    for item in items:
        if allowed is not None and item not in allowed:
            raise argparse.ArgumentTypeError(f"{item!r} is not one of {', '.join(allowed)}")
    return items


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
    parser.add_argument(
        "--sizes", type=lambda t: sorted({int(s) for s in _csv_of(t)}), default="20000,200000"
    )
    parser.add_argument(
        "--formats", type=lambda t: _csv_of(t, tuple(SHAPES)), default="ndjson,csv,json"
    )
    opts = parser.parse_args()
    if min(opts.sizes) < 1:
        parser.error("--sizes must be positive")

    name = f"logfill_bench_export_{uuid.uuid4().hex[:10]}"
    database_url = asyncio.run(create_database(opts.server, name))
    runs: list[Run] = []
    try:
        with running_api(database_url) as (_, base):
            api_key, subscriptions = asyncio.run(seed(database_url, base, opts.sizes))
        for size in opts.sizes:
            for fmt in opts.formats:
                runs.append(measure(database_url, api_key, subscriptions[size], size, fmt))
                print(asdict(runs[-1]), flush=True)
    finally:
        asyncio.run(drop_database(opts.server, name))
    flat = {fmt: v for fmt in opts.formats if (v := flatness(runs, fmt)) is not None}
    print_table(runs, flat)
    _write(runs, flat, opts)
    failed = [r for r in runs if r.problems]
    if failed:
        print(f"\n{len(failed)} export(s) did not give every event once, decoded", file=sys.stderr)
        raise SystemExit(1)


def _write(runs: list[Run], flat: dict[str, Any], opts: argparse.Namespace) -> None:
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
        },
        "sizes": opts.sizes,
        "formats": opts.formats,
        "flat_rule": {"ratio": FLAT_RATIO, "slack_mib": FLAT_SLACK_MIB, "text": FLAT_RULE},
        "flat": flat,
        "runs": [asdict(r) for r in runs],
    }
    (RESULTS / "event_export.json").write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
