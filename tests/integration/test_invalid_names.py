"""Names AWS could not have issued, fed in through a discovery list and an index page.

The simulator adds them to every listing (its `foreign_names` fault), as a faulty proxy or a
future API might. The exporter refuses each, counts it, logs it once, and serves a page
that promtool still passes with every real thing on it.
"""

from __future__ import annotations

import logging

import pytest

from tests.support.harness import Harness, HarnessFactory, Samples, connected_by_thing, quiet, value
from tests.support.stack import promtool

# A quote, a backslash and a newline: each would break a label value written unescaped.
FOREIGN = ('pump"7', "valve\\2", 'gauge\nfake_metric{x="1"} 1')
GROUP = "group-1-1"


def members(h: Harness) -> set[str]:
    return {n for n in h.sim.fleet.thing_names() if GROUP in h.sim.fleet.record(n).groups}


def assert_page_is_whole(h: Harness, samples: Samples, source: str) -> None:
    page = h.exporter.payload().plain.decode()
    checked = promtool("check", "metrics", stdin=page)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert set(connected_by_thing(samples)) == members(h)
    assert not any(name in page for name in ('pump"7', "valve\\2", "fake_metric"))
    counted = value(samples, "iot_exporter_source_invalid_thing_names_total", source=source)
    assert counted == len(FOREIGN)


@pytest.mark.parametrize(
    ("mode", "operation"),
    [("live", "ListThingsInThingGroup"), ("index", "SearchIndex")],
    ids=["discovery-list", "index-page"],
)
def test_names_aws_could_not_issue_never_reach_the_page(
    harness: HarnessFactory, caplog: pytest.LogCaptureFixture, mode: str, operation: str
) -> None:
    h = harness(
        quiet(8, seed=95),
        things=[],
        sections={"discovery": {"interval": "5m", "thing_groups": [GROUP]}},
        mode=mode,
    )
    h.sim.faults.set(foreign_names=FOREIGN, operations=[operation])
    source = f"thing_group:{GROUP}"
    with caplog.at_level(logging.WARNING, logger="exporter.sources.reports"):
        samples = h.cycle()
        assert_page_is_whole(h, samples, source)
        # A second pass meets them again: counted again, not logged again.
        samples = h.cycle(advance=300)
    assert value(samples, "iot_exporter_source_invalid_thing_names_total", source=source) == 6
    [logged] = [r for r in caplog.records if "could not have issued" in r.getMessage()]
    # Shown as Python writes them, so the log line stays one line.
    assert "\n" not in logged.__dict__["names"]
    assert "'pump\"7'" in logged.__dict__["names"]
    assert logged.__dict__["count"] == len(FOREIGN)
