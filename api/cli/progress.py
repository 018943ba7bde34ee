"""Following a backfill: the progress bar of `logfill backfill watch` and the demo.

On a terminal the bar redraws in place. Anywhere else (a log file, CI, a pipe)
a redrawn bar is noise, so the same facts come as one plain line per change.
A request paused for credits is not stuck: the watch says once how the
workspace gets topped up, and goes on waiting for it to resume.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.text import Text

from api.cli.output import printable
from api.client import JSON, ApiClient
from indexer.domain import TERMINAL

SETTLED = TERMINAL | {"following"}  # where `watch` stops


def eta_text(backfill: Mapping[str, Any], now: datetime | None = None) -> str:
    """Time left until `estimated_finish_at`, e.g. `12s`, `3m05s`; `-` when unknown."""
    if backfill["status"] in TERMINAL or not backfill.get("estimated_finish_at"):
        return "-"
    return _left(datetime.fromisoformat(str(backfill["estimated_finish_at"])), now)


def _left(when: datetime, now: datetime | None) -> str:
    """Time from `now` until `when`, e.g. `12s`, `3m05s` (`0s` once it has passed)."""
    left = int(max(0.0, (when - (now or datetime.now(UTC))).total_seconds()))
    return f"{left // 60}m{left % 60:02d}s" if left >= 60 else f"{left}s"


def progress_detail(backfill: Mapping[str, Any], now: datetime | None = None) -> str:
    cursor = "-" if backfill["cursor"] is None else str(backfill["cursor"])
    detail = (
        f"cursor {cursor}  matches {backfill['matches']}  credits {backfill['credits_charged']}"
        f"  ETA {eta_text(backfill, now)}"
    )
    start = backfill.get("estimated_start_at")
    if backfill["status"] == "queued" and start:
        detail += f"  starts in {_left(datetime.fromisoformat(str(start)), now)}"
    if backfill.get("lag_blocks") is not None:
        detail += f"  lag {backfill['lag_blocks']} blocks"
    if backfill.get("blocked_reason"):
        detail += f"  blocked: {printable(backfill['blocked_reason'])}"
    elif backfill.get("last_transient_error"):
        detail += f"  provider: {printable(backfill['last_transient_error'])}"
    return detail


def plain_line(backfill: Mapping[str, Any], now: datetime | None = None) -> str:
    """One progress line for a log: time, status, percent and the detail."""
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"{stamp} {backfill['status']} {float(backfill['progress']):.0%} "
        f"{progress_detail(backfill, now)}"
    )


def top_up_hint(workspace: Mapping[str, Any]) -> str:
    return (
        f"paused: workspace {workspace['id']} is out of credits ({workspace['credits']} left). "
        f"An operator tops it up with `logfill admin credits add --workspace {workspace['id']} "
        "--amount N`; the request resumes by itself at its next window."
    )


def _bar(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:<14}"),
        BarColumn(bar_width=30),
        TaskProgressColumn(),
        TextColumn("{task.fields[detail]}", markup=False),
        console=console,
        auto_refresh=False,
    )


class _Watch:
    """What the watch has said, so that each fact is said once."""

    def __init__(self, client: ApiClient, console: Console) -> None:
        self.client = client
        self.console = console
        self.last_line = ""
        self.hinted = False

    async def note(self, backfill: Mapping[str, Any]) -> None:
        if backfill["status"] == "paused_credits" and not self.hinted:
            self.hinted = True
            self.say(top_up_hint(await self.client.workspace()))
        elif backfill["status"] != "paused_credits":
            self.hinted = False

    def plain(self, backfill: Mapping[str, Any]) -> None:
        line = plain_line(backfill)
        if line.split(" ", 1)[1] != self.last_line.split(" ", 1)[-1]:  # the time aside
            self.say(line)
        self.last_line = line

    def say(self, text: str) -> None:
        self.console.print(Text(text), soft_wrap=True)


async def watch_backfill(
    client: ApiClient,
    backfill_id: str,
    *,
    console: Console,
    interval: float = 0.5,
    timeout: float | None = None,
    plain: bool | None = None,
) -> JSON:
    """Poll a request until it reaches a terminal status, or a follow request has caught
    up with the chain (`following`: it goes on without an end): a bar, or lines when
    `plain` (by default: when the console is not a terminal)."""
    watch = _Watch(client, console)
    if console.is_terminal if plain is None else not plain:
        return await _watch_bar(watch, backfill_id, interval, timeout)
    async with asyncio.timeout(timeout):
        while True:
            backfill = await client.get_backfill(backfill_id)
            watch.plain(backfill)
            await watch.note(backfill)
            if backfill["status"] in SETTLED:
                return backfill
            await asyncio.sleep(interval)


async def _watch_bar(
    watch: _Watch, backfill_id: str, interval: float, timeout: float | None
) -> JSON:
    with _bar(watch.console) as progress:
        task = progress.add_task("queued", total=None, detail="")
        async with asyncio.timeout(timeout):
            while True:
                backfill = await watch.client.get_backfill(backfill_id)
                total = max(1, int(backfill["blocks_total"]))
                progress.update(
                    task,
                    description=str(backfill["status"]),
                    total=total,
                    completed=round(float(backfill["progress"]) * total),  # noop ends at 100%
                    detail=progress_detail(backfill),
                )
                await watch.note(backfill)
                progress.refresh()
                if backfill["status"] in SETTLED:
                    return backfill
                await asyncio.sleep(interval)
