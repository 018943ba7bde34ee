"""Every benchmark in turn, then one report: bench/results/latest.json and latest.md,
and the generated part of README.md's Performance section.

Runs each benchmark module as a subprocess (`python -m bench.<name>`), one after
another so they do not share the machine's cores, and reads the
bench/results/<name>.json it writes. A module that does not exist is skipped with
a note; one that fails or writes no fresh result is reported as such (and the
report exits non-zero), the others still run. The Markdown table puts each
figure beside its reference (the bare loop, the CU minimum) and its goal, headed
by the date, the machine (cores, memory, Python, PostgreSQL) and the load
average before the run. The same Markdown replaces what stands between
`<!-- bench:begin -->` and `<!-- bench:end -->` in README.md.

Run: .venv/bin/python -m bench.report [--only NAME ...] [--collect-only] [--no-readme]
     (`make bench` runs it; --only runs some benchmarks and takes the others' last
     results from bench/results/; --collect-only rebuilds the report and README's
     table from the JSON files already in bench/results/ without running anything)
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
README = BENCH_DIR.parent / "README.md"
BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"
BENCHMARKS = (
    "side_by_side",
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
    fresh = result_path.exists() and result_path.stat().st_mtime > before
    if code != 0:
        # A benchmark that records its problems and exits non-zero still has figures.
        result = json.loads(result_path.read_text()) if fresh else None
        partial = "; its rows are from the result it wrote" if fresh else ""
        return Outcome(name, "failed", seconds, f"exit code {code}{partial}", result=result)
    if not fresh:
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


def _span(summary: dict[str, Any] | None, unit: str = "", digits: int = 1) -> str:
    """A figure over interleaved runs: its median and (min-max), e.g. `3.7 s (3.6-3.9)`."""
    if not summary or summary.get("median") is None:
        return "n/a"

    def fmt(value: float) -> str:
        return f"{value:,.{digits}f}" if abs(value) < 1000 else f"{value:,.0f}"

    low, high = summary["min"], summary["max"]
    runs = f" ({fmt(low)}-{fmt(high)})" if len(summary.get("runs", [])) > 1 else ""
    return f"{fmt(summary['median'])} {unit}".strip() + runs


def _mib(value: Any) -> str:
    return "n/a" if value is None else f"{value:,.0f} MiB"


def _times(value: Any) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _median(summary: dict[str, Any] | None) -> Any:
    return (summary or {}).get("median")


def rows_side_by_side(r: dict[str, Any]) -> list[Row]:
    """One chain, one PostgreSQL: the bare pipeline, logfill (one request, twenty at
    once, twenty spread), Ponder. Medians with the range over the interleaved runs."""
    s, goals = r.get("settings", {}), r.get("goals", {})
    bare, logfill = r.get("bare", {}), r.get("logfill", {})
    speed, pg = r.get("speed_bare_over_logfill"), r.get("pg_cpu_per_match_logfill_over_bare")
    speed_goal = goals.get("speed_bare_over_logfill", 0.8)
    pg_goal = goals.get("pg_cpu_per_match_logfill_over_bare", 2.0)
    cu_goal = goals.get("twenty_cu_vs_one", 1.1)
    rss_goal = goals.get("twenty_peak_rss_mib", 200)
    runs = len((speed or {}).get("runs", []))
    layout = (
        f"{_n(s.get('logs'))} logs, {_n(s.get('blocks'))} blocks, "
        f"{_n(s.get('calls'))} calls of {_n(s.get('span_blocks'))} blocks, "
        f"{s.get('in_flight')} in flight"
    )
    rows = [
        Row("side_by_side", f"bare pipeline: eth_getLogs, COPY, INSERT ON CONFLICT ({layout})",
            f"{_span(bare.get('seconds'), 's', 2)}; {_span(bare.get('logs_per_s'), 'logs/s')}",
            f"PostgreSQL CPU {_span(bare.get('pg_cpu_seconds'), 's', 2)}; "
            f"{_span(bare.get('cu'), 'CU')}", "(the reference)", None),
        Row("side_by_side", "logfill, one backfill: POST to completed (api + worker processes, "
            f"tick {s.get('tick_seconds')} s)",
            f"{_span(logfill.get('seconds'), 's', 2)}; "
            f"{_span(logfill.get('matches_per_s'), 'matches/s')}",
            f"worker CPU {_span(logfill.get('worker_cpu_seconds'), 's', 2)}, peak RSS "
            f"{_span(logfill.get('worker_peak_rss_mib'), 'MiB', 0)}; PostgreSQL CPU "
            f"{_span(logfill.get('pg_cpu_seconds'), 's', 2)}", "-", None),
        Row("side_by_side", f"speed: bare time / logfill time ({runs} interleaved pairs)",
            _span(speed, "", 2),
            f"bare {_n(_median(bare.get('seconds')), 's')}, logfill "
            f"{_n(_median(logfill.get('seconds')), 's')} (medians)",
            f">= {speed_goal:g}", _at_least(_median(speed), speed_goal)),
        Row("side_by_side", "PostgreSQL CPU per match: logfill / bare", _span(pg, "", 2),
            f"logfill {_n(_median(logfill.get('pg_cpu_seconds')), 's')} for "
            f"{_n(s.get('logs'))} matches, bare {_n(_median(bare.get('pg_cpu_seconds')), 's')} "
            f"for {_n(s.get('logs'))} logs (medians)", f"<= {pg_goal:g}",
            _at_most(_median(pg), pg_goal)),
        Row("side_by_side", "CU of one backfill (counting proxy)",
            _span(logfill.get("cu"), "CU"),
            f"windows table {_span(logfill.get('cu_windows'), 'CU')}; bare pipeline "
            f"{_span(bare.get('cu'), 'CU')}", "-", None),
    ]  # fmt: skip
    burst, spread = r.get("twenty_burst"), r.get("twenty_spread")
    if burst:
        posts = burst.get("post_seconds")
        rows += [
            Row("side_by_side", f"20 requests from 5 workspaces, POSTed within "
                f"{'n/a' if posts is None else f'{posts:.3f}'} s: CU x one request",
                _times(burst.get("cu_vs_one")),
                f"{_n(burst.get('cu'), 'CU')} vs one request's {_n(burst.get('cu_one'), 'CU')};"
                f" windows table "
                f"{_n(burst.get('cu_windows'), 'CU')}", f"<= {cu_goal:g}x",
                _at_most(burst.get("cu_vs_one"), cu_goal)),
            Row("side_by_side", "20 requests at once: first POST to all completed",
                f"{_n(burst.get('seconds'), 's')}; {_n(burst.get('matches_per_s'), 'matches/s')}",
                f"{_n(burst.get('matches'))} matches; PostgreSQL CPU "
                f"{_n(burst.get('pg_cpu_seconds'), 's')}, worker CPU "
                f"{_n(burst.get('worker_cpu_seconds'), 's')}", "-", None),
            Row("side_by_side", "20 requests at once: worker peak RSS",
                _mib(burst.get("worker_peak_rss_mib")),
                f"one request {_span(logfill.get('worker_peak_rss_mib'), 'MiB', 0)}",
                f"<= {rss_goal} MiB", _at_most(burst.get("worker_peak_rss_mib"), rss_goal)),
        ]  # fmt: skip
    if spread:
        rows.append(
            Row("side_by_side", f"20 requests POSTed over {_n(spread.get('post_seconds'), 's')}: "
                "CU x one request", _times(spread.get("cu_vs_one")),
                f"{_n(spread.get('cu'), 'CU')}; all completed in {_n(spread.get('seconds'), 's')}, "
                f"{_n(spread.get('matches_per_s'), 'matches/s')}, peak RSS "
                f"{_mib(spread.get('worker_peak_rss_mib'))}", "-", None)
        )  # fmt: skip
    rows.append(rows_ponder(r.get("ponder") or {}, logfill))
    if r.get("problems"):
        rows.append(
            Row("side_by_side", "problems in this run", "-", "; ".join(r["problems"]), "-", False)
        )
    return rows


def rows_ponder(ponder: dict[str, Any], logfill: dict[str, Any]) -> Row:
    figure = "Ponder: `ponder start` to /ready (same contracts, range, span, proxy, server)"
    if ponder.get("status") != "ok":
        reason = ponder.get("reason", "not run")
        return Row("side_by_side", figure, "skipped", f"skipped: {reason}", "-", None)
    one = (logfill.get("cu") or {}).get("median")
    cu = ponder.get("cu")
    vs = f" ({cu / one:.1f}x logfill's)" if cu is not None and one else ""
    return Row(
        "side_by_side",
        figure.replace("Ponder:", f"Ponder {ponder.get('version')}:"),
        f"{_n(ponder.get('seconds'), 's')}",
        f"{_n(cu, 'CU')}{vs}; {_n(ponder.get('rows'))} rows; PostgreSQL CPU "
        f"{_n(ponder.get('pg_cpu_seconds'), 's')}, node CPU {_n(ponder.get('cpu_seconds'), 's')}, "
        f"peak RSS {_mib(ponder.get('peak_rss_mib'))}",
        "-",
        None,
    )


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
            f"windows' peak RSS, {run['logs_per_call']:,} logs a call"
            + (f", {run['requests']} requests at once" if run.get("requests", 1) > 1 else ""),
            _n(run.get("peak_rss_mib"), "MiB"),
            f"{_n(run.get('seconds'), 's')} for {_n(run.get('matches'))} matches",
            f"< {goal} MiB",
            _at_most(run.get("peak_rss_mib"), goal),
        )
        for run in r.get("runs", [])
    ]


EXTRACTORS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "side_by_side": rows_side_by_side,
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


def postgres_version(outcomes: list[Outcome]) -> str | None:
    """The server of LOGFILL_DATABASE_URL, asked; else what the side-by-side recorded."""
    url = os.environ.get("LOGFILL_DATABASE_URL")
    if url:
        try:
            import asyncio

            import asyncpg

            async def ask() -> str:
                conn = await asyncpg.connect(url, timeout=5)
                try:
                    return str(await conn.fetchval("SHOW server_version"))
                finally:
                    await conn.close()

            return asyncio.run(ask())
        except Exception:  # no server now: fall back on what a benchmark recorded
            pass
    for outcome in outcomes:
        if outcome.result and outcome.result.get("postgres_version"):
            return str(outcome.result["postgres_version"])
    return None


def result_date(result: dict[str, Any] | None) -> str | None:
    if not result:
        return None
    date = result.get("date") or result.get("when")
    return str(date) if date else None


def _met(value: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "-"}[value]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def header(report: dict[str, Any]) -> str:
    """What was measured when, where and under which load."""
    load = report.get("load_before")
    load_text = (
        "load average before the run " + ", ".join(f"{x:.2f}" for x in load) + " (1, 5, 15 min)"
        if load
        else "load average before the run unknown"
    )
    postgres = report.get("postgres") or "unknown"
    regenerated = (
        f" (this table regenerated from bench/results/ on {report['regenerated']})"
        if report.get("regenerated")
        else ""
    )
    took = f"; the run took {report['seconds'] / 60:.0f} min" if report.get("seconds") else ""
    return (
        f"Measured {report['date']} with `{report['command']}` on {report['machine']}, "
        f"PostgreSQL {postgres}; {load_text}{took}{regenerated}."
    )


def markdown(report: dict[str, Any], rows: list[Row]) -> str:
    lines = [
        header(report),
        "",
        "| benchmark | figure | measured | reference | goal | met? |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = (row.benchmark, row.figure, row.measured, row.reference, row.goal, _met(row.met))
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    notes = [
        f"- {n}: {o['status']} ({o['note']})" for n, o in report["benchmarks"].items() if o["note"]
    ]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def replace_generated(text: str, generated: str) -> str:
    """`text` with what stands between the bench markers replaced by `generated`."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < 0 or end < start:
        raise ValueError(f"README.md needs {BEGIN} and then {END} in its Performance section")
    if text.find(BEGIN, start + 1) >= 0 or text.find(END, end + 1) >= 0:
        raise ValueError("README.md holds the bench markers more than once")
    body = (
        "<!-- Generated by bench/report.py (`make bench`, `make bench ARGS=--collect-only`);"
        " edits here are overwritten. -->\n\n" + generated.strip("\n")
    )
    return text[: start + len(BEGIN)] + "\n" + body + "\n" + text[end:]


