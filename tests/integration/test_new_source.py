"""A new kind of source is a Source subclass plus a line in plan: the app runs it unchanged.

The source here is defined in this file, not in exporter/sources/, and reaches the app the
way plan() would hand it over. Everything the app does for its own sources it does for
this one: schedules it, records its passes, counts its things and its cycles, renders what
it observed, reports readiness, refuses names AWS could not have issued, and closes it on
reload.
"""

from __future__ import annotations

from collections.abc import Sequence

from exporter.config import Config
from exporter.fleet.connectivity import Observation
from exporter.fleet.targets import Found, SourceSlot
from exporter.sources.base import PassOutcome, Source, Updates, Wiring
from exporter.sources.plan import Plan, plan
from iot_simulator import SimulatorConfig
from tests.support.harness import HarnessFactory, connected_by_thing, quiet, value
from tests.support.promstack import wait_until

NAME = "beacons"
T0 = 1_700_000_000.0
# A config needs something to watch; an aggregate names no things of its own.
AGGREGATE = {"aggregates": {"queries": [{"name": "all"}]}}


class Beacons(Source):
    """Names two beacons (and one name no AWS account could hold) and observes them."""

    name = NAME
    where = "tests.beacons"
    interval = 1.0
    observes = True

    def __init__(self, wiring: Wiring) -> None:
        self._clock = wiring.clock
        self.passes = 0
        self.closed = False
        self.extra: list[str] = []  # names a later pass adds

    def run(self, updates: Updates) -> PassOutcome:
        self.passes += 1
        found = [Found(name) for name in ("beacon-1", "beacon-2", *self.extra)]
        found.append(Found('beacon"3\nfake="1'))
        refused = updates.found(NAME, found)
        # As the sources in the package do: everything it saw, but what the state refused.
        updates.settled(NAME, {item.name for item in found if item.name not in refused})
        now = self._clock()
        summary = updates.observed(
            [
                Observation.ok("beacon-1", now, connected=True, timestamp=T0),
                Observation.ok(
                    "beacon-2", now, connected=False, timestamp=T0, reason="CONNECTION_LOST"
                ),
            ]
        )
        return PassOutcome(ok=True, things=2, summary=summary, invalid_names=tuple(refused))

    def close(self) -> None:
        self.closed = True


built: list[Beacons] = []


def with_beacons(config: Config, wiring: Wiring) -> Plan:
    """plan() plus the line a new source adds."""
    beacons = Beacons(wiring)
    built.append(beacons)
    return plan(config, wiring).with_source(beacons, SourceSlot(NAME, live=False, max_things=None))


def test_a_source_defined_outside_the_package_runs_through_the_app(
    harness: HarnessFactory,
) -> None:
    built.clear()
    h = harness(quiet(2, seed=90), planner=with_beacons)
    assert not h.exporter.ready()
    samples = h.cycle()
    assert h.exporter.ready()
    connected = connected_by_thing(samples)
    # Its things sit beside the static list's, under the same rules and series.
    static = dict.fromkeys(h.sim.fleet.thing_names(), 1.0)
    assert connected == {**static, "beacon-1": 1.0, "beacon-2": 0.0}
    reason = value(
        samples, "iot_thing_disconnect_reason_info", reason="CONNECTION_LOST", thing_name="beacon-2"
    )
    assert reason == 1.0
    assert value(samples, "iot_exporter_source_passes_total", source=NAME) == 1.0
    assert value(samples, "iot_exporter_source_last_pass_successful", source=NAME) == 1.0
    assert value(samples, "iot_exporter_source_things", source=NAME) == 2.0
    assert value(samples, "iot_exporter_things_targeted") == 4.0
    # It observes, so its pass is a poll cycle, as the live poller's is.
    assert value(samples, "iot_exporter_poll_cycles_total") == 2.0
    # The name no AWS account could hold is refused by the state, and counted.
    assert value(samples, "iot_exporter_source_invalid_thing_names_total", source=NAME) == 1.0
    assert all('beacon"3' not in dict(labels).get("thing_name", "") for (_, labels) in samples)


