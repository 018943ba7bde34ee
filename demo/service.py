"""`logfill run` (API + worker) as a child process, configured for the demo chain."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

from demo.chain import CHAIN_ID, stop_process_group
from indexer.errors import LogfillError
from indexer.localhost import free_port

TICK_SECONDS = 1.0
# Every window reads the head (10 CU) and then makes at most 4 eth_getLogs calls (60 CU
# each): a demo request of ~12 calls takes a few windows, so the progress bar moves.
WINDOW_BUDGET_CU = 250
CALLS_PER_REQUEST = 12


class ServiceError(LogfillError):
    """`logfill run` did not come up."""


def chain_config(rpc_url: str, blocks: int) -> dict[str, object]:
    """LOGFILL_CHAINS for the demo chain: no confirmations, a short tick, a small budget."""
    span = max(10, -(-blocks // CALLS_PER_REQUEST))
    return {
        str(CHAIN_ID): {
            "rpc_url": rpc_url,
            "max_block_range": span,
            "confirmations": 0,
            "window_budget_cu": WINDOW_BUDGET_CU,
            "tick_seconds": TICK_SECONDS,
        }
    }


def service_env(database_url: str, data_dir: Path, port: int, chains: object) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGFILL_")}
    env.update(
        LOGFILL_DATABASE_URL=database_url,
        LOGFILL_DATA_DIR=str(data_dir),
        LOGFILL_API_HOST="127.0.0.1",
        LOGFILL_API_PORT=str(port),
        LOGFILL_CHAINS=json.dumps(chains),
        LOGFILL_WEBHOOK_ALLOW_PRIVATE="true",
        LOGFILL_WEBHOOK_POLL_SECONDS="0.2",
        LOGFILL_LOG_FORMAT="json",
        LOGFILL_LOG_LEVEL="info",
    )
    return env


class Service:
    """`python -m api.cli run` in its own session, logging to `<data_dir>/logfill.log`."""

    def __init__(self, database_url: str, data_dir: Path, chains: object) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "logfill.log"
        self._env = service_env(database_url, data_dir, self.port, chains)
        self._log: IO[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Service:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "run"],
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,
        )
        try:
            self._wait_ready(timeout=60.0)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise ServiceError(
                        f"logfill run exited with code {self.proc.returncode}:\n{self.log_tail()}"
                    )
                try:
                    if client.get(f"{self.url}/readyz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise ServiceError(f"logfill run not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_process_group(proc, timeout=15.0)
        if self._log is not None:
            self._log.close()
            self._log = None
