"""A command run in a terminal of its own, and that terminal closed, as a user closes it.

`in_terminal` starts the command on a new pseudo-terminal as its controlling terminal
(`setsid --ctty`, so the command leads the session, as a login shell's foreground job
is reached), reads what it prints, and `Terminal.close` closes the terminal's master
side: the kernel hangs the terminal up and sends SIGHUP, and later writes to it fail.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest


class Terminal:
    def __init__(self, proc: subprocess.Popen[bytes], master: int) -> None:
        self.proc = proc
        self._master: int | None = master
        self._output = bytearray()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # The command blocks once the terminal's buffer (a few KiB) is full: drain it.
        self._reader = threading.Thread(target=self._drain, name="terminal-reader", daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self._master is not None
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # EIO: no process has the terminal open any more
                return
            if not chunk:
                return
            with self._lock:
                self._output += chunk

    @property
    def output(self) -> str:
        with self._lock:
            return self._output.decode(errors="replace")

    def wait_for(self, text: str, timeout: float = 90.0) -> str:
        """Until `text` was printed; the output so far. Fails if the command exits first."""
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert self.proc.poll() is None, f"exited with {self.proc.returncode}:\n{self.output}"
            assert time.monotonic() < deadline, f"no {text!r} after {timeout} s:\n{self.output}"
            time.sleep(0.1)
        return self.output

    def close(self) -> None:
        """Close the terminal, as its window is closed: SIGHUP, then EIO on every write."""
        if self._master is None:
            return
        self._stop.set()
        self._reader.join()
        os.close(self._master)  # the last reference to the master side: hang-up
        self._master = None


@contextmanager
def in_terminal(
    argv: Sequence[str], env: dict[str, str], cwd: Path | None = None
) -> Iterator[Terminal]:
    """`argv` in a terminal of its own; on the way out the terminal is closed, and the
    command killed (its process group) if it is still running a minute later."""
    setsid = shutil.which("setsid")
    if setsid is None:
        pytest.skip("needs setsid (util-linux) to give the command a controlling terminal")
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            [setsid, "--ctty", *argv],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=cwd,
        )
    finally:
        os.close(slave)
    terminal = Terminal(proc, master)
    try:
        yield terminal
    finally:
        terminal.close()  # a test that failed early: the hang-up lets the command clean up
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
