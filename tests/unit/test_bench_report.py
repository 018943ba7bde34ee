"""bench/report.py's pure parts: the side-by-side rows, the ranges, the README's markers."""

from __future__ import annotations

from typing import Any

import pytest

from bench import report
from bench.report import BEGIN, END, Row


def _summary(*runs: float) -> dict[str, Any]:
    ordered = sorted(runs)
    return {
        "median": ordered[len(ordered) // 2],
        "min": ordered[0],
        "max": ordered[-1],
        "runs": list(runs),
    }


def _result(**overrides: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "settings": {
            "logs": 200_000,
            "blocks": 20_000,
            "calls": 40,
            "span_blocks": 500,
            "in_flight": 4,
            "tick_seconds": 1.0,
        },
        "goals": {
            "speed_bare_over_logfill": 0.8,
            "pg_cpu_per_match_logfill_over_bare": 2.0,
            "twenty_cu_vs_one": 1.1,
            "twenty_peak_rss_mib": 200,
        },
        "bare": {
            "seconds": _summary(2.1, 2.2, 2.3),
            "logs_per_s": _summary(90e3, 93e3, 95e3),
            "pg_cpu_seconds": _summary(1.0, 1.1, 1.2),
            "cu": _summary(2400, 2400, 2400),
        },
        "logfill": {
            "seconds": _summary(3.7, 3.8, 3.9),
            "matches_per_s": _summary(51e3, 52e3, 54e3),
            "worker_cpu_seconds": _summary(1.7, 1.7, 1.8),
            "pg_cpu_seconds": _summary(1.8, 1.8, 1.9),
            "cu": _summary(2410, 2410, 2410),
            "cu_windows": _summary(2410, 2410, 2410),
            "worker_peak_rss_mib": _summary(134, 134, 137),
        },
        "speed_bare_over_logfill": _summary(0.56, 0.57, 0.58),
        "pg_cpu_per_match_logfill_over_bare": _summary(1.7, 1.75, 1.8),
        "twenty_burst": {
            "post_seconds": 0.075,
            "cu_vs_one": 1.0,
            "cu": 2410,
            "cu_one": 2410,
            "cu_windows": 2410,
            "seconds": 56.4,
            "matches_per_s": 70_989,
            "matches": 4_000_000,
            "pg_cpu_seconds": 33.5,
            "worker_cpu_seconds": 21.9,
            "worker_peak_rss_mib": 160.2,
        },
        "twenty_spread": {
            "post_seconds": 20.0,
            "cu_vs_one": 1.4,
            "cu": 3400,
            "seconds": 70.0,
            "matches_per_s": 57_000,
            "worker_peak_rss_mib": 150.0,
        },
        "ponder": {"status": "skipped", "reason": "node and npm are not on PATH"},
    }
    result.update(overrides)
    return result


def _row(rows: list[Row], starts: str) -> Row:
    found = [row for row in rows if row.figure.startswith(starts)]
    assert len(found) == 1, [row.figure for row in rows]
    return found[0]


def test_a_figure_over_runs_reads_median_then_range() -> None:
    assert report._span(_summary(3.9, 3.7, 3.8), "s", 2) == "3.80 s (3.70-3.90)"
    assert report._span(_summary(93_550.0, 94_029.0), "logs/s") == "94,029 logs/s (93,550-94,029)"
    assert report._span(_summary(2.5), "s") == "2.5 s"  # one run: no range
    assert report._span(None, "s") == "n/a"


def test_side_by_side_rows_judge_each_goal_on_the_median() -> None:
    rows = report.rows_side_by_side(_result())
    assert {row.benchmark for row in rows} == {"side_by_side"}
    speed = _row(rows, "speed: bare time / logfill time")
    assert (speed.measured, speed.goal, speed.met) == ("0.57 (0.56-0.58)", ">= 0.8", False)
    assert speed.reference == "bare 2.2 s, logfill 3.8 s (medians)"
    pg = _row(rows, "PostgreSQL CPU per match")
    assert (pg.measured, pg.goal, pg.met) == ("1.75 (1.70-1.80)", "<= 2", True)
    cu = _row(rows, "20 requests from 5 workspaces, POSTed within 0.075 s")
    assert (cu.measured, cu.goal, cu.met) == ("1.00x", "<= 1.1x", True)
    rss = _row(rows, "20 requests at once: worker peak RSS")
    assert (rss.measured, rss.goal, rss.met) == ("160 MiB", "<= 200 MiB", True)
    spread = _row(rows, "20 requests POSTed over 20.0 s")
    assert (spread.measured, spread.met) == ("1.40x", None)
    bare = _row(rows, "bare pipeline")
    assert "200,000 logs, 20,000 blocks, 40 calls of 500 blocks, 4 in flight" in bare.figure
    assert bare.measured == "2.20 s (2.10-2.30); 93,000 logs/s (90,000-95,000)"


def test_a_missed_goal_and_a_skipped_ponder_say_so() -> None:
    result = _result(
        pg_cpu_per_match_logfill_over_bare=_summary(2.4, 2.5, 2.6),
        twenty_burst={**_result()["twenty_burst"], "cu_vs_one": 1.3, "worker_peak_rss_mib": 210},
    )
    rows = report.rows_side_by_side(result)
    assert _row(rows, "PostgreSQL CPU per match").met is False
    assert _row(rows, "20 requests from 5 workspaces").met is False
    assert _row(rows, "20 requests at once: worker peak RSS").met is False
    ponder = _row(rows, "Ponder")
    assert ponder.measured == "skipped"
    assert ponder.reference == "skipped: node and npm are not on PATH"


def test_ponder_that_ran_is_set_against_logfills_cu() -> None:
    ponder = {
        "status": "ok",
        "version": "0.16.10",
        "seconds": 250.4,
        "cu": 410_000,
        "rows": 200_000,
        "pg_cpu_seconds": 40.0,
        "cpu_seconds": 120.0,
        "peak_rss_mib": 300.0,
    }
    row = _row(report.rows_side_by_side(_result(ponder=ponder)), "Ponder 0.16.10")
    assert row.measured == "250 s"
    assert row.reference.startswith("410,000 CU (170.1x logfill's); 200,000 rows;")


def test_without_the_twenty_runs_their_rows_are_left_out() -> None:
    rows = report.rows_side_by_side(_result(twenty_burst=None, twenty_spread=None))
    assert not [row for row in rows if row.figure.startswith("20 requests")]


def test_the_generated_part_replaces_only_what_stands_between_the_markers() -> None:
    readme = f"# x\n\n## Performance\n\nprose before\n\n{BEGIN}\nold table\n{END}\n\nprose after\n"
    once = report.replace_generated(readme, "| new | table |\n")
    assert once.startswith("# x\n\n## Performance\n\nprose before\n\n" + BEGIN + "\n")
    assert once.endswith("| new | table |\n" + END + "\n\nprose after\n")
    assert "old table" not in once
    assert report.replace_generated(once, "| new | table |\n") == once  # idempotent


@pytest.mark.parametrize(
    "text",
    ["no markers at all", f"{END}\nswapped\n{BEGIN}", f"{BEGIN} only", f"{BEGIN}{END}{BEGIN}{END}"],
)
def test_markers_missing_or_out_of_order_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        report.replace_generated(text, "table")


def test_the_header_names_date_machine_postgres_and_load() -> None:
    line = report.header(
        {
            "date": "2026-01-02T03:04:05+00:00",
            "command": "make bench",
            "machine": "CPU, 2 cores",
            "postgres": "15.20",
            "load_before": [1.5, 1.25, 1.0],
        }
    )
    assert line == (
        "Measured 2026-01-02T03:04:05+00:00 with `make bench` on CPU, 2 cores, PostgreSQL 15.20;"
        " load average before the run 1.50, 1.25, 1.00 (1, 5, 15 min)."
    )
    regenerated = report.header(
        {
            "date": "d",
            "command": "make bench",
            "machine": "m",
            "postgres": "15",
            "load_before": [1.0, 1.0, 1.0],
            "seconds": 823.0,
            "regenerated": "r",
        }
    )
    assert regenerated.endswith(
        "(1, 5, 15 min); the run took 14 min (this table regenerated from bench/results/ on r)."
    )


def test_table_cells_cannot_break_the_table() -> None:
    table = report.markdown(
        {
            "date": "d",
            "command": "c",
            "machine": "m",
            "postgres": None,
            "load_before": None,
            "benchmarks": {},
        },
        [Row("b", "a | b", "1\n2", "r", "g", None)],
    )
    assert "| b | a \\| b | 1 2 | r | g | - |" in table


def test_problems_of_the_run_get_a_row_of_their_own() -> None:
    rows = report.rows_side_by_side(
        _result(twenty_spread=None, problems=["twenty requests over 20 s: not finished"])
    )
    problem = _row(rows, "problems in this run")
    assert (problem.reference, problem.met) == ("twenty requests over 20 s: not finished", False)
    assert not [row for row in rows if row.figure.startswith("20 requests POSTed over")]
