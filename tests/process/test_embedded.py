"""What a new user gets: no database configured, an embedded PostgreSQL from nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import orjson
import psutil

from indexer.db.migrate import load_migrations
from indexer.localhost import free_port
from tests.support.processes import LOGFILL_BIN


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGFILL_")}
    env.update(LOGFILL_DATA_DIR=str(data_dir), LOGFILL_LOG_FORMAT="json", **extra)
    return env


def _postgres_processes(pgdata: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "postgres" and str(pgdata) in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


def test_migrate_starts_an_embedded_postgres_from_nothing_and_reuses_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "logfill"
    first = subprocess.run(
        [LOGFILL_BIN, "migrate"],
        env=_env(data_dir),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert first.returncode == 0, first.stderr
    assert orjson.loads(first.stdout)["applied"] == [m.label for m in load_migrations()]
    assert (data_dir / "pgdata" / "PG_VERSION").exists()
    assert _postgres_processes(data_dir / "pgdata") == []  # stopped cleanly on exit

    again = subprocess.run(
        [LOGFILL_BIN, "migrate"],
        env=_env(data_dir),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert orjson.loads(again.stdout)["applied"] == []  # same data as before
    assert _postgres_processes(data_dir / "pgdata") == []


def test_run_serves_health_on_the_embedded_default_and_stops_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    proc = subprocess.Popen(
        [LOGFILL_BIN, "run"],
        env=_env(data_dir, LOGFILL_API_PORT=str(port)),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        ready = _wait_ready(f"http://127.0.0.1:{port}", proc)
        assert ready.json() == {"status": "ready", "schema_version": load_migrations()[-1].label}
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        assert _postgres_processes(data_dir / "pgdata")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    events = [orjson.loads(line)["event"] for line in stderr.splitlines() if line.startswith(b"{")]
    assert "api_listening" in events and "worker_started" in events and "stopped" in events
    assert _postgres_processes(data_dir / "pgdata") == []


def _wait_ready(base: str, proc: subprocess.Popen[bytes]) -> httpx.Response:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            response = httpx.get(f"{base}/readyz", timeout=2)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("logfill run did not become ready within 60 s")
