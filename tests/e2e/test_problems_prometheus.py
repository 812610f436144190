"""metrics.per_thing: problems as Prometheus reads it: a per-thing counter that appears, goes
and comes back, and the queries docs/metrics.md gives for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.promstack import scalar
from tests.support.stack import EXPORTER_JOB, fleet_stack

pytestmark = pytest.mark.slow

WINDOW_SECONDS = 3
# docs/metrics.md: a thing's disconnects over a range, counting the whole value of a
# series newer than the range (as the IoTThingFlapping rule does).
WHOLE = (
    "sum by (thing_name) ("
    '(increase(iot_thing_disconnects_total{{thing_name="{name}"}}[{range}])'
    ' and iot_thing_disconnects_total{{thing_name="{name}"}} offset {range})'
    ' or (iot_thing_disconnects_total{{thing_name="{name}"}}'
    ' unless iot_thing_disconnects_total{{thing_name="{name}"}} offset {range}))'
)


def test_a_listed_things_counter_carries_on_across_leaving_and_coming_back(
    tmp_path: Path,
) -> None:
    sections = {"metrics": {"per_thing": "problems", "problems_window": f"{WINDOW_SECONDS}s"}}
    with fleet_stack(
        tmp_path,
        things=4,
        sections=sections,
        ready=f'iot_exporter_problem_things{{job="{EXPORTER_JOB}"}}',
    ) as stack:
        sim, prometheus = stack.sim, stack.prometheus
        name = sim.fleet.thing_names()[1]
        counter = f'iot_thing_disconnects_total{{thing_name="{name}",reason="AUTH_ERROR"}}'
        # A healthy fleet: no per-thing series at all.
        assert prometheus.query("count(iot_thing_connected)") == []

        sim.fleet.disconnect(name, reason="AUTH_ERROR")
        prometheus.wait_for(counter, lambda r: bool(r) and scalar(r) == 1)
        # Its first sample is already 1: a bare increase() cannot see that disconnect...
        prometheus.wait_for(f"increase({counter}[1m])", lambda r: bool(r) and scalar(r) == 0)
        # ...and the documented query takes the new series' whole value.
        assert scalar(prometheus.query(WHOLE.format(name=name, range="1h"))) == 1

        # Back, then off the page once the window has passed.
        sim.fleet.connect(name)
        prometheus.wait_for(f'iot_thing_connected{{thing_name="{name}"}}', lambda r: scalar(r) == 1)
        prometheus.wait_for(counter, lambda r: r == [], timeout=30)

        # Dropping again lists it again, carrying on from its total, not from 0.
        sim.fleet.disconnect(name, reason="AUTH_ERROR")
        prometheus.wait_for(counter, lambda r: bool(r) and scalar(r) == 2)
        assert scalar(prometheus.query(f"resets({counter}[1m])")) == 0
        # Across the gap, increase() adds the second disconnect (give or take Prometheus's
        # extrapolation to the range's ends), and the documented query both.
        added = scalar(prometheus.query(f"increase({counter}[1m])"))
        assert 0.9 <= added <= 1.3
        assert scalar(prometheus.query(WHOLE.format(name=name, range="1h"))) == 2
        # The fleet counter never left: it has both.
        assert scalar(prometheus.query('iot_disconnects_total{reason="AUTH_ERROR"}')) == 2
