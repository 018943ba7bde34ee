"""The request page's windows chart: what it draws for the windows a request had.

Every bar stands on the plot's baseline; its budget (the background) is as tall as
the window's budget on one scale for all windows; this request's CU is the bottom
of the stack and the other requests' CU sits on it; nothing leaves the plot.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.dashboard.charts import Axis, WindowChart, compact, value_axis, window_chart

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def window(
    index: int,
    *,
    budget: int = 12_000,
    window_cu: int = 6_000,
    mine: int = 3_000,
    blocks: int = 1_000,
    every: timedelta = timedelta(seconds=5),
) -> dict[str, Any]:
    """A row as `indexer.backfills.request_windows` gives it."""
    started = T0 + index * every
    return {
        "window_id": 100 + index,
        "started_at": started,
        "finished_at": started + timedelta(seconds=1),
        "budget_cu": budget,
        "window_cu": window_cu,
        "requests_served": 2,
        "cu_spent": mine,
        "blocks_scanned": blocks,
        "matches": 3,
        "new_matches": 2,
    }


def cu_height(chart: WindowChart, cu: int, top: int) -> float:
    return cu / top * (chart.plot.bottom - chart.plot.top)


MANY = [window(i, budget=12_000 if i < 30 else 24_000, blocks=500 + 10 * i) for i in range(50)]
OVER = [
    window(0),
    window(1, window_cu=4_000, mine=5_000),  # its share recorded above the window's total
    window(2, window_cu=14_000, mine=9_000),  # the window over its budget
]


@pytest.mark.parametrize(
    ("rows", "cu_top", "over_budget", "summary_start"),
    [
        pytest.param([], None, [], "No window has scanned this request yet", id="no windows"),
        pytest.param([window(0)], 15_000, [False], "1 window, at 2024-05-01 12:00:00", id="one"),
        pytest.param(MANY, 30_000, [False] * 50, "50 windows from", id="many, budgets scaled"),
        pytest.param(OVER, 15_000, [False, False, True], "3 windows from", id="over the share"),
    ],
)
def test_one_bar_and_one_point_per_window_on_one_scale(
    rows: list[dict[str, Any]], cu_top: int | None, over_budget: list[bool], summary_start: str
) -> None:
    chart = window_chart(rows)

    assert chart.empty == (not rows)
    assert len(chart.bars) == len(chart.points) == len(rows)
    assert [bar.over_budget for bar in chart.bars] == over_budget
    assert chart.summary.startswith(summary_start)
    assert chart.title
    if cu_top is None:
        assert chart.cu_ticks == chart.time_ticks == () and chart.line == ""
        return
    assert chart.cu_ticks[-1].text == compact(cu_top)
    plot = chart.plot
    for bar, row in zip(chart.bars, rows, strict=True):
        mine, others = row["cu_spent"], max(0, row["window_cu"] - row["cu_spent"])
        assert bar.budget_height == pytest.approx(
            cu_height(chart, row["budget_cu"], cu_top), abs=0.2
        )
        assert bar.mine_height == pytest.approx(cu_height(chart, mine, cu_top), abs=0.2)
        assert bar.others_height == pytest.approx(cu_height(chart, others, cu_top), abs=0.2)
        # Stacked on the baseline: budget and this request from the bottom, the others above.
        assert bar.budget_y + bar.budget_height == pytest.approx(plot.bottom, abs=0.2)
        assert bar.mine_y + bar.mine_height == pytest.approx(plot.bottom, abs=0.2)
        assert bar.others_y + bar.others_height == pytest.approx(bar.mine_y, abs=0.2)
        assert plot.top <= min(bar.budget_y, bar.others_y) and bar.x >= plot.left
        assert bar.x + bar.width <= plot.right + 0.1
        assert f"{mine:,} CU" in bar.title
    lefts = [bar.x for bar in chart.bars]
    assert lefts == sorted(lefts) and len(set(lefts)) == len(lefts)


def test_one_window_is_centred_with_a_dot_and_no_line_to_draw() -> None:
    chart = window_chart([window(0)])

    (bar,) = chart.bars
    (point,) = chart.points
    centre = (chart.plot.left + chart.plot.right) / 2
    assert bar.x + bar.width / 2 == pytest.approx(centre, abs=0.1)
    assert bar.width <= (chart.plot.right - chart.plot.left) / 10  # a bar, not a wall
    assert point.x == pytest.approx(centre, abs=0.1)
    assert point.y == chart.plot.top  # 1,000 blocks is the top of its axis
    assert [tick.text for tick in chart.time_ticks] == ["12:00:00"]
    assert chart.dot_radius > 0 and chart.line == ""


def test_a_doubled_budget_draws_a_bar_twice_as_tall() -> None:
    chart = window_chart(MANY)

    assert chart.bars[40].budget_height == pytest.approx(2 * chart.bars[0].budget_height, abs=0.2)
    assert len({bar.width for bar in chart.bars}) == 1
    assert len(chart.time_ticks) == 5  # labels never crowd: at most five
    assert chart.time_ticks[0].text == "12:00:00" and chart.time_ticks[-1].text == "12:04:05"
    assert chart.line.count(",") == 50


def test_a_window_over_its_budget_stays_inside_the_plot_and_says_so() -> None:
    chart = window_chart(OVER)

    over = chart.bars[2]
    assert over.others_y < over.budget_y  # the stack rises above its budget
    assert over.others_y >= chart.plot.top
    assert "over its budget" in over.title
    # A share recorded above the window's total leaves nothing for the others.
    assert chart.bars[1].others_height == 0
    assert "other requests 0 CU" in chart.bars[1].title


@pytest.mark.parametrize(
    ("every", "first", "last"),
    [
        (timedelta(seconds=5), "12:00:00", "12:00:20"),
        (timedelta(minutes=30), "12:00", "14:00"),
        (timedelta(hours=6), "01 May 12:00", "02 May 12:00"),
    ],
)
def test_times_are_labelled_as_precisely_as_their_span_needs(
    every: timedelta, first: str, last: str
) -> None:
    chart = window_chart([window(i, every=every) for i in range(5)])

    assert [chart.time_ticks[0].text, chart.time_ticks[-1].text] == [first, last]


@pytest.mark.parametrize(
    ("value", "axis"),
    [
        (0, Axis(1, 1)),
        (3, Axis(3, 1)),
        (7, Axis(8, 2)),
        (12_000, Axis(15_000, 5_000)),
        (24_000, Axis(30_000, 10_000)),
        (398_000, Axis(400_000, 100_000)),
    ],
)
def test_value_axes_end_at_a_round_step_just_above_the_tallest(value: int, axis: Axis) -> None:
    assert value_axis(value) == axis


@pytest.mark.parametrize(
    ("value", "text"), [(0, "0"), (950, "950"), (12_000, "12k"), (1_500_000, "1.5M")]
)
def test_axis_labels_are_compact(value: int, text: str) -> None:
    assert compact(value) == text
