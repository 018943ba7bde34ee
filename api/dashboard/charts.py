"""Chart geometry, computed here so templates only draw: pure functions over rows.

The request page charts the windows that advanced a request
(`indexer.backfills.request_windows`): per window, a bar of the CU the window
spent against its budget (the budget as the background, this request's share
highlighted, the other requests' share lighter) and a line of the blocks the
request scanned there. Coordinates are SVG user units of a `width` x `height`
viewBox; the template scales it to the page. A page draws the chart twice, wide and
narrow, and CSS shows the one that fits, so its text stays readable on a phone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

Row = asyncpg.Record | Mapping[str, Any]

WIDTH, HEIGHT = 880, 260  # drawn about 1:1 on a desktop page
NARROW_WIDTH, NARROW_HEIGHT = 360, 220  # about 1:1 on a phone
# Room for the CU ticks (left), the blocks ticks (right), the axis titles (top), times (bottom).
LEFT, RIGHT, TOP, BOTTOM = 44.0, 44.0, 30.0, 26.0
BAR_SHARE = 0.72  # of a window's slot; the rest is the gap between bars
MAX_BAR = 36.0  # a few windows make bars, not a wall
TIME_LABEL_ROOM = 120  # width a time label needs, so they never overlap
TICKS = 4  # steps of a value axis, at most


@dataclass(frozen=True)
class Plot:
    """The plotting area inside the axes."""

    left: float
    top: float
    right: float
    bottom: float


@dataclass(frozen=True)
class Bar:
    """One window: its budget behind, this request's CU at the bottom, the others' above."""

    x: float
    width: float
    budget_y: float
    budget_height: float
    mine_y: float
    mine_height: float
    others_y: float
    others_height: float
    over_budget: bool  # the window's recorded CU exceeds its budget (drawn anyway)
    title: str  # what the window did, for a tooltip and the data table


@dataclass(frozen=True)
class Point:
    x: float
    y: float


@dataclass(frozen=True)
class Tick:
    at: float  # the x (time axis) or y (value axes) it labels
    text: str


@dataclass(frozen=True)
class Axis:
    """A value axis: its maximum and the step between its labels."""

    top: int
    step: int


@dataclass(frozen=True)
class WindowChart:
    width: int
    height: int
    plot: Plot
    bars: tuple[Bar, ...]
    points: tuple[Point, ...]  # blocks scanned per window, at the bars' centres
    cu_ticks: tuple[Tick, ...]
    block_ticks: tuple[Tick, ...]
    time_ticks: tuple[Tick, ...]
    dot_radius: float
    title: str
    summary: str  # the chart in one sentence, for its aria-label

    @property
    def empty(self) -> bool:
        return not self.bars

    @property
    def line(self) -> str:
        """The blocks line as an SVG `points` attribute; empty below two points."""
        if len(self.points) < 2:
            return ""
        return " ".join(f"{p.x:g},{p.y:g}" for p in self.points)


TITLE = "CU per window against its budget, and blocks scanned per window"


def window_chart(rows: Sequence[Row], *, width: int = WIDTH, height: int = HEIGHT) -> WindowChart:
    """The chart of a request's windows (`rows` oldest first, as `request_windows` gives)."""
    plot = Plot(LEFT, TOP, width - RIGHT, height - BOTTOM)
    if not rows:
        summary = "No window has scanned this request yet."
        return WindowChart(width, height, plot, (), (), (), (), (), 0.0, TITLE, summary)
    cu_axis = value_axis(max(_tallest(row) for row in rows))
    blocks_axis = value_axis(max(int(row["blocks_scanned"]) for row in rows))
    slot = (plot.right - plot.left) / len(rows)
    bars = tuple(
        _bar(row, plot, plot.left + i * slot, slot, cu_axis.top) for i, row in enumerate(rows)
    )
    points = tuple(
        Point(
            _round(plot.left + (i + 0.5) * slot),
            _y(int(r["blocks_scanned"]), plot, blocks_axis.top),
        )
        for i, r in enumerate(rows)
    )
    return WindowChart(
        width=width,
        height=height,
        plot=plot,
        bars=bars,
        points=points,
        cu_ticks=_value_ticks(plot, cu_axis),
        block_ticks=_value_ticks(plot, blocks_axis),
        time_ticks=_time_ticks(rows, plot, slot),
        dot_radius=_round(max(1.5, min(3.5, slot / 4))),
        title=TITLE,
        summary=_summary(rows),
    )


def _tallest(row: Row) -> int:
    return max(int(row["budget_cu"]), int(row["window_cu"]), int(row["cu_spent"]))


