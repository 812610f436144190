"""The Grafana dashboard: well-formed, and every query returns data from a real stack.

No Grafana server runs here, so the test does what Grafana would: it takes each
PromQL expression of the dashboard (panel targets and variable queries), fills
in the template variables and Grafana's built-ins, and runs it against a real
Prometheus scraping the exporter, which polls the simulator and consumes lifecycle
events from moto's SQS server (the simulator's topic rule feeds the queue). A typo
in a metric or label name, or a join that matches nothing, shows up as an empty
result.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from iot_simulator.topic_rule import RuleFaults, TopicRule
from tests.support.paths import CHART_FILES, DASHBOARD_FILE
from tests.support.promstack import Result
from tests.support.sqs import MotoServer
from tests.support.stack import EXPORTER_JOB, FleetStack, fleet_stack, rules_without_for

pytestmark = pytest.mark.slow

DASHBOARD: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
VARIABLES = {v["name"]: v for v in DASHBOARD["templating"]["list"]}

# What Grafana substitutes for its built-ins, scaled to a stack that scrapes every
# second and has run for well under a minute when the queries run.
BUILTINS = {
    "__rate_interval": "30s",
    "__interval": "5s",
    "__interval_ms": "5000",
    "__range": "10m",
    "__range_s": "600",
    "__range_ms": "600000",
}
THING = "thing-00002"  # disconnected with AUTH_ERROR by the fixture; site plant-a
SITES = {f"thing-{i:05d}": ("plant-a" if i <= 3 else "plant-b") for i in range(1, 7)}
GHOST = "ghost-thing"  # configured, but absent from the simulated account
MISMATCHED = "thing-00005"  # reconnects under another client ID (exclusive association)
REFUSED = "thing-00006"  # a connect attempt of it is refused
# Discovery and aggregates, so the Sources and Fleet aggregates panels have data. The
# sensor type names things already in the static list (no new things to count), and
# its cap of 1 refuses the second, so the cap's series is above 0.
CONFIG_EXTRA: dict[str, object] = {
    "discovery": {"interval": "2s", "thing_types": [{"name": "sensor", "max_things": 1}]},
    "aggregates": {"interval": "2s", "queries": [{"name": "all", "by": ["thingTypeName"]}]},
    # Segments by the configured site label, for the rollup panels; sessions' details.
    "metrics": {"rollup_by": ["site"], "session_details": True},
}

# Two settings of the variables: everything selected, and one group selected.
VARIANTS: dict[str, dict[str, str]] = {
    "all": {"job": EXPORTER_JOB, "group_label": "site", "group": ".*", "thing": THING},
    "one-group": {"job": EXPORTER_JOB, "group_label": "site", "group": "plant-a", "thing": THING},
}

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Replace $var, ${var}, ${var:fmt} and [[var]] as Grafana would; fail on unknown ones."""

    def one(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        if name.isdigit():
            return match.group(0)  # label_replace's $1: no variable, and Grafana leaves it
        if name in values:
            return values[name]
        if name in BUILTINS:
            return BUILTINS[name]
        raise KeyError(f"unknown variable ${name} in {text!r}")

    return _VARIABLE.sub(one, text)


def data_panels() -> list[dict[str, Any]]:
    return [p for p in DASHBOARD["panels"] if p["type"] != "row"]


@dataclass(frozen=True)
class Query:
    where: str
    expr: str
    instant: bool


def panel_queries() -> list[Query]:
    return [
        Query(f"panel {p['id']} {p['title']!r} {t['refId']}", t["expr"], bool(t.get("instant")))
        for p in data_panels()
        for t in p["targets"]
    ]


def variable_queries() -> list[tuple[str, str, str]]:
    """(variable name, series selector, label) of every label_values() variable."""
    out = []
    for var in DASHBOARD["templating"]["list"]:
        if var["type"] != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        match = re.fullmatch(r"label_values\((.+),\s*([$\w]+)\)", query.strip(), flags=re.DOTALL)
        assert match, f"variable {var['name']}: unsupported query {query!r}"
        out.append((var["name"], match.group(1), match.group(2)))
    return out


# ------------------------------------------------------------------ structure


def test_dashboard_identity() -> None:
    assert DASHBOARD["uid"] == "iot-connectivity"
    assert DASHBOARD["title"]
    assert DASHBOARD["schemaVersion"] >= 36
    assert set(VARIABLES) >= {"datasource", "job", "group_label", "group", "thing"}
    assert VARIABLES["datasource"]["type"] == "datasource"
    assert VARIABLES["datasource"]["query"] == "prometheus"


def test_panel_ids_are_unique_and_panels_do_not_overlap() -> None:
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], int] = {}
    for panel in DASHBOARD["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps panel {cells[(x, y)]}"
                cells[(x, y)] = panel["id"]


def test_every_panel_has_the_datasource_variable_and_targets() -> None:
    for panel in data_panels():
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["description"], panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]


