"""Every benchmark in turn, then one report: bench/results/latest.json and latest.md.

Runs each benchmark module as a subprocess (`python -m bench.<name>`), one after
another so they do not share the machine's cores, and reads the
bench/results/<name>.json it writes. A module that does not exist is skipped with
a note; one that fails or writes no fresh result is reported as such (and the
report exits non-zero), the others still run. The Markdown table puts each
figure beside its reference (the bare loop, the CU minimum) and its goal.

Run: .venv/bin/python -m bench.report [--only NAME ...] [--collect-only]
     (`make bench` runs it; --collect-only rebuilds the report from the JSON files
     already in bench/results/ without running anything)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
BENCHMARKS = (
    "rpc_scan",
    "backfill_e2e",
    "api_load",
    "webhooks",
    "webhook_drain",
    "event_export",
    "dashboard_pages",
    "worker_memory",
)
# Arguments a benchmark runs with here. The drain's "before" case (the old strict
# order and schedule) takes 5-12 minutes a seed: run it by hand to compare.
ARGUMENTS = {"webhook_drain": ["--cases", "strict,after"]}
TIMEOUT_SECONDS = 30 * 60


@dataclass(frozen=True)
class Row:
    benchmark: str
    figure: str
    measured: str
    reference: str
    goal: str
    met: bool | None  # None: no goal, or not measured


@dataclass
class Outcome:
    name: str
    status: str  # ok, failed, missing, stale, collected
    seconds: float = 0.0
    note: str = ""
    result: dict[str, Any] | None = None


# --- running -------------------------------------------------------------------------


def run_benchmark(name: str) -> Outcome:
    """`python -m bench.<name>`, its output passed through; its fresh JSON result."""
    if not (BENCH_DIR / f"{name}.py").is_file():
        return Outcome(name, "missing", note=f"bench/{name}.py does not exist: skipped")
    result_path = RESULTS / f"{name}.json"
    before = result_path.stat().st_mtime if result_path.exists() else 0.0
    print(f"\n=== bench.{name} ===", flush=True)
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", f"bench.{name}", *ARGUMENTS.get(name, [])],
            cwd=BENCH_DIR.parent,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
        code = proc.returncode
    except subprocess.TimeoutExpired:
        code = -1
    seconds = round(time.monotonic() - started, 1)
    if code != 0:
        return Outcome(name, "failed", seconds, f"exit code {code}")
    if not result_path.exists() or result_path.stat().st_mtime <= before:
        return Outcome(name, "stale", seconds, f"no fresh {result_path.name} written")
    return Outcome(name, "ok", seconds, result=json.loads(result_path.read_text()))


def collect(name: str) -> Outcome:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return Outcome(name, "missing", note=f"no {path.name} in bench/results/")
    return Outcome(name, "collected", result=json.loads(path.read_text()))


# --- rows ------------------------------------------------------------------------------


def _n(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and abs(value) < 100:
        text = f"{value:.1f}"
    else:
        text = f"{value:,.0f}" if isinstance(value, int | float) else str(value)
    return f"{text} {unit}".strip()


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _at_least(value: Any, goal: float) -> bool | None:
    return None if value is None else bool(value >= goal)


def _at_most(value: Any, goal: float) -> bool | None:
    return None if value is None else bool(value <= goal)


def rows_rpc_scan(r: dict[str, Any]) -> list[Row]:
    ratio = r.get("client_vs_bare")
    return [
        Row("rpc_scan", "eth_getLogs scan: fetch, decode, match 50 subscriptions",
            _n(r.get("client_logs_per_s"), "logs/s"),
            f"bare aiohttp+orjson loop {_n(r.get('bare_logs_per_s'), 'logs/s')} "
            f"({_pct(ratio)})", ">= 80% of the bare loop", _at_least(ratio, 0.8)),
        Row("rpc_scan", "web3.py get_logs (for comparison)", _n(r.get("web3_logs_per_s"), "logs/s"),
            "same bare loop", "-", None),
    ]  # fmt: skip


def rows_backfill_e2e(r: dict[str, Any]) -> list[Row]:
    speed, cu = r.get("e2e_vs_bare"), r.get("cu_vs_minimum")
    return [
        Row("backfill_e2e", "backfill end to end: matches committed",
            _n(r.get("e2e_matches_per_s"), "matches/s"),
            f"bare fetch {_n(r.get('bare_logs_per_s'), 'logs/s')} ({_pct(speed)})",
            ">= 50% of the bare loop", _at_least(speed, 0.5)),
        Row("backfill_e2e", "CU efficiency: CU spent", _n(r.get("cu_spent"), "CU"),
            f"minimum {_n(r.get('cu_minimum'), 'CU')} ({_pct(cu)})", "<= 105% of the minimum",
            _at_most(cu, 1.05)),
    ]  # fmt: skip


API_SCENARIOS = {
    "post_fresh": ("POST /v1/backfill, fresh Idempotency-Key", 1000, 50.0),
    "post_replayed": ("POST /v1/backfill, replayed key", 1000, 50.0),
    "get_status": ("GET /v1/backfill/{id}", 4000, None),
}


def rows_api_load(r: dict[str, Any]) -> list[Row]:
    rows = []
    for scenario, (figure, rps_goal, p99_goal) in API_SCENARIOS.items():
        best = r.get("best", {}).get(scenario, {})
        rps, p99 = best.get("rps"), best.get("p99_ms")
        goal = f">= {rps_goal:,} req/s" + (f", p99 <= {p99_goal:.0f} ms" if p99_goal else "")
        met = _at_least(rps, rps_goal)
        if met is not None and p99_goal is not None:
            met = met and bool(_at_most(p99, p99_goal))
        reference = (
            f"p50 {_n(best.get('p50_ms'), 'ms')}, p99 {_n(p99, 'ms')}, "
            f"{_n(best.get('errors'))} errors"
        )
        rows.append(Row("api_load", figure, _n(rps, "req/s"), reference, goal, met))
    return rows


def rows_webhooks(r: dict[str, Any]) -> list[Row]:
    throughput, latency = r.get("throughput", {}), r.get("latency", {})
    goal = r.get("goal_events_per_second", 5000)
    events = throughput.get("events_per_second")
    return [
        Row("webhooks", "signed deliveries to a verifying receiver", _n(events, "events/s"),
            f"{_n(throughput.get('deliveries_per_second'), 'deliveries/s')}, "
            f"{_n(throughput.get('bad_signatures'))} bad signatures",
            f">= {goal:,} events/s", _at_least(events, goal)),
        Row("webhooks", "delivery latency, commit to receipt",
            f"p99 {_n(latency.get('p99_ms'), 'ms')}", f"p50 {_n(latency.get('p50_ms'), 'ms')} at "
            f"{_n(latency.get('rate_deliveries_per_second'), 'deliveries/s')}", "-", None),
    ]  # fmt: skip


def rows_webhook_drain(r: dict[str, Any]) -> list[Row]:
    goal = r.get("goal_seconds", 60)
    settings = r.get("settings", {})
    rows = []
    for case, summary in r.get("cases", {}).items():
        worst = summary.get("max_seconds")
        rows.append(
            Row(
                "webhook_drain",
                f"{_n(settings.get('matches'))} matches, receiver failing "
                f"{_pct(settings.get('fail_rate'))}: drain after completion ({case})",
                f"max {_n(worst, 's')}",
                f"median {_n(summary.get('median_seconds'), 's')} over {summary.get('runs')} runs",
                f"<= {goal} s",
                _at_most(worst, goal),
            )
        )
    return rows


def rows_event_export(r: dict[str, Any]) -> list[Row]:
    """A row per format: events/s at the largest size; RSS growth largest vs smallest."""
    rule = r.get("flat_rule", {})
    goal = (
        f"flat memory: growth at the largest size <= {rule.get('ratio', 1.5)}x the "
        f"smallest's + {rule.get('slack_mib', 20):g} MiB"
    )
    rows = []
    for fmt, flat in r.get("flat", {}).items():
        api, cli = flat.get("api", {}), flat.get("cli", {})
        reference = (
            f"RSS growth at {_n(flat.get('largest'))} vs {_n(flat.get('smallest'))} events: "
            f"API +{_n(api.get('largest_growth_mib'), 'MiB')} vs "
            f"+{_n(api.get('smallest_growth_mib'), 'MiB')} "
            f"(peak {_n(api.get('largest_peak_mib'), 'MiB')}), "
            f"CLI +{_n(cli.get('largest_growth_mib'), 'MiB')} vs "
            f"+{_n(cli.get('smallest_growth_mib'), 'MiB')} "
            f"(peak {_n(cli.get('largest_peak_mib'), 'MiB')})"
        )
        met = None if not api or not cli else bool(api.get("met") and cli.get("met"))
        rows.append(
            Row(
                "event_export",
                f"events export, {fmt.upper()}, {_n(flat.get('largest'))} events",
                _n(flat.get("events_per_second"), "events/s"),
                reference,
                goal,
                met,
            )
        )
    return rows


def rows_dashboard_pages(r: dict[str, Any]) -> list[Row]:
    goal = r.get("goal_p99_ms", 100)
    return [
        Row(
            "dashboard_pages",
            f"dashboard page: {page['page']} ({r.get('history')} requests in history)",
            f"p99 {_n(page.get('p99_ms'), 'ms')}",
            f"p50 {_n(page.get('p50_ms'), 'ms')}",
            f"< {goal} ms at p99",
            _at_most(page.get("p99_ms"), goal),
        )
        for page in r.get("pages", [])
    ]


def rows_worker_memory(r: dict[str, Any]) -> list[Row]:
    goal = r.get("goal_mib", 200)
    return [
        Row(
            "worker_memory",
            f"windows' peak RSS, {run['logs_per_call']:,} logs a call",
            _n(run.get("peak_rss_mib"), "MiB"),
            f"{_n(run.get('seconds'), 's')} for {_n(run.get('matches'))} matches",
            f"< {goal} MiB",
            _at_most(run.get("peak_rss_mib"), goal),
        )
        for run in r.get("runs", [])
    ]


EXTRACTORS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "rpc_scan": rows_rpc_scan,
    "backfill_e2e": rows_backfill_e2e,
    "api_load": rows_api_load,
    "webhooks": rows_webhooks,
    "webhook_drain": rows_webhook_drain,
    "dashboard_pages": rows_dashboard_pages,
    "worker_memory": rows_worker_memory,
    "event_export": rows_event_export,
}


def rows_of(outcome: Outcome) -> list[Row]:
    if outcome.result is None:
        return [Row(outcome.name, f"not measured ({outcome.status})", "-", outcome.note, "-", None)]
    return EXTRACTORS[outcome.name](outcome.result)


# --- report ------------------------------------------------------------------------------


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f", {pages / 2**30:.0f} GiB"
    except (ValueError, OSError):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores{memory}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def _met(value: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "-"}[value]


def markdown(report: dict[str, Any], rows: list[Row]) -> str:
    lines = [
        f"Measured {report['date']} on {report['machine']}, with `{report['command']}`.",
        "",
        "| benchmark | figure | measured | reference | goal | met? |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.benchmark} | {row.figure} | {row.measured} | {row.reference} "
            f"| {row.goal} | {_met(row.met)} |"
        )
    notes = [
        f"- {n}: {o['status']} ({o['note']})" for n, o in report["benchmarks"].items() if o["note"]
    ]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these")
    parser.add_argument("--collect-only", action="store_true", help="run nothing; report")
    args = parser.parse_args(argv)
    names = args.only or list(BENCHMARKS)
    outcomes = [collect(n) if args.collect_only else run_benchmark(n) for n in names]
    rows = [row for outcome in outcomes for row in rows_of(outcome)]
    given = sys.argv[1:] if argv is None else argv
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": f"make bench ARGS='{shlex.join(given)}'" if given else "make bench",
        "benchmarks": {
            o.name: {k: v for k, v in asdict(o).items() if k != "name"} for o in outcomes
        },
        "rows": [asdict(row) for row in rows],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report, rows)
    (RESULTS / "latest.md").write_text(table)
    print("\n" + table)
    print(f"written: {RESULTS / 'latest.json'} and {RESULTS / 'latest.md'}")
    return 1 if any(o.status in ("failed", "stale") for o in outcomes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
