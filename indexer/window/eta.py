"""When queued work will likely start and finish: the ETA a 202, a dry run and each
window give, from the queue ahead and the CU its blocks need. Pure: the clock is
an argument.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class QueuedWork:
    request_id: uuid.UUID
    blocks: int  # blocks still to scan


@dataclass(frozen=True)
class Estimate:
    start_at: datetime
    finish_at: datetime


def estimate_queue(
    queue: Sequence[QueuedWork],
    *,
    now: datetime,
    span: int,
    call_cu: int,
    window_cu: int,
    head_cu: int,
    tick_seconds: float,
) -> dict[uuid.UUID, Estimate]:
    """When each request of a chain's FIFO queue starts and finishes, if served alone.

    Each window buys (window_cu - head_cu) // call_cu eth_getLogs calls of
    `span` blocks. This ignores batching (which only makes things sooner) and
    fair share between workspaces (which reorders, not adds, work).
    """
    calls_per_window = max(1, (window_cu - head_cu) // call_cu)
    estimates = {}
    calls_before = 0
    for work in queue:
        calls = math.ceil(work.blocks / span) if work.blocks else 0
        start_window = calls_before // calls_per_window
        finish_window = (calls_before + max(calls, 1) - 1) // calls_per_window
        estimates[work.request_id] = Estimate(
            now + timedelta(seconds=start_window * tick_seconds),
            now + timedelta(seconds=(finish_window + 1) * tick_seconds),
        )
        calls_before += calls
    return estimates


def estimate_request(
    blocks: int, *, span: int, call_cu: int, window_cu: int, head_cu: int
) -> tuple[int, int, int]:
    """Calls, CU and windows for `blocks` blocks scanned alone (a dry run)."""
    calls = math.ceil(blocks / span) if blocks else 0
    calls_per_window = max(1, (window_cu - head_cu) // call_cu)
    windows = math.ceil(calls / calls_per_window) if calls else 0
    return calls, calls * call_cu + windows * head_cu, windows
