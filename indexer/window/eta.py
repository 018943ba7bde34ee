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
    estimates = {}
    calls_before = 0
    for work in queue:
        calls = calls_for(work.blocks, span)
        estimates[work.request_id] = estimate_behind(
            calls_before,
            calls,
            now=now,
            call_cu=call_cu,
            window_cu=window_cu,
            head_cu=head_cu,
            tick_seconds=tick_seconds,
        )
        calls_before += calls
    return estimates


def calls_for(blocks: int, span: int) -> int:
    """eth_getLogs calls of `span` blocks that `blocks` blocks need."""
    return math.ceil(blocks / span) if blocks else 0


def estimate_behind(
    calls_before: int,
    calls: int,
    *,
    now: datetime,
    call_cu: int,
    window_cu: int,
    head_cu: int,
    tick_seconds: float,
) -> Estimate:
    """Start and finish of work needing `calls` calls behind `calls_before` calls of
    the queue: the step `estimate_queue` takes for each request, on its own."""
    calls_per_window = max(1, (window_cu - head_cu) // call_cu)
    start_window = calls_before // calls_per_window
    finish_window = (calls_before + max(calls, 1) - 1) // calls_per_window
    return Estimate(
        now + timedelta(seconds=start_window * tick_seconds),
        now + timedelta(seconds=(finish_window + 1) * tick_seconds),
    )


def estimate_request(
    blocks: int,
    *,
    span: int,
    call_cu: int,
    window_cu: int,
    head_cu: int,
    verified_calls: int = 0,
    verify_cu: int = 0,
) -> tuple[int, int, int]:
    """Calls, CU and windows for `blocks` blocks scanned alone (a dry run); of the
    calls, `verified_calls` (near the head) also read their last block."""
    calls = math.ceil(blocks / span) if blocks else 0
    verified_calls = min(verified_calls, calls)
    calls_per_window = max(1, (window_cu - head_cu) // call_cu)
    windows = math.ceil(calls / calls_per_window) if calls else 0
    return calls, calls * call_cu + verified_calls * verify_cu + windows * head_cu, windows