def test_no_datasource_uid_is_hard_coded() -> None:
    def walk(node: Any) -> Iterator[Any]:
        if isinstance(node, dict):
            if "datasource" in node:
                yield node["datasource"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    for datasource in walk(DASHBOARD):
        assert datasource == DATASOURCE


def test_every_variable_used_is_defined() -> None:
    texts = [q.expr for q in panel_queries()] + [p["title"] for p in DASHBOARD["panels"]]
    texts += [f"{sel} {label}" for _, sel, label in variable_queries()]
    for text in texts:
        substitute(text, dict.fromkeys(VARIABLES, "x"))


def test_chart_ships_this_dashboard_and_these_alerts() -> None:
    """The Helm chart carries the same single copy (a symlink or identical bytes)."""
    assert (CHART_FILES / "dashboard.json").read_bytes() == DASHBOARD_FILE.read_bytes()
    alerts = DASHBOARD_FILE.parent / "alerts.yaml"
    assert (CHART_FILES / "alerts.yaml").read_bytes() == alerts.read_bytes()


# ------------------------------------------------------------------ queries


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetStack]:
    """A fleet in which every panel has something to show.

    Six simulated things in two sites plus one configured thing the account
    lacks (poll errors); THING is disconnected with AUTH_ERROR after the
    exporter first saw it (so it is counted), and its lifecycle event reaches
    the exporter through the topic rule and moto's SQS, twice (a duplicate),
    after one malformed message; a share of requests is throttled.
    """
    things: list[str | Mapping[str, object]] = [
        {"name": name, "labels": {"site": site}} for name, site in SITES.items()
    ]
    things.append({"name": GHOST, "labels": {"site": "plant-b"}})
    with MotoServer() as moto:
        queue_url = moto.queue("lifecycle")
        sections = {**CONFIG_EXTRA, "events": {"queue_url": queue_url, "endpoint_url": moto.url}}
        workdir = tmp_path_factory.mktemp("dashboard")
        with fleet_stack(
            workdir,
            things=len(SITES),
            config_things=things,
            sections=sections,
            # The availability panels read the recording rules.
            rule_files=[rules_without_for(workdir / "rules.yaml")],
        ) as running:
            yield _drive(running, moto, queue_url)