def test_the_app_closes_a_replaced_source(harness: HarnessFactory) -> None:
    built.clear()
    h = harness(quiet(2, seed=91), planner=with_beacons)
    h.cycle()
    first = built[-1]
    assert h.exporter.reload().ok
    assert first.closed
    assert built[-1] is not first
    samples = h.cycle(advance=60)
    assert built[-1].passes == 1
    assert value(samples, "iot_exporter_source_passes_total", source=NAME) == 2.0


def test_the_app_forgets_a_removed_source_and_its_things(harness: HarnessFactory) -> None:
    built.clear()
    wanted = [True]

    def sometimes(config: Config, wiring: Wiring) -> Plan:
        return with_beacons(config, wiring) if wanted[0] else plan(config, wiring)

    h = harness(quiet(2, seed=93), planner=sometimes)
    assert value(h.cycle(), "iot_exporter_source_things", source=NAME) == 2.0
    wanted[0] = False
    assert h.exporter.reload().ok
    assert built[-1].closed
    samples = h.cycle(advance=60)
    assert value(samples, "iot_exporter_source_passes_total", source=NAME) is None
    assert value(samples, "iot_exporter_source_things", source=NAME) is None
    assert "beacon-1" not in connected_by_thing(samples)
    assert h.exporter.ready()  # a removed source is not waited for


class Follower(Source):
    """Observes what the target sources name, as the live poller does."""

    name = "follower"
    where = "tests.follower"
    interval = 1.0
    follows_targets = True

    def __init__(self) -> None:
        self.reported = 0
        self.joined: list[list[str]] = []

    def run(self, updates: Updates) -> PassOutcome:
        return PassOutcome(ok=True, things=len(updates.live_names()))

    def targets_reported(self, updates: Updates) -> None:
        self.reported += 1

    def targets_joined(self, names: Sequence[str], updates: Updates) -> None:
        self.joined.append(sorted(names))


def test_a_source_that_follows_the_targets_waits_for_them_and_hears_of_newcomers(
    harness: HarnessFactory,
) -> None:
    built.clear()
    follower = Follower()

    def with_follower(config: Config, wiring: Wiring) -> Plan:
        beacons = Beacons(wiring)
        built.append(beacons)
        slot = SourceSlot(NAME, live=True, max_things=None)
        return plan(config, wiring).with_source(beacons, slot).with_source(follower)

    h = harness(quiet(1, seed=94), things=[], planner=with_follower, sections=AGGREGATE)
    assert follower.reported == 0
    h.exporter.run_pass(NAME)
    assert follower.reported == 1  # every target source has reported: it may start
    built[-1].extra.append("beacon-9")
    h.exporter.run_pass(NAME)
    assert follower.reported == 1
    assert follower.joined == [["beacon-9"]]  # the newcomer, without waiting for a pass


def test_the_scheduler_runs_the_new_source(harness: HarnessFactory) -> None:
    built.clear()
    h = harness(SimulatorConfig(things=1, seed=92, quotas=False), planner=with_beacons)
    h.exporter.start()
    wait_until(
        lambda: True if built[-1].passes >= 2 else None,
        timeout=20,
        what="two scheduled passes of the new source (interval 1s)",
    )
    h.exporter.stop()


class Faulty(Follower):
    """A follower whose first hook has a bug."""

    def targets_reported(self, updates: Updates) -> None:
        raise RuntimeError("a bug in a hook")


def test_a_failing_hook_neither_holds_the_follower_back_nor_stops_the_pass(
    harness: HarnessFactory,
) -> None:
    built.clear()
    follower = Faulty()

    def with_faulty(config: Config, wiring: Wiring) -> Plan:
        beacons = Beacons(wiring)
        built.append(beacons)
        slot = SourceSlot(NAME, live=True, max_things=None)
        return plan(config, wiring).with_source(beacons, slot).with_source(follower)

    h = harness(quiet(1, seed=95), things=[], planner=with_faulty, sections=AGGREGATE)
    assert h.exporter.run_pass(NAME) is not None  # the pass is recorded despite the bug
    built[-1].extra.append("beacon-9")
    h.exporter.run_pass(NAME)
    assert follower.joined == [["beacon-9"]]  # released all the same
