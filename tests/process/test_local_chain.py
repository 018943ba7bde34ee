"""A newcomer's path outside the demo: `make chain`, then `make run` on the line it prints.

`python -m demo --chain-only` (what `make chain` runs) on a real anvil: the
`LOGFILL_CHAINS` line it prints, given as printed to `logfill run`, lets a backfill
over the printed token address complete with every transfer matched, and SIGTERM
stops anvil. Without any chain, `run`, `api` and `worker` say so once at start-up.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from indexer.localhost import free_port
from tests.support.processes import (
    LOGFILL_BIN,
    TRANSFER,
    all_gone,
    descendants,
    make_workspace,
    wait_ready,
)

LOCAL_CHAIN_ID = 31337


def clean_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGFILL_")}
    env.update(settings)
    return env


def wait_for_output(path: Path, proc: subprocess.Popen[bytes], text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while text not in (output := path.read_text(errors="replace")):
        assert proc.poll() is None, f"exited with {proc.returncode}:\n{output}"
        assert time.monotonic() < deadline, f"{text!r} not printed in {timeout} s:\n{output}"
        time.sleep(0.1)
    return output


def backfill_everything(url: str, api_key: str, token: str) -> dict[str, object]:
    """A customer's session: subscribe to the token's transfers, backfill all blocks, wait."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {api_key}"}) as api:
        subscription = api.post(
            "/v1/subscriptions",
            json={"chain_id": LOCAL_CHAIN_ID, "addresses": [token], "events": [TRANSFER]},
        )
        assert subscription.status_code == 201, subscription.text
        body = {"subscription_id": subscription.json()["id"], "from_block": 0, "to_block": "safe"}
        queued = api.post("/v1/backfill", json=body)
        assert queued.status_code == 202, queued.text
        deadline = time.monotonic() + 30
        while (request := api.get(f"/v1/backfill/{queued.json()['id']}").json())["status"] in (
            "queued",
            "processing",
        ):
            assert time.monotonic() < deadline, request
            time.sleep(0.2)
    return dict(request)


def test_chain_only_prints_the_line_that_logfill_run_backfills_with_and_stops_anvil(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    out_path = tmp_path / "chain.out"
    with out_path.open("wb") as out:
        chain = subprocess.Popen(
            [sys.executable, "-m", "demo", "--chain-only", "--blocks", "100", "--port", str(port)],
            env=clean_env(),
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        text = wait_for_output(out_path, chain, "' make run", timeout=120)  # the last line
        anvil = descendants(chain.pid)
        printed = re.search(r"^\s*LOGFILL_CHAINS='([^']+)' make run$", text, re.MULTILINE)
        token = re.search(r"DemoToken\s+(0x[0-9a-fA-F]{40})\s+ERC-20, (\d+) Transfer events", text)
        assert printed and token and anvil, text
        chains = printed.group(1)
        assert json.loads(chains) == {
            str(LOCAL_CHAIN_ID): {"rpc_url": f"http://127.0.0.1:{port}", "confirmations": 0}
        }

        api_port = free_port()
        log_path = tmp_path / "run.log"
        env = clean_env(
            LOGFILL_DATABASE_URL=database_url,
            LOGFILL_DATA_DIR=str(tmp_path / "data"),
            LOGFILL_CHAINS=chains,
            LOGFILL_API_PORT=str(api_port),
            LOGFILL_LOG_FORMAT="json",
        )
        with log_path.open("wb") as log:
            run = subprocess.Popen(
                [LOGFILL_BIN, "run"], env=env, cwd=tmp_path, stdout=log, stderr=log
            )
        try:
            url = f"http://127.0.0.1:{api_port}"
            wait_ready(url, run)
            done = backfill_everything(url, make_workspace(database_url), token.group(1))
        finally:
            run.send_signal(signal.SIGTERM)
            run.wait(timeout=15)
        assert done["status"] == "completed", done
        assert done["new_matches"] == int(token.group(2)) > 10
        assert "no_chains_configured" not in log_path.read_text()
    finally:
        chain.send_signal(signal.SIGTERM)
        code = chain.wait(timeout=30)
    assert code == 0
    assert "anvil stopped." in out_path.read_text()
    assert all_gone(anvil)


@contextmanager
def listening() -> Iterator[int]:
    """A port something listens on (another node, say)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_chain_only_refuses_a_port_that_is_taken(tmp_path: Path) -> None:
    with listening() as port:
        result = subprocess.run(
            [sys.executable, "-m", "demo", "--chain-only", "--port", str(port)],
            env=clean_env(),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert f"cannot start anvil on 127.0.0.1:{port}" in result.stderr
    assert "--port" in result.stderr


# `api` and `run` listen; `worker` has no port, so its start-up line is awaited.
READY_EVENT = {"run": '"api_listening"', "api": '"api_listening"', "worker": '"worker_started"'}


@pytest.mark.parametrize("command", ["run", "api", "worker"])
def test_without_a_chain_the_service_warns_once_at_start_up_naming_what_to_do(
    database_url: str, tmp_path: Path, command: str
) -> None:
    env = clean_env(
        LOGFILL_DATABASE_URL=database_url,
        LOGFILL_DATA_DIR=str(tmp_path / "data"),
        LOGFILL_API_PORT=str(free_port()),
        LOGFILL_WORKER_METRICS_PORT="0",
        LOGFILL_LOG_FORMAT="json",
    )
    log_path = tmp_path / f"{command}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [LOGFILL_BIN, command], env=env, cwd=tmp_path, stdout=log, stderr=log
        )
    try:
        wait_for_output(log_path, proc, READY_EVENT[command], timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    events = [json.loads(line) for line in log_path.read_text().splitlines()]
    warned = [e for e in events if e["event"] == "no_chains_configured"]
    assert len(warned) == 1, events
    assert warned[0]["level"] == "warning"
    assert "Set LOGFILL_CHAINS" in warned[0]["hint"] and "make chain" in warned[0]["hint"]