def _drive(running: FleetStack, moto: MotoServer, queue_url: str) -> FleetStack:
    prom = running.prometheus
    prom.wait_for(f'iot_thing_connected{{thing_name="{THING}"}} == 1')
    prom.wait_for('iot_exporter_events_queue_messages{state="visible"}')
    rule = TopicRule(
        running.sim.fleet,
        moto.client(),
        queue_url,
        clock=running.clock.now,
        faults=RuleFaults(duplicate_rate=1.0),
    )
    moto.client().send_message(QueueUrl=queue_url, MessageBody="not a lifecycle event")
    running.clock.advance(1)
    running.sim.fleet.disconnect(THING, reason="AUTH_ERROR")
    # A device under another client ID, tied to its thing by the exclusive association,
    # and a connect AWS refuses.
    running.sim.fleet.set_client_id(MISMATCHED, f"{MISMATCHED}-dev", exclusive=True)
    running.sim.fleet.connect(MISMATCHED)
    running.sim.fleet.fail_connect(REFUSED)
    rule.publish()
    running.sim.faults.set(error_rates={"ThrottlingException": 0.2})
    for ready in (
        f'iot_thing_disconnect_reason_info{{thing_name="{THING}",reason="AUTH_ERROR"}}',
        f'increase(iot_thing_disconnects_total{{thing_name="{THING}"}}[1m])',
        'rate(iot_exporter_api_errors_total{error_code="ThrottlingException"}[30s])',
        f'iot_thing_poll_error_info{{thing_name="{GHOST}"}}',
        'iot_fleet_disconnected_things{query="all",reason="AUTH_ERROR"}',
        'iot_exporter_source_things_refused{source="thing_type:sensor"} > 0',
        "iot_exporter_events_applied_total > 0",
        "iot_exporter_events_duplicates_total > 0",
        "sum(iot_exporter_events_malformed_total) > 0",
        "sum(iot_things_client_id_mismatch) > 0",
        f'iot_thing_connect_failures_total{{thing_name="{REFUSED}"}}',
        "iot_segment:availability:ratio_avg30d",
    ):
        prom.wait_for(ready, timeout=45)
    return running


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("query", panel_queries(), ids=lambda q: q.where)
def test_panel_query_returns_data(stack: FleetStack, query: Query, variant: str) -> None:
    expr = substitute(query.expr, VARIANTS[variant])
    result = stack.prometheus.wait_for(expr, timeout=20)
    assert result, f"{query.where}: no data for {expr}"


def _label_values(stack: FleetStack, selector: str, label: str) -> set[str]:
    result: list[Result] = stack.prometheus.wait_for(
        f"count by ({label}) ({selector})",
        lambda r: any(s["metric"].get(label) for s in r),
        timeout=20,
    )
    return {s["metric"][label] for s in result if s["metric"].get(label)}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize(
    ("name", "selector", "label"), variable_queries(), ids=[v[0] for v in variable_queries()]
)
def test_variable_query_returns_values(
    stack: FleetStack, name: str, selector: str, label: str, variant: str
) -> None:
    values = VARIANTS[variant]
    found = _label_values(stack, substitute(selector, values), substitute(label, values))
    expected = {
        "job": {EXPORTER_JOB},
        "group": {"plant-a", "plant-b"},
        "thing": {n for n, s in SITES.items() if values["group"] in (".*", s)},
    }[name]
    assert found == expected


def test_disconnected_things_table_names_thing_reason_and_age(stack: FleetStack) -> None:
    panel = next(p for p in data_panels() if p["title"] == "Things disconnected now (longest 50)")
    expr = substitute(panel["targets"][0]["expr"], VARIANTS["all"])
    [row] = stack.prometheus.query(expr)
    assert row["metric"]["thing_name"] == THING
    assert row["metric"]["reason"] == "AUTH_ERROR"
    assert row["metric"]["site"] == "plant-a"
    assert 3500 < float(row["value"][1]) < 4000  # AWS's clock says: an hour ago


def test_group_filter_narrows_the_fleet(stack: FleetStack) -> None:
    panel = next(p for p in data_panels() if p["title"] == "Things targeted / reporting")
    reporting = panel["targets"][1]["expr"]
    every = stack.prometheus.query(substitute(reporting, VARIANTS["all"]))
    one = stack.prometheus.query(substitute(reporting, VARIANTS["one-group"]))
    assert float(every[0]["value"][1]) == len(SITES)
    assert float(one[0]["value"][1]) == 3


@pytest.mark.parametrize("title", ["Most disconnects in range", "Disconnects of $thing in range"])
def test_a_things_first_disconnect_is_counted(stack: FleetStack, title: str) -> None:
    # The exporter creates a thing's series for a reason at 1, on that first disconnect;
    # a bare increase() over the range would show 0 for it.
    panel = next(p for p in data_panels() if p["title"] == title)
    result = stack.prometheus.query(substitute(panel["targets"][0]["expr"], VARIANTS["all"]))
    by_row = {
        r["metric"].get("thing_name") or r["metric"].get("reason"): float(r["value"][1])
        for r in result
    }
    row = THING if "thing_name" in result[0]["metric"] else "AUTH_ERROR"
    assert by_row[row] == 1, by_row
