"""deploy/monitoring: the Prometheus alerts and the Grafana dashboard an operator loads.

A rule or a panel over a metric logfill does not export stays silent for ever, so
every name they use is checked against what the processes register. promtool (Debian:
`apt-get install prometheus`) checks the rules and runs alerts_test.yaml, where each
alert fires on a fault and stays quiet on a healthy or stale series; without it those
tests skip, except under .ci/run, which installs it (`LOGFILL_REQUIRE_TOOLS`).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]
from prometheus_client import REGISTRY

from tests.support.tools import require_tool

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
ALERTS = MONITORING / "alerts.yaml"
ALERT_TESTS = MONITORING / "alerts_test.yaml"
DASHBOARD = MONITORING / "grafana-dashboard.json"

# The series a metric family exposes, by type (prometheus_client's text format).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
    "unknown": ("",),
}
# Series Prometheus makes itself for every target.
SCRAPE_SERIES = {"up"}

PROMQL_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring",
    "group_left", "group_right", "offset", "bool", "inf", "nan",
}  # fmt: skip
STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
MATCHERS = re.compile(r"\{[^}]*\}")
RANGES = re.compile(r"\[[^\]]*\]")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
IDENTIFIER = re.compile(r"(?<![\w.$:])[A-Za-z_:][\w:]*+(?!\s*\()")
LABEL_VALUES = re.compile(r"label_values\(\s*([A-Za-z_:][\w:]*)\s*,")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers left once strings,
    label matchers, ranges and grouping labels are gone, other than function names
    (followed by a parenthesis) and keywords."""
    for pattern in (STRINGS, MATCHERS, RANGES, GROUPING):
        expr = pattern.sub(" ", expr)
    return {name for name in IDENTIFIER.findall(expr) if name.lower() not in PROMQL_KEYWORDS}


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (chain_id) (rate(logfill_cu_spent_total{chain_id=~"$chain_id"}[5m]))',
         {"logfill_cu_spent_total"}),
        ("max by (chain_id) (a_gauge) == 1 unless on (chain_id) (b_total offset 15m > 0)",
         {"a_gauge", "b_total"}),
        ("histogram_quantile(0.95, sum by (le) (rate(h_bucket[$__rate_interval])))",
         {"h_bucket"}),
        ('x{outcome="error"} / ignoring (outcome) group_left y and on (instance, job) (up == 1)',
         {"x", "y", "up"}),
        ("0 * max by (chain_id) (g) or on (chain_id) vector(1e3)", {"g"}),
    ],
)  # fmt: skip
def test_metric_names_are_read_from_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


@pytest.fixture(scope="module")
def exported() -> set[str]:
    """Every series name logfill's processes can expose: the registry once the
    modules that build the API and the worker are imported."""
    import api.app  # noqa: F401  (registers the API's metrics)
    import indexer.worker  # noqa: F401  (registers the windows' and webhooks' metrics)

    return {
        family.name + suffix for family in REGISTRY.collect() for suffix in SUFFIXES[family.type]
    }


@pytest.fixture(scope="module")
def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    board: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return board


def chart_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Panels that draw something: rows only hold others (collapsed rows inside)."""
    found = []
    for panel in board["panels"]:
        if panel["type"] == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def dashboard_queries(board: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in chart_panels(board) for target in panel["targets"]]


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_tool("promtool", "Debian: `apt-get install prometheus`")


def run_promtool(promtool: str, *args: str | Path) -> None:
    done = subprocess.run(
        [promtool, *map(str, args)], cwd=MONITORING, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"promtool {' '.join(map(str, args))}:\n{done.stdout}{done.stderr}"


# -- alerts --------------------------------------------------------------------------


def test_the_alert_rules_load_in_prometheus(promtool: str) -> None:
    run_promtool(promtool, "check", "rules", ALERTS)


def test_each_alert_fires_on_its_fault_and_stays_quiet_when_healthy(promtool: str) -> None:
    run_promtool(promtool, "test", "rules", ALERT_TESTS)


def test_each_alert_has_a_test_where_it_fires(alert_rules: list[dict[str, Any]]) -> None:
    cases = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    fired = {
        check["alertname"]
        for case in cases
        for check in case.get("alert_rule_test", [])
        if check.get("exp_alerts")
    }
    assert {rule["alert"] for rule in alert_rules} <= fired


def test_alerts_live_in_the_logfill_group() -> None:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    assert [group["name"] for group in groups] == ["logfill"]


def test_each_alert_says_how_urgent_it_is_and_what_to_do(
    alert_rules: list[dict[str, Any]],
) -> None:
    for rule in alert_rules:
        assert "for" in rule, rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert "README.md" in rule["annotations"]["description"], rule["alert"]


def test_the_readme_places_alerts_point_to_exist(alert_rules: list[dict[str, Any]]) -> None:
    """Descriptions send the operator to `README.md, Section, "Paragraph"`."""
    readme = (MONITORING.parents[1] / "README.md").read_text()
    headings = set(re.findall(r"^#+ (.+)$", readme, re.MULTILINE))
    for rule in alert_rules:
        description = rule["annotations"]["description"]
        sections = [s.strip() for s in re.findall(r"README\.md, ([\w ]+)", description)]
        assert sections and set(sections) <= headings, (rule["alert"], sections)
        for paragraph in re.findall(r'"([^"]+)"', description):
            assert paragraph in readme, (rule["alert"], paragraph)


def test_alerts_use_only_metrics_logfill_exports(
    alert_rules: list[dict[str, Any]], exported: set[str]
) -> None:
    used = {name for rule in alert_rules for name in metric_names(rule["expr"])}
    assert used, "no metric found in the alert rules"
    assert used - exported - SCRAPE_SERIES == set()


def test_the_readme_explains_each_alert(alert_rules: list[dict[str, Any]]) -> None:
    readme = (MONITORING / "README.md").read_text()
    assert [rule["alert"] for rule in alert_rules if rule["alert"] not in readme] == []


# -- dashboard -----------------------------------------------------------------------


def test_the_dashboard_is_grafana_json_with_datasource_and_chain_variables(
    dashboard: dict[str, Any],
) -> None:
    assert isinstance(dashboard["schemaVersion"], int)
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["chain_id"]["datasource"]["uid"] == "${datasource}"


def test_every_panel_queries_the_chosen_prometheus(dashboard: dict[str, Any]) -> None:
    panels = chart_panels(dashboard)
    assert panels
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target.get("datasource", panel["datasource"])["uid"] == "${datasource}"


def test_the_dashboard_uses_only_metrics_logfill_exports(
    dashboard: dict[str, Any], exported: set[str]
) -> None:
    used = {name for expr in dashboard_queries(dashboard) for name in metric_names(expr)}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            used |= set(LABEL_VALUES.findall(variable["query"]["query"]))
    assert used, "no metric found in the dashboard"
    assert used - exported == set()


def test_the_dashboard_queries_are_valid_promql(
    dashboard: dict[str, Any], promtool: str, tmp_path: Path
) -> None:
    """Each query, its Grafana variables filled in, checked as a recording rule."""
    filled = [
        expr.replace("$__rate_interval", "5m").replace("$chain_id", ".*")
        for expr in dashboard_queries(dashboard)
    ]
    rules = [{"record": f"panel_query_{n}", "expr": expr} for n, expr in enumerate(filled)]
    path = tmp_path / "dashboard_queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run_promtool(promtool, "check", "rules", path)