def write_readme(generated: str, path: Path = README) -> None:
    path.write_text(replace_generated(path.read_text(), generated))


def previous_report() -> dict[str, Any]:
    path = RESULTS / "latest.json"
    try:
        loaded: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these")
    parser.add_argument("--collect-only", action="store_true", help="run nothing; report")
    parser.add_argument(
        "--no-readme", action="store_true", help="leave README.md's Performance table alone"
    )
    args = parser.parse_args(argv)
    load_before = list(os.getloadavg())
    started = datetime.now(UTC).isoformat(timespec="seconds")
    run_names = [] if args.collect_only else (args.only or list(BENCHMARKS))
    outcomes = [run_benchmark(n) if n in run_names else collect(n) for n in BENCHMARKS]
    for outcome in outcomes:  # results from an earlier run say when they were measured
        if outcome.status == "collected" and run_names:
            outcome.note = f"last result, measured {result_date(outcome.result) or 'earlier'}"
    rows = [row for outcome in outcomes for row in rows_of(outcome)]
    given = sys.argv[1:] if argv is None else argv
    report: dict[str, Any] = {
        "date": started,
        "machine": machine(),
        "postgres": postgres_version(outcomes),
        "load_before": load_before,
        "seconds": round(sum(o.seconds for o in outcomes), 1),
        "command": f"make bench ARGS='{shlex.join(given)}'" if given else "make bench",
        "benchmarks": {
            o.name: {k: v for k, v in asdict(o).items() if k != "name"} for o in outcomes
        },
        "rows": [asdict(row) for row in rows],
    }
    if args.collect_only:  # the figures are those of the run that measured them
        before = previous_report()
        for key in ("date", "machine", "postgres", "load_before", "seconds", "command"):
            if before.get(key):
                report[key] = before[key]
        report["regenerated"] = started
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report, rows)
    (RESULTS / "latest.md").write_text(table)
    print("\n" + table)
    print(f"written: {RESULTS / 'latest.json'} and {RESULTS / 'latest.md'}")
    if not args.no_readme:
        write_readme(table)
        print(f"written: the generated part of {README}'s Performance section")
    return 1 if any(o.status in ("failed", "stale") for o in outcomes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
