"""CPU time and peak memory of processes, from /proc (Linux), and of a PostgreSQL server.

- `cpu_seconds(pid)`: user + system time of one process (utime + stime of
  /proc/<pid>/stat, in clock ticks of os.sysconf("SC_CLK_TCK")).
- `peak_rss_mib(pid)`: its peak resident set size (VmHWM of /proc/<pid>/status).
- `PostgresCpu`: the CPU time of a whole PostgreSQL server: the postmaster's own
  time and that of the children it has reaped (cutime + cstime: backends of
  closed connections), plus the time of every live child (backends, checkpointer,
  walwriter, autovacuum, parallel workers). Differences between two reads are the
  server's CPU seconds in between, whoever caused them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import asyncpg

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK")
POSTGRES_NAMES = ("postgres", "postmaster")


@dataclass(frozen=True)
class Stat:
    pid: int
    name: str
    ppid: int
    own_ticks: int  # utime + stime
    children_ticks: int  # cutime + cstime: children waited for


def read_stat(pid: int) -> Stat | None:
    """/proc/<pid>/stat, or None if the process is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The name is in parentheses and may hold spaces or parentheses itself.
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3 of proc(5): state; ppid is field 4, utime..cstime 14-17.
    return Stat(
        pid=pid,
        name=name,
        ppid=int(fields[1]),
        own_ticks=int(fields[11]) + int(fields[12]),
        children_ticks=int(fields[13]) + int(fields[14]),
    )


def all_stats() -> list[Stat]:
    stats = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            stat = read_stat(int(entry.name))
            if stat is not None:
                stats.append(stat)
    return stats


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, in seconds (0.0 if it is gone)."""
    stat = read_stat(pid)
    return 0.0 if stat is None else stat.own_ticks / TICKS


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM of a live process in MiB, or None if it is gone."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        return None
    return None


def tree_cpu_seconds(root: int, stats: list[Stat] | None = None) -> float:
    """CPU seconds of a process, its reaped children and every live descendant."""
    stats = all_stats() if stats is None else stats
    children: dict[int, list[Stat]] = {}
    by_pid = {s.pid: s for s in stats}
    for s in stats:
        children.setdefault(s.ppid, []).append(s)
    top = by_pid.get(root)
    if top is None:
        return 0.0
    ticks, todo = top.own_ticks + top.children_ticks, list(children.get(root, []))
    while todo:
        s = todo.pop()
        ticks += s.own_ticks + s.children_ticks
        todo.extend(children.get(s.pid, []))
    return ticks / TICKS


class PostgresCpu:
    """CPU seconds of one PostgreSQL server, read from /proc.

    The server is found from its data directory's postmaster.pid (`SHOW
    data_directory` needs a superuser); failing that, every process named
    postgres on this machine counts (`how` says which).
    """

    def __init__(self, postmaster: int | None, how: str) -> None:
        self.postmaster = postmaster
        self.how = how

    @classmethod
    async def find(cls, server_url: str) -> PostgresCpu:
        conn = await asyncpg.connect(server_url)
        try:
            data_directory = await conn.fetchval("SHOW data_directory")
        except asyncpg.PostgresError:
            data_directory = None
        finally:
            await conn.close()
        if data_directory:
            try:
                pid = int((Path(data_directory) / "postmaster.pid").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pid = None
            if pid is not None and read_stat(pid) is not None:
                return cls(pid, f"postmaster {pid} of {data_directory} and its children")
        return cls(None, "every process named postgres on this machine")

    def seconds(self) -> float:
        stats = all_stats()
        if self.postmaster is not None:
            return tree_cpu_seconds(self.postmaster, stats)
        named = {s.pid: s for s in stats if s.name in POSTGRES_NAMES}
        ticks = 0
        for s in named.values():
            ticks += s.own_ticks + (0 if s.ppid in named else s.children_ticks)
        return ticks / TICKS
