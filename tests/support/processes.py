"""`logfill` as processes: their environment, `logfill api` and `logfill worker` processes
of a test, a workspace made the operator's way, and what a test left running."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import orjson
import psutil
import pytest

from indexer.accounts import create_workspace
from indexer.db.pool import connect
from indexer.localhost import free_port

LOGFILL_BIN = str(Path(sys.executable).parent / "logfill")

CHAIN_ID = 1
TRANSFER = "Transfer(address indexed from, address indexed to, uint256 value)"
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def logfill(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One `logfill` command, as an operator types it, with its output as text."""
    return subprocess.run(
        [LOGFILL_BIN, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def answer(env: dict[str, str], cwd: Path, *args: str) -> Any:
    """The JSON a command that succeeded printed."""
    result = logfill(env, cwd, *args)
    assert result.returncode == 0, result.stderr
    return orjson.loads(result.stdout)


def refusal(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused command says (exit 1, nothing on stdout); logs are JSON lines."""
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    return line


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


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for running the `logfill` command against this test's database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGFILL_")}
    env.update(
        LOGFILL_DATABASE_URL=database_url,
        LOGFILL_DATA_DIR=str(tmp_path / "data"),
        LOGFILL_LOG_FORMAT="json",
    )
    return env


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
def api_process(database_url: str, data_dir: Path, **extra: str) -> Iterator[ApiProcess]:
    """`logfill api` on a free port (no worker: requests stay where the test puts them);
    `extra`: more environment."""
    port = free_port()
    env = service_env(database_url, data_dir, LOGFILL_API_PORT=str(port), **extra)
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


@dataclass(frozen=True)
class Live:
    """A running API, a workspace's key and one of its subscriptions."""

    url: str
    key: str
    subscription_id: str

    def http(self, method: str, path: str) -> Any:
        headers = {"Authorization": f"Bearer {self.key}"}
        return httpx.request(method, self.url + path, headers=headers).json()


@dataclass(frozen=True)
class Ran:
    """What a command run in-process left: its exit code, stdout and stderr."""

    code: int
    out: str
    err: str


@pytest.fixture
def live(database_url: str, tmp_path: Path) -> Iterator[Live]:
    """A live `logfill api` (no worker), a workspace with 1000 credits and a Transfer
    subscription on it."""
    key = make_workspace(database_url, credits=1000)
    with api_process(database_url, tmp_path / "api") as api:
        response = httpx.post(
            f"{api.url}/v1/subscriptions",
            json={"chain_id": CHAIN_ID, "addresses": [TOKEN], "events": [TRANSFER]},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.status_code == 201, response.text
        yield Live(api.url, key, response.json()["id"])


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]
    name: str  # LOGFILL_WORKER_NAME: what it leads and records windows under

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


class Workers:
    """`logfill worker` processes of one test; every one is stopped when the test ends."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd
        self.started: list[Worker] = []

    def start(self) -> Worker:
        log_path = self.cwd / f"worker-{len(self.started)}.log"
        log_file = log_path.open("wb")
        name = f"worker-{len(self.started)}"
        proc = subprocess.Popen(
            [LOGFILL_BIN, "worker"],
            env={**self.env, "LOGFILL_WORKER_NAME": name},
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        worker = Worker(proc, log_path, log_file, name)
        self.started.append(worker)
        return worker

    @staticmethod
    def kill(worker: Worker) -> None:
        """SIGKILL: no signal handler, no finally block, no clean-up of any kind."""
        worker.proc.send_signal(signal.SIGKILL)
        worker.proc.wait(timeout=10)

    def stop_all(self) -> None:
        for worker in self.started:
            if worker.proc.poll() is None:
                worker.proc.terminate()
        for worker in self.started:
            try:
                worker.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait()
            worker.log_file.close()
