"""Nothing left running: closed terminals, kill -9, and two workers on one host.

Each test runs real `logfill` processes on the embedded PostgreSQL a new user gets
(no LOGFILL_DATABASE_URL), or on the test database where the embedded server is not
the point, and checks what a user would find afterwards with `ps`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import psutil
import pytest

from indexer.localhost import free_port
from tests.support.processes import LOGFILL_BIN, Workers, all_gone, service_env, wait_ready
from tests.support.terminal import in_terminal


def embedded_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """A new user's environment: no database URL (the embedded PostgreSQL), JSON logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGFILL_")}
    env.update(
        LOGFILL_DATA_DIR=str(data_dir),
        LOGFILL_LOG_FORMAT="json",
        LOGFILL_WORKER_METRICS_PORT="0",
        **extra,
    )
    return env


def postgres_serving(pgdata: Path) -> set[int]:
    """PIDs of the postgres processes running on this data folder (or one under it)."""
    found = set()
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "postgres" and str(pgdata) in " ".join(proc.info["cmdline"] or []):
            found.add(proc.pid)
    return found


@pytest.fixture(autouse=True)
def no_server_left(tmp_path: Path) -> Iterator[None]:
    """However the test ends, no PostgreSQL of its own outlives it (fast shutdown)."""
    yield
    leftover = postgres_serving(tmp_path)
    for pid in leftover:
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).send_signal(signal.SIGINT)
    psutil.wait_procs([p for p in map(_process, leftover) if p is not None], timeout=10)


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def wait_stopped(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"pid {proc.pid} still running {timeout} s after it was told to stop")


# `api` answers /readyz; `worker` has no port, so its start-up line is awaited.
READY_EVENT = {"run": '"api_listening"', "api": '"api_listening"', "worker": '"worker_started"'}


@pytest.mark.parametrize("command", ["run", "api", "worker"])
def test_closing_the_terminal_stops_the_command_and_its_embedded_postgres(
    tmp_path: Path, command: str
) -> None:
    data = tmp_path / "data"
    env = embedded_env(data, LOGFILL_API_PORT=str(free_port()))
    with in_terminal([LOGFILL_BIN, command], env, cwd=tmp_path) as terminal:
        terminal.wait_for(READY_EVENT[command])
        server = postgres_serving(data / "pgdata")
        assert server, terminal.output
        terminal.close()
        assert wait_stopped(terminal.proc) == 0
    assert all_gone(server, timeout=15), "the embedded PostgreSQL outlived the terminal"


@pytest.fixture
def apis(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`logfill api` processes of this test, sharing one embedded PostgreSQL."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def start_api(apis: list[subprocess.Popen[bytes]], data: Path) -> subprocess.Popen[bytes]:
    port = free_port()
    log = (data.parent / f"api-{len(apis)}.log").open("wb")
    proc = subprocess.Popen(
        [LOGFILL_BIN, "api"],
        env=embedded_env(data, LOGFILL_API_PORT=str(port)),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )
    log.close()
    apis.append(proc)
    wait_ready(f"http://127.0.0.1:{port}", proc, timeout=90)
    return proc


def test_after_kill_9_the_embedded_postgres_stops_with_the_last_live_process(
    tmp_path: Path, apis: list[subprocess.Popen[bytes]]
) -> None:
    data = tmp_path / "data"
    killed = start_api(apis, data)
    last = start_api(apis, data)
    server = postgres_serving(data / "pgdata")
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert postgres_serving(data / "pgdata") == server  # the live one still needs it

    last.send_signal(signal.SIGTERM)
    assert wait_stopped(last) == 0
    assert all_gone(server, timeout=15), "a dead process kept the embedded PostgreSQL up"


def test_a_process_that_joins_after_a_kill_9_stops_the_embedded_postgres_on_its_way_out(
    tmp_path: Path, apis: list[subprocess.Popen[bytes]]
) -> None:
    data = tmp_path / "data"
    killed = start_api(apis, data)
    server = postgres_serving(data / "pgdata")
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert postgres_serving(data / "pgdata") == server  # nobody could stop it

    joined = start_api(apis, data)
    joined.send_signal(signal.SIGHUP)
    assert wait_stopped(joined) == 0
    assert all_gone(server, timeout=15), "a dead process kept the embedded PostgreSQL up"


def test_two_workers_on_one_host_both_run_and_the_second_serves_no_metrics(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = service_env(database_url, tmp_path / "data", LOGFILL_WORKER_METRICS_PORT=str(port))
    workers = Workers(env, tmp_path)
    try:
        first = workers.start()
        deadline = time.monotonic() + 60
        while "worker_started" not in first.output():
            assert first.proc.poll() is None, first.output()
            assert time.monotonic() < deadline, first.output()
            time.sleep(0.1)
        second = workers.start()
        while "worker_started" not in second.output():
            assert second.proc.poll() is None, second.output()
            assert time.monotonic() < deadline, second.output()
            time.sleep(0.1)
        time.sleep(1.0)  # both keep running
        assert first.proc.poll() is None and second.proc.poll() is None
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert metrics.status_code == 200 and "logfill" in metrics.text
    finally:
        workers.stop_all()
    assert first.proc.returncode == 0 and second.proc.returncode == 0
    output = second.output()
    assert "Traceback" not in output, output
    events = [orjson.loads(line) for line in output.splitlines() if line.startswith("{")]
    (taken,) = [e for e in events if e["event"] == "metrics_port_in_use"]
    assert (taken["level"], taken["port"]) == ("warning", port)
