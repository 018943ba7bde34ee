"""Ponder on the same chain and PostgreSQL server, for bench.side_by_side.

Installs Ponder from npm into a temporary folder (`npm install ponder viem hono`),
writes a minimal project (the Emitter's three events, one row stored per log,
`ethGetLogsBlockRange` = logfill's span), starts `ponder start` on a database of
its own and times it from start until `GET /ready` answers 200, which Ponder
does once its historical indexing has reached the end block. Its RPC goes
through the same counting proxy. Anything that fails gives a reason to skip the
row instead of an error.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench import procstat
from indexer.localhost import free_port
from tests.support import anvil as chain

MIN_NODE = (18, 14)
INSTALL_TIMEOUT_SECONDS = 600


class PonderSkipped(Exception):
    """Ponder cannot run here; the message says why."""


@dataclass
class PonderRun:
    version: str
    seconds: float  # `ponder start` to GET /ready = 200
    rows: int
    cpu_seconds: float  # the node process and its children
    peak_rss_mib: float | None


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line[:300] for line in text[-lines:])


def install(folder: Path, version: str) -> str:
    """npm install Ponder into `folder`; its installed version. Raises PonderSkipped."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise PonderSkipped("node and npm are not on PATH")
    found = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    match = re.match(r"v(\d+)\.(\d+)", found.stdout.strip())
    if not match or (int(match[1]), int(match[2])) < MIN_NODE:
        raise PonderSkipped(f"Ponder needs Node.js >= 18.14, found {found.stdout.strip()}")
    folder.mkdir(parents=True, exist_ok=True)
    package = {"name": "logfill-bench-ponder", "private": True, "type": "module"}
    (folder / "package.json").write_text(json.dumps(package, indent=2) + "\n")
    try:
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error",
             f"ponder@{version}", "viem@2", "hono@4"],
            cwd=folder, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS,
            check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise PonderSkipped(f"npm install did not finish in {INSTALL_TIMEOUT_SECONDS} s") from None
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-3:]
        raise PonderSkipped(f"npm install ponder failed: {' | '.join(last)}")
    manifest = folder / "node_modules" / "ponder" / "package.json"
    try:
        return str(json.loads(manifest.read_text())["version"])
    except (OSError, ValueError, KeyError):
        raise PonderSkipped("npm install ponder left no node_modules/ponder") from None


def write_project(
    folder: Path,
    *,
    rpc_url: str,
    database_url: str,
    addresses: list[str],
    first: int,
    last: int,
    span: int,
) -> None:
    """ponder.config.ts, ponder.schema.ts, src/index.ts (one row per log), src/api."""
    abi, _ = chain.compile_emitter()
    events = [item for item in abi if item["type"] == "event" and not item.get("anonymous")]
    names = [item["name"] for item in events]
    (folder / "abis").mkdir(exist_ok=True)
    (folder / "src" / "api").mkdir(parents=True, exist_ok=True)
    (folder / "abis" / "Emitter.ts").write_text(
        f"export const EmitterAbi = {json.dumps(events)} as const;\n"
    )
    (folder / "ponder-env.d.ts").write_text('/// <reference types="ponder/virtual" />\n')
    (folder / "ponder.config.ts").write_text(
        f"""import {{ createConfig }} from "ponder";
import {{ EmitterAbi }} from "./abis/Emitter";

export default createConfig({{
  database: {{ kind: "postgres", connectionString: {json.dumps(database_url)} }},
  chains: {{
    anvil: {{ id: {chain.CHAIN_ID}, rpc: {json.dumps(rpc_url)}, ethGetLogsBlockRange: {span} }},
  }},
  contracts: {{
    Emitter: {{
      chain: "anvil",
      abi: EmitterAbi,
      address: {json.dumps(addresses)},
      startBlock: {first},
      endBlock: {last},
    }},
  }},
}});
"""
    )
    (folder / "ponder.schema.ts").write_text(
        """import { onchainTable } from "ponder";

export const emitterEvent = onchainTable("emitter_event", (t) => ({
  id: t.text().primaryKey(),
  kind: t.text().notNull(),
  address: t.hex().notNull(),
  blockNumber: t.bigint().notNull(),
  logIndex: t.integer().notNull(),
}));
"""
    )
    (folder / "src" / "index.ts").write_text(
        f"""import {{ ponder }} from "ponder:registry";
import {{ emitterEvent }} from "ponder:schema";

for (const name of {json.dumps(names)} as const) {{
  ponder.on(`Emitter:${{name}}`, async ({{ event, context }}) => {{
    await context.db.insert(emitterEvent).values({{
      id: event.id,
      kind: name,
      address: event.log.address,
      blockNumber: event.block.number,
      logIndex: event.log.logIndex,
    }});
  }});
}}
"""
    )
    (folder / "src" / "api" / "index.ts").write_text(
        'import { Hono } from "hono";\n\nconst app = new Hono();\nexport default app;\n'
    )


async def run_ponder(
    folder: Path,
    version: str,
    database_url: str,
    timeout: float,
    at_ready: Callable[[], Awaitable[None]] | None = None,
) -> PonderRun:
    """`ponder start` until /ready answers 200 (then `at_ready()`, before anything
    else); stopped afterwards. Raises PonderSkipped."""
    port = free_port()
    log_path = folder / "ponder.log"
    env = {**os.environ, "PONDER_TELEMETRY_DISABLED": "true", "NO_COLOR": "1"}
    command = [
        shutil.which("node") or "node",
        str(folder / "node_modules" / "ponder" / "dist" / "esm" / "bin" / "ponder.js"),
        "--log-format", "json", "start", "--schema", "bench", "--port", str(port),
    ]  # fmt: skip
    with log_path.open("wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            await _wait_ready(f"http://127.0.0.1:{port}/ready", process, timeout, log_path)
            seconds = time.perf_counter() - started
            if at_ready is not None:
                await at_ready()
            cpu = procstat.tree_cpu_seconds(process.pid)
            rss = procstat.peak_rss_mib(process.pid)
        finally:
            _stop(process)
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM bench.emitter_event")
    finally:
        await conn.close()
    return PonderRun(version, seconds, rows, cpu, rss)


async def _wait_ready(
    url: str, process: subprocess.Popen[bytes], timeout: float, log_path: Path
) -> None:
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        while time.perf_counter() - started < timeout:
            if process.poll() is not None:
                raise PonderSkipped(
                    f"ponder start exited with code {process.returncode}: {_tail(log_path)}"
                )
            try:
                async with session.get(url) as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.25)
    raise PonderSkipped(f"/ready did not answer 200 within {timeout:.0f} s: {_tail(log_path)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to Ponder's process group (node and its esbuild), then SIGKILL."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            process.wait()
    else:
        process.wait()


def describe(run: PonderRun) -> dict[str, Any]:
    return {
        "status": "ok",
        "version": run.version,
        "seconds": round(run.seconds, 2),
        "rows": run.rows,
        "cpu_seconds": round(run.cpu_seconds, 2),
        "peak_rss_mib": None if run.peak_rss_mib is None else round(run.peak_rss_mib, 1),
    }
