"""Render the monitoring mixin into the rule file and dashboard the chart and docs ship.

    .venv/bin/python scripts/build_mixin.py           # write monitoring/alerts.yaml, dashboard.json
    .venv/bin/python scripts/build_mixin.py --check   # exit 1, naming them, if they are stale

The mixin (monitoring/mixin/mixin.libsonnet) is the source; its default _config renders
the files committed next to it. Jsonnet comes from the `jsonnet` package on PyPI.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import _jsonnet
import yaml

REPO = Path(__file__).resolve().parent.parent
MIXIN = REPO / "monitoring" / "mixin" / "mixin.libsonnet"
RULES_FILE = REPO / "monitoring" / "alerts.yaml"
DASHBOARD_FILE = REPO / "monitoring" / "dashboard.json"
DASHBOARD = "iot-connectivity.json"

HEADER = """\
# Alert and recording rules for aws-iot-connectivity-exporter (Prometheus rule-file format).
#
# GENERATED from monitoring/mixin (the source, with a comment on every rule) by
# scripts/build_mixin.py with the mixin's default _config: edit the mixin, not this file.
# One copy serves standalone Prometheus (`rule_files:`) and the Helm chart's
# PrometheusRule. Thresholds, their reasons and a runbook for every alert are in
# docs/alerts.md; each runbook_url points at its alert's section there. To change the
# selectors, thresholds or objective, render the mixin with your own _config
# (docs/alerts.md#the-mixin).
"""

# Jsonnet writes an object's fields in alphabetical order; a rule file reads best in
# Prometheus's own order.
RULE_KEYS = ("record", "alert", "expr", "for", "labels", "annotations")
ANNOTATION_KEYS = ("summary", "description", "runbook_url")


class _RuleDumper(yaml.SafeDumper):
    """Block lists indented under their key, and multi-line text as literal blocks."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_RuleDumper.add_representer(str, _text)


def _ordered(mapping: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    unknown = set(mapping) - set(keys)
    if unknown:
        raise ValueError(f"unexpected keys {sorted(unknown)} in {mapping}")
    return {key: mapping[key] for key in keys if key in mapping}


def _rule(rule: dict[str, Any]) -> dict[str, Any]:
    out = _ordered(rule, RULE_KEYS)
    if "annotations" in out:
        out["annotations"] = _ordered(out["annotations"], ANNOTATION_KEYS)
    return out


def _group(group: dict[str, Any]) -> dict[str, Any]:
    out = _ordered(group, ("name", "interval", "rules"))
    out["rules"] = [_rule(rule) for rule in out["rules"]]
    return out


def render(mixin: Path = MIXIN) -> dict[Path, str]:
    """The files the mixin renders to, by path, as text."""
    snippet = (
        f"local m = import {json.dumps(str(mixin))};"
        " {rules: m.prometheusRules, alerts: m.prometheusAlerts, dashboards: m.grafanaDashboards}"
    )
    built = json.loads(_jsonnet.evaluate_snippet("build_mixin", snippet))
    groups = [_group(g) for g in built["rules"]["groups"] + built["alerts"]["groups"]]
    rules = yaml.dump(
        {"groups": groups}, Dumper=_RuleDumper, sort_keys=False, width=10_000, allow_unicode=True
    )
    dashboard = json.dumps(built["dashboards"][DASHBOARD], indent=2) + "\n"
    return {RULES_FILE: HEADER + rules, DASHBOARD_FILE: dashboard}


def stale(rendered: dict[Path, str]) -> list[Path]:
    """The files whose text is not what the mixin renders."""
    return [path for path, text in rendered.items() if path.read_text(encoding="utf-8") != text]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="fail if the files are stale")
    args = parser.parse_args()
    rendered = render()
    if args.check:
        out_of_date = stale(rendered)
        for path in out_of_date:
            print(f"{path.relative_to(REPO)} is stale: run scripts/build_mixin.py", file=sys.stderr)
        return 1 if out_of_date else 0
    for path, text in rendered.items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
