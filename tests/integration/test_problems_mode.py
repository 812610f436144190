"""metrics.per_thing: problems through boto3 against the simulator: the page lists the things
in trouble, keeps them a window after they recover, and stays bounded in a mass outage."""

from __future__ import annotations

from tests.support.harness import Harness, HarnessFactory, connected_by_thing, quiet, value
from tests.support.stack import promtool


def problems_mode(h: Harness) -> dict[str, float]:
    page = h.exporter.payload().plain.decode()
    checked = promtool("check", "metrics", stdin=page)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return connected_by_thing(h.samples())


def test_the_page_lists_things_in_trouble_for_as_long_as_the_window(
    harness: HarnessFactory,
) -> None:
    h = harness(
        quiet(10, seed=101),
        sections={"metrics": {"per_thing": "problems", "problems_window": "10m"}},
    )
    names = h.sim.fleet.thing_names()
    samples = h.cycle()
    assert connected_by_thing(samples) == {}  # a healthy fleet costs no per-thing series
    assert value(samples, "iot_exporter_problem_things") == 0
    assert value(samples, "iot_exporter_max_problem_things") == 10_000
    h.sim.fleet.disconnect(names[3], "CLIENT_ERROR")
    h.sim.fleet.disconnect(names[7])
    h.cycle(advance=60)
    assert problems_mode(h) == {names[3]: 0.0, names[7]: 0.0}
    # Counted as usual, and shown with the thing.
    samples = h.samples()
    counted = value(
        samples, "iot_thing_disconnects_total", thing_name=names[3], reason="CLIENT_ERROR"
    )
    assert counted == 1
    assert value(samples, "iot_disconnects_total", reason="CLIENT_ERROR") == 1
    h.sim.fleet.connect(names[3])
    h.cycle(advance=60)
    assert problems_mode(h) == {names[3]: 1.0, names[7]: 0.0}  # back, within the window
    h.cycle(advance=540)
    assert problems_mode(h) == {names[3]: 1.0, names[7]: 0.0}  # the window's last minute
    samples = h.cycle(advance=61)
    assert connected_by_thing(samples) == {names[7]: 0.0}  # gone once the window passed
    assert value(samples, "iot_exporter_problem_things") == 1


def test_a_mass_outage_keeps_the_page_bounded_and_counts_what_it_left_out(
    harness: HarnessFactory,
) -> None:
    h = harness(
        quiet(12, seed=102),
        sections={"metrics": {"per_thing": "problems", "max_problem_things": 4}},
    )
    names = h.sim.fleet.thing_names()
    h.cycle()
    for name in names:
        h.clock.advance(1)  # each disconnects a second after the one before
        h.sim.fleet.disconnect(name)
    samples = h.cycle(advance=60)
    # The four disconnected longest are kept.
    assert set(problems_mode(h)) == set(names[:4])
    assert value(samples, "iot_exporter_problem_things") == 4
    assert value(samples, "iot_exporter_problem_things_left_out") == 8
    assert value(samples, "iot_exporter_max_problem_things") == 4


def test_index_mode_lists_the_things_in_trouble(harness: HarnessFactory) -> None:
    h = harness(
        quiet(8, seed=103),
        things=[],
        sections={
            "discovery": {
                "interval": "5m",
                "thing_groups": [{"name": "group-1", "recursive": True}],
            },
            "metrics": {"per_thing": "problems"},
        },
        mode="index",
    )
    h.cycle()
    members = h.sim.fleet.members("group-1", recursive=True)
    victim = members[0]
    h.sim.fleet.disconnect(victim)
    assert problems_mode(h) == {}  # the index has not been read since
    h.cycle(advance=60)
    assert problems_mode(h) == {victim: 0.0}


def test_a_reload_between_modes_shows_and_withdraws_the_list(harness: HarnessFactory) -> None:
    h = harness(quiet(6, seed=104), sections={"metrics": {"per_thing": "problems"}})
    names = h.sim.fleet.thing_names()
    h.cycle()
    h.sim.fleet.disconnect(names[2])
    h.cycle(advance=60)
    assert problems_mode(h) == {names[2]: 0.0}
    h.rewrite_config(metrics={"per_thing": "all"})
    assert h.exporter.reload().ok
    samples = h.cycle(advance=60)
    assert len(connected_by_thing(samples)) == 6
    assert value(samples, "iot_exporter_max_problem_things") == 0
    assert value(samples, "iot_exporter_problem_things") == 0
    h.rewrite_config(metrics={"per_thing": "problems", "max_problem_things": 50})
    assert h.exporter.reload().ok
    samples = h.cycle(advance=60)
    assert connected_by_thing(samples) == {names[2]: 0.0}  # still known to be in trouble
    assert value(samples, "iot_exporter_max_problem_things") == 50
