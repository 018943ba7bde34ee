"""Helpers for the demo and CLI-client tests: `logfill api` as a process, a workspace,
and the processes a test started."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from demo.chain import free_port
from indexer.db import connect
from indexer.workspaces import create_workspace
from tests.conftest import LOGFILL_BIN

CHAIN_ID = 1
TRANSFER = "Transfer(address indexed from, address indexed to, uint256 value)"
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def make_workspace(database_url: str, *, plan: str = "pro", credits: int = 100) -> str:
    """A workspace made the operator's way; its API key."""

    async def create() -> str:
        conn = await connect(database_url)
        try:
            created = await create_workspace(conn, name="cli", plan=plan, credits=credits)
        finally:
            await conn.close()
        return created.api_key

    return asyncio.run(create())


def service_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGFILL_")}
    env.update(
        LOGFILL_DATABASE_URL=database_url,
        LOGFILL_DATA_DIR=str(data_dir),
        LOGFILL_LOG_FORMAT="json",
        LOGFILL_CHAINS=json.dumps({str(CHAIN_ID): {"rpc_url": "http://127.0.0.1:9"}}),
        **extra,
    )
    return env


@dataclass(frozen=True)
class ApiProcess:
    url: str
    proc: subprocess.Popen[bytes]


@contextmanager
def api_process(database_url: str, data_dir: Path) -> Iterator[ApiProcess]:
    """`logfill api` on a free port (no worker: requests stay where the test puts them)."""
    port = free_port()
    env = service_env(database_url, data_dir, LOGFILL_API_PORT=str(port))
    data_dir.mkdir(parents=True, exist_ok=True)
    log = (data_dir / "api.log").open("wb")
    proc = subprocess.Popen([LOGFILL_BIN, "api"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        yield ApiProcess(url, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        log.close()


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the process exited with {proc.returncode}"
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready after {timeout}s")


def descendants(pid: int) -> set[int]:
    """Live (not zombie) processes under `pid`."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return set()
    return {c.pid for c in children if _alive(c.pid)}


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def all_gone(pids: set[int] | tuple[int, ...], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