def _bar(row: Row, plot: Plot, slot_left: float, slot: float, cu_top: int) -> Bar:
    budget, window_cu, mine = int(row["budget_cu"]), int(row["window_cu"]), int(row["cu_spent"])
    others = max(0, window_cu - mine)  # a share recorded above the window's total: no others
    over_budget = mine + others > budget
    width = min(MAX_BAR, max(1.0, slot * BAR_SHARE))
    budget_y, mine_y = _y(budget, plot, cu_top), _y(mine, plot, cu_top)
    others_y = _y(mine + others, plot, cu_top)
    return Bar(
        x=_round(slot_left + (slot - width) / 2),
        width=_round(width),
        budget_y=budget_y,
        budget_height=_round(plot.bottom - budget_y),
        mine_y=mine_y,
        mine_height=_round(plot.bottom - mine_y),
        others_y=others_y,
        others_height=_round(mine_y - others_y),
        over_budget=over_budget,
        title=_window_title(row, others, over_budget=over_budget),
    )


def _y(value: int, plot: Plot, top: int) -> float:
    return _round(plot.bottom - value / top * (plot.bottom - plot.top))


def _round(value: float) -> float:
    return round(value, 1)


def value_axis(value: int) -> Axis:
    """The axis for values up to `value`: at most TICKS steps of 1, 2 or 5 x 10^n, the top
    the first step at or above `value` (so the tallest bar fills most of the height)."""
    if value <= 0:
        return Axis(1, 1)
    raw = value / TICKS
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return Axis(math.ceil(value / step) * step, step)


def _value_ticks(plot: Plot, axis: Axis) -> tuple[Tick, ...]:
    count = axis.top // axis.step
    return tuple(
        Tick(_y(axis.step * i, plot, axis.top), compact(axis.step * i)) for i in range(count + 1)
    )


def compact(value: int) -> str:
    """An axis label: 950, 12k, 1.5M."""
    for size, unit in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if abs(value) >= size:
            return f"{value / size:.1f}".removesuffix(".0") + unit
    return str(value)


def _time_ticks(rows: Sequence[Row], plot: Plot, slot: float) -> tuple[Tick, ...]:
    room = int((plot.right - plot.left) // TIME_LABEL_ROOM)
    count = max(1, min(room, 5, len(rows)))
    picked = sorted({round(k * (len(rows) - 1) / max(1, count - 1)) for k in range(count)})
    style = _time_style(rows[0]["started_at"], rows[-1]["started_at"])
    return tuple(
        Tick(_round(plot.left + (i + 0.5) * slot), _utc(rows[i]["started_at"]).strftime(style))
        for i in picked
    )


def _time_style(first: datetime, last: datetime) -> str:
    span = (last - first).total_seconds()
    if span < 600:
        return "%H:%M:%S"
    if _utc(first).date() == _utc(last).date():
        return "%H:%M"
    return "%d %b %H:%M"


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _window_title(row: Row, others: int, *, over_budget: bool) -> str:
    when = _utc(row["started_at"]).strftime("%Y-%m-%d %H:%M:%S UTC")
    over = " (over its budget)" if over_budget else ""
    return (
        f"Window {row['window_id']} at {when}: this request {int(row['cu_spent']):,} CU, "
        f"other requests {others:,} CU, budget {int(row['budget_cu']):,} CU{over}; "
        f"{int(row['blocks_scanned']):,} blocks scanned, {int(row['new_matches']):,} new matches"
    )


def _summary(rows: Sequence[Row]) -> str:
    mine = [int(row["cu_spent"]) for row in rows]
    blocks = [int(row["blocks_scanned"]) for row in rows]
    budgets = sorted({int(row["budget_cu"]) for row in rows})
    budget = (
        f"a budget of {budgets[0]:,}"
        if len(budgets) == 1
        else f"budgets of {budgets[0]:,} to {budgets[-1]:,}"
    )
    first, last = (_utc(rows[i]["started_at"]).strftime("%Y-%m-%d %H:%M:%S") for i in (0, -1))
    if len(rows) == 1:
        return (
            f"1 window, at {first} UTC. This request spent {mine[0]:,} CU of {budget} CU "
            f"and scanned {blocks[0]:,} blocks."
        )
    return (
        f"{len(rows):,} windows from {first} to {last} UTC. This request spent {sum(mine):,} CU "
        f"(at most {max(mine):,} in one window, against {budget} CU) and scanned "
        f"{sum(blocks):,} blocks (at most {max(blocks):,} in one window)."
    )
