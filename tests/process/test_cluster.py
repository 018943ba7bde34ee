"""`python -m bench.cluster --quick`: three api and three worker processes on one
PostgreSQL, four chains, kill -9 and a PostgreSQL restart, against one api and one
worker left alone; every exactness check of both phases passes, and nothing the
benchmark started outlives it.

The throughput it prints is not asserted (a shared machine's figures vary); what
a user would notice is: every request stores what eth_getLogs returns, is charged
once, is delivered, and every CU the provider saw is in the windows' audit.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.support.processes import descendants

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 300  # seconds; the quick run takes about a minute


def run_quick(folder: Path) -> tuple[int, str, set[psutil.Process]]:
    """The benchmark as a subprocess, its JSON in `folder`: its exit code, its output,
    and every process it had started (sampled while it ran)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGFILL_")}
    log_path = folder / "output.txt"
    with log_path.open("wb") as log:
        bench = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.cluster",
                "--quick",
                "--output",
                str(folder / "cluster.json"),
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started: set[psutil.Process] = set()
        deadline = time.monotonic() + TIMEOUT
        try:
            while bench.poll() is None:
                for pid in descendants(bench.pid):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        started.add(psutil.Process(pid))  # remembers its create time
                assert time.monotonic() < deadline, "bench.cluster --quick took too long"
                time.sleep(0.2)
        finally:
            if bench.poll() is None:
                bench.kill()
            bench.wait()
    return bench.returncode, log_path.read_text(errors="replace"), started


def alive(process: psutil.Process) -> bool:
    """Still running (the same process, not a zombie waiting for its parent)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_three_apis_and_three_workers_under_kill_9_and_a_postgres_restart_stay_exact(
    tmp_path: Path,
) -> None:
    output = tmp_path / "cluster.json"
    code, text, started = run_quick(tmp_path)
    tail = text[-6000:]
    assert output.is_file(), tail
    result = json.loads(output.read_text())
    assert set(result.get("phases", {})) == {"1+1", "3+3"}, tail
    for name, phase in result["phases"].items():
        failed = [c for c in phase["checks"] if not c["ok"]]
        assert not failed, f"{name}: {failed}\n{tail}"
        assert {c["name"] for c in phase["checks"]} >= {
            "requests", "full scan", "credits", "one budget per tick", "one window at a time",
            "budget", "webhooks", "CU",
        }  # fmt: skip
    chaos = result["phases"]["3+3"]
    assert "chaos" in {c["name"] for c in chaos["checks"]}  # kills and a restart, in time
    assert code == 0, tail

    # Nothing it started is left: logfill, proxies, anvil, and the cluster's server.
    assert started, "no process was seen"
    assert not [p for p in started if alive(p)], tail
    folder = re.search(r"PostgreSQL cluster in (\S+),", text)
    assert folder is not None, tail
    assert not Path(folder[1]).exists()
    servers = [
        p
        for p in psutil.process_iter(["cmdline"])
        if any(folder[1] in part for part in p.info["cmdline"] or ())
    ]
    assert not servers, servers
