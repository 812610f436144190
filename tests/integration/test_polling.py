"""The exporter against the simulator through real boto3 over HTTP: state, errors, faults."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from exporter.aws.clients import make_iot_client
from exporter.fleet.connectivity import UNOBSERVED_FLAP
from exporter.sources.base import PassOutcome
from exporter.web.server import Endpoints
from iot_simulator import FaultConfig, SimulatorConfig
from tests.support.endpoints import serving
from tests.support.harness import HarnessFactory, Samples, connected_by_thing, quiet, series, value
from tests.support.promstack import http_get, wait_until

OP = "GetThingConnectivityData"


def test_state_matches_the_simulator(harness: HarnessFactory) -> None:
    h = harness()
    samples = h.cycle()
    names = h.sim.fleet.thing_names()
    assert connected_by_thing(samples) == {
        name: 1.0 if h.sim.fleet.state(name).connected else 0.0 for name in names
    }
    for name in names:
        truth = h.sim.fleet.state(name)
        shown = value(samples, "iot_thing_connectivity_timestamp_seconds", thing_name=name)
        if truth.timestamp_ms is None:
            assert shown is None, f"{name} never connected but shows a timestamp"
        else:
            assert shown == pytest.approx(truth.timestamp_ms / 1000)
        assert value(samples, "iot_thing_poll_success", thing_name=name) == 1
    assert value(samples, "iot_exporter_things_targeted") == len(names)
    assert h.exporter.ready()


def test_disconnect_after_start_is_counted_with_its_reason(harness: HarnessFactory) -> None:
    h = harness(quiet(5, seed=1))
    name = h.sim.fleet.thing_names()[0]
    before = h.cycle()
    assert value(before, "iot_disconnects_total", reason="AUTH_ERROR") == 0
    h.clock.advance(5)
    h.sim.fleet.disconnect(name, reason="AUTH_ERROR")
    after = h.cycle(advance=55)
    assert value(after, "iot_thing_connected", thing_name=name) == 0
    assert value(after, "iot_thing_disconnects_total", thing_name=name, reason="AUTH_ERROR") == 1
    assert value(after, "iot_disconnects_total", reason="AUTH_ERROR") == 1
    assert (
        value(after, "iot_thing_disconnect_reason_info", thing_name=name, reason="AUTH_ERROR") == 1
    )
    # Polling again without change counts nothing more.
    again = h.cycle(advance=60)
    assert value(again, "iot_disconnects_total", reason="AUTH_ERROR") == 1


def test_unseen_flap_and_new_aws_reason(harness: HarnessFactory) -> None:
    h = harness(quiet(3, seed=2))
    flapper, dropper = h.sim.fleet.thing_names()[:2]
    h.cycle()
    h.clock.advance(10)
    h.sim.fleet.disconnect(flapper, reason="CONNECTION_LOST")
    h.clock.advance(10)
    h.sim.fleet.connect(flapper)
    h.sim.fleet.disconnect(dropper, reason="A_REASON_AWS_ADDS_LATER")
    samples = h.cycle(advance=40)
    assert (
        value(samples, "iot_thing_disconnects_total", thing_name=flapper, reason=UNOBSERVED_FLAP)
        == 1
    )
    assert (
        value(samples, "iot_thing_disconnects_total", thing_name=flapper, reason="CONNECTION_LOST")
        is None
    )
    assert value(samples, "iot_disconnects_total", reason="A_REASON_AWS_ADDS_LATER") == 1


def test_every_known_reason_is_exported_at_zero_from_the_start(harness: HarnessFactory) -> None:
    h = harness()
    samples = h.samples()  # before any poll
    reasons = {dict(labels)["reason"] for labels in series(samples, "iot_disconnects_total")}
    assert {
        "AUTH_ERROR",
        "DUPLICATE_CLIENTID",
        "API_INITIATED_DISCONNECT",
        "UNKNOWN",
        UNOBSERVED_FLAP,
    } <= reasons
    assert not h.exporter.ready()


def test_ready_only_once_every_source_has_succeeded(harness: HarnessFactory) -> None:
    """A pod whose every poll fails (credentials, IAM) must not be taken into service."""
    h = harness(quiet(3, seed=1), faults=FaultConfig(error_rates={"UnauthorizedException": 1.0}))
    h.cycle()
    assert not h.exporter.ready()  # it reported, but every poll failed
    h.sim.faults.set(error_rates={})
    h.cycle(advance=60)
    assert h.exporter.ready()
    # Once ready, a failing pass later leaves it ready: readiness is about the start.
    h.sim.faults.set(error_rates={"UnauthorizedException": 1.0})
    h.cycle(advance=60)
    assert h.exporter.ready()


def assert_state_kept(before: Samples, after: Samples) -> None:
    assert connected_by_thing(after) == connected_by_thing(before), (
        "an error flipped a thing's state"
    )


@pytest.mark.parametrize(
    ("faults", "code", "outcome"),
    [
        (
            FaultConfig(error_rates={"InternalFailureException": 1.0}),
            "InternalFailureException",
            "InternalFailureException",
        ),
        (
            FaultConfig(error_rates={"ServiceUnavailableException": 1.0}),
            "ServiceUnavailableException",
            "ServiceUnavailableException",
        ),
        (
            FaultConfig(error_rates={"UnauthorizedException": 1.0}),
            "UnauthorizedException",
            "UnauthorizedException",
        ),
        (FaultConfig(malformed_rate=1.0), "InvalidResponse", "malformed"),
        # An outage never reaches the simulator's HTTP layer, so it counts no outcome.
        (FaultConfig(outage="refuse"), "ConnectionError", None),
        (FaultConfig(outage="reset"), "ConnectionError", None),
    ],
    ids=["500", "503", "401", "malformed", "outage-refused", "outage-reset"],
)
def test_failures_mark_polls_failed_and_never_flip_state(
    harness: HarnessFactory, faults: FaultConfig, code: str, outcome: str | None
) -> None:
    h = harness(SimulatorConfig(things=10, seed=4, quotas=False))
    before = h.cycle()
    h.sim.faults.set(**faults.to_json())
    h.sim.reset_request_counts()
    during = h.cycle(advance=60)
    assert_state_kept(before, during)
    for name in h.sim.fleet.thing_names():
        assert value(during, "iot_thing_poll_success", thing_name=name) == 0
        assert value(during, "iot_thing_poll_error_info", thing_name=name, error_code=code) == 1
    errors = value(during, "iot_exporter_api_errors_total", operation=OP, error_code=code)
    # Exactly one call per thing: only throttles are retried, by the poller or by botocore.
    assert errors == 10
    if outcome is not None:
        assert h.sim.request_counts() == {(OP, outcome): 10}
    # Recovery: the next cycle after the fault clears is whole again.
    h.sim.faults.clear()
    recovered = h.cycle(advance=60)
    assert all(
        value(recovered, "iot_thing_poll_success", thing_name=n) == 1
        for n in h.sim.fleet.thing_names()
    )
    assert series(recovered, "iot_thing_poll_error_info") == {}


def test_timeouts_are_poll_failures(harness: HarnessFactory) -> None:
    h = harness(SimulatorConfig(things=4, seed=5, quotas=False), aws={"read_timeout": "300ms"})
    before = h.cycle()
    h.sim.faults.set(slow_rate=1.0, slow_seconds=1.5)
    during = h.cycle(advance=60)
    assert_state_kept(before, during)
    assert value(during, "iot_exporter_api_errors_total", operation=OP, error_code="Timeout") == 4


def test_botocore_never_retries_behind_the_budget(harness: HarnessFactory) -> None:
    h = harness(
        SimulatorConfig(things=10, seed=6, quotas=False),
        faults=FaultConfig(error_rates={"InternalFailureException": 1.0}),
    )
    h.sim.reset_request_counts()
    h.cycle()
    assert h.sim.request_counts() == {(OP, "InternalFailureException"): 10}


def test_throttling_backs_off_retries_and_is_counted(harness: HarnessFactory) -> None:
    h = harness(SimulatorConfig(things=8, seed=7, quotas=False), max_retries=3)
    before = h.cycle()
    # A third of requests throttled: retries (after the shared backoff) get most through.
    h.sim.faults.set(error_rates={"ThrottlingException": 0.3})
    during = h.cycle(advance=60)
    throttles = value(
        during, "iot_exporter_api_errors_total", operation=OP, error_code="ThrottlingException"
    )
    assert throttles is not None
    assert throttles > 0
    requests = value(during, "iot_exporter_api_requests_total", operation=OP)
    gave_up = len(
        [
            k
            for k in series(during, "iot_thing_poll_error_info")
            if ("error_code", "ThrottlingException") in k
        ]
    )
    # Two cycles of 8, plus a retry per throttle except the last one of each thing given up on.
    assert requests == 16 + throttles - gave_up
    # A thing is given up on only after max_retries + 1 throttles in a row, so fewer things
    # are given up on than throttles were seen; without retries every throttle gives one up.
    assert gave_up < throttles
    for labels, connected in connected_by_thing(during).items():
        failed = value(
            during, "iot_thing_poll_error_info", thing_name=labels, error_code="ThrottlingException"
        )
        if failed:
            assert connected == connected_by_thing(before)[labels]


@pytest.mark.parametrize(("max_retries", "backoff"), [(2, 0.5 + 1.0), (0, 0.0)])
def test_a_throttled_thing_is_retried_max_retries_times_after_the_backoff(
    harness: HarnessFactory, max_retries: int, backoff: float
) -> None:
    h = harness(
        quiet(1, seed=26),
        faults=FaultConfig(error_rates={"ThrottlingException": 1.0}),
        max_retries=max_retries,
    )
    (name,) = h.sim.fleet.thing_names()
    h.sim.reset_request_counts()
    started = time.monotonic()
    samples = h.cycle()
    elapsed = time.monotonic() - started
    # The first attempt plus max_retries retries reach AWS, then the thing is given up on.
    assert h.sim.request_counts() == {(OP, "ThrottlingException"): max_retries + 1}
    # Each retry waits out the shared backoff first: 0.5 s, then 1 s (doubling).
    assert elapsed >= backoff - 0.1
    given_up = value(
        samples, "iot_thing_poll_error_info", thing_name=name, error_code="ThrottlingException"
    )
    assert given_up == 1
    assert (
        value(
            samples, "iot_exporter_api_errors_total", operation=OP, error_code="ThrottlingException"
        )
        == max_retries + 1
    )


def test_budget_keeps_under_the_quota(harness: HarnessFactory) -> None:
    # The simulated account allows 40/s with a small burst; a 30/s budget never trips it.
    sim = SimulatorConfig(things=45, seed=8, rates={OP: 40.0}, burst_seconds=0.1)
    h = harness(sim, max_requests_per_second=30)
    h.sim.reset_request_counts()
    samples = h.cycle()
    assert h.sim.request_counts() == {(OP, "ok"): 45}
    assert (
        value(
            samples, "iot_exporter_api_errors_total", operation=OP, error_code="ThrottlingException"
        )
        == 0
    )


def test_missing_things_are_failures_not_disconnects(harness: HarnessFactory) -> None:
    h = harness(
        quiet(3, seed=9),
        things=None,
    )
    names = h.sim.fleet.thing_names()
    h.rewrite_config(things=[*names, "ghost-thing"])
    assert h.exporter.reload().ok
    first = h.cycle()
    assert (
        value(
            first,
            "iot_thing_poll_error_info",
            thing_name="ghost-thing",
            error_code="ResourceNotFoundException",
        )
        == 1
    )
    assert "ghost-thing" not in connected_by_thing(first)
    # A thing deleted after it was seen keeps its last state, marked as a failed poll.
    h.sim.fleet.delete_thing(names[0])
    later = h.cycle(advance=60)
    assert value(later, "iot_thing_connected", thing_name=names[0]) == 1
    assert value(later, "iot_thing_poll_success", thing_name=names[0]) == 0
    assert sum(series(later, "iot_disconnects_total").values()) == 0


def test_index_not_ready_explains_the_fix_once(
    harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness(SimulatorConfig(things=5, seed=10, quotas=False, connectivity_indexing=False))
    with caplog.at_level(logging.ERROR, logger="exporter.app"):
        h.cycle()
        h.cycle(advance=60)
    hints = [
        r.getMessage() for r in caplog.records if "update-indexing-configuration" in r.getMessage()
    ]
    assert len(hints) == 1
    assert "thingConnectivityIndexingMode=STATUS" in hints[0]
    assert "--region eu-west-1" in hints[0]
    samples = h.samples()
    assert (
        value(
            samples,
            "iot_exporter_api_errors_total",
            operation=OP,
            error_code="IndexNotReadyException",
        )
        == 10
    )


def test_stale_state_is_withdrawn(harness: HarnessFactory) -> None:
    h = harness(SimulatorConfig(things=3, seed=11, quotas=False), staleness="3m")
    h.cycle()
    h.sim.faults.set(outage="refuse")
    still = h.cycle(advance=120)
    assert len(connected_by_thing(still)) == 3
    stale = h.cycle(advance=120)
    assert connected_by_thing(stale) == {}
    assert series(stale, "iot_thing_connectivity_timestamp_seconds") == {}
    assert len(series(stale, "iot_thing_last_successful_poll_timestamp_seconds")) == 3


def test_reload_drops_removed_things_and_keeps_old_config_when_invalid(
    harness: HarnessFactory,
) -> None:
    h = harness(SimulatorConfig(things=3, seed=12, quotas=False))
    names = h.sim.fleet.thing_names()
    h.cycle()
    h.rewrite_config(things=names[:2])
    assert h.exporter.reload().ok
    samples = h.samples()
    assert set(connected_by_thing(samples)) == set(names[:2])
    assert all(
        dict(labels)["thing_name"] != names[2]
        for labels in series(samples, "iot_thing_poll_success")
    )
    assert value(samples, "iot_exporter_things_targeted") == 2
    h.config_path.write_text("poll:\n  interval: fast\nthings: []\n")
    result = h.exporter.reload()
    assert not result.ok
    assert 'poll.interval: expected a duration such as 30s, got "fast"' in result.message
    after = h.cycle(advance=60)
    assert value(after, "iot_exporter_config_last_reload_successful") == 0
    assert set(connected_by_thing(after)) == set(names[:2])


def test_labels_from_config(harness: HarnessFactory) -> None:
    h = harness(SimulatorConfig(things=2, seed=13, quotas=False))
    a, b = h.sim.fleet.thing_names()
    h.rewrite_config(
        labels={"env": "prod", "site": "hq"}, things=[{"name": a, "labels": {"site": "plant-a"}}, b]
    )
    assert h.exporter.reload().ok
    samples = h.cycle()
    labels = {dict(k)["thing_name"]: dict(k) for k in series(samples, "iot_thing_connected")}
    assert labels[a] == {"thing_name": a, "env": "prod", "site": "plant-a"}
    assert labels[b] == {"thing_name": b, "env": "prod", "site": "hq"}


def test_assumed_role_credentials_are_used_and_refreshed(
    harness: HarnessFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_key, base_secret = "AKIDBASECHAIN0000001", "base-chain-secret"
    # Credentials valid for 10 minutes sit inside botocore's 15-minute refresh window,
    # so every use refreshes them: proof that refreshing is wired, without waiting an hour.
    sim_config = SimulatorConfig(
        things=4,
        seed=14,
        quotas=False,
        credentials={base_key: base_secret},
        sts_duration_override_seconds=600,
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", base_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", base_secret)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    h = harness(
        sim_config,
        factory=lambda config: make_iot_client(config.aws, config.poll.concurrency),
        concurrency=1,
    )
    h.rewrite_config(
        aws={
            **h.document["aws"],
            "role_arn": "arn:aws:iam::123456789012:role/iot-exporter",
            "sts_endpoint_url": h.sim.url,
        }
    )
    assert h.exporter.reload().ok
    samples = h.cycle()
    assert all(
        value(samples, "iot_thing_poll_success", thing_name=n) == 1
        for n in h.sim.fleet.thing_names()
    )
    used = h.sim.access_key_counts()
    assert base_key not in used, (
        "IoT calls must be signed with the assumed role, not the base chain"
    )
    assert sum(used.values()) == 4
    assume_calls = sum(
        n for (op, outcome), n in h.sim.request_counts().items() if op == "AssumeRole"
    )
    assert assume_calls >= 2, "credentials near expiry must be refreshed"


def test_exporter_keeps_serving_through_an_outage(harness: HarnessFactory) -> None:
    h = harness(SimulatorConfig(things=5, seed=15, quotas=False), aws={"read_timeout": "2s"})
    endpoints = Endpoints("/metrics", h.exporter.payload, h.exporter.ready, h.exporter.reload)
    with serving(endpoints) as server:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        h.cycle()
        # AWS hangs: every answer outlasts the read timeout, so the cycle runs for ~2 s.
        h.sim.faults.set(slow_rate=1.0, slow_seconds=3.0)
        h.sim.reset_request_counts()
        cycle = threading.Thread(target=h.cycle, kwargs={"advance": 60})
        cycle.start()
        try:
            wait_until(
                lambda: sum(h.sim.request_counts().values()) or None,
                timeout=10,
                interval=0.01,
                what="a request of the hanging cycle",
            )
            status, body = http_get(url + "/metrics")
            ready = http_get(url + "/-/ready")[0]
            # Answered while the cycle was still waiting on AWS, not after it ended.
            assert cycle.is_alive(), "the scrape waited for the cycle"
        finally:
            cycle.join()
        assert status == 200
        assert b"iot_thing_connected" in body
        assert ready == 200
        status, body = http_get(url + "/metrics")
        assert b'error_code="Timeout"' in body
        # A refused connection (AWS unreachable) is served through the same way.
        h.sim.faults.set(outage="refuse")
        h.cycle(advance=60)
        status, body = http_get(url + "/metrics")
        assert status == 200
        assert b'error_code="ConnectionError"' in body
        assert http_get(url + "/-/ready")[0] == 200


def test_overrunning_cycle_is_reported_not_stacked(harness: HarnessFactory) -> None:
    h = harness(
        SimulatorConfig(things=6, seed=16, quotas=False),
        faults=FaultConfig(latency=0.4),
        concurrency=1,
        interval="1s",
        staleness="1m",
    )
    # The scheduler's job calls self.run_pass, so this wrapper sees every scheduled run.
    running, most, lock = 0, 0, threading.Lock()
    run_pass = h.exporter.run_pass

    def counted(name: str) -> PassOutcome | None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            return run_pass(name)
        finally:
            with lock:
                running -= 1

    h.exporter.run_pass = counted  # type: ignore[method-assign]
    h.exporter.start()
    wait_until(
        lambda: h.live_value("iot_exporter_poll_cycles_overrun_total") >= 1 or None,
        timeout=20,
        what="an overrun",
    )
    h.exporter.stop()
    assert most == 1, f"{most} cycles ran at once"
    counts = h.sim.request_counts()
    # Had cycles stacked, more than one cycle's requests would be in flight at once; the
    # single poll worker (concurrency 1) means requests equal finished-or-running cycles x 6.
    assert sum(counts.values()) <= 6 * (h.live_value("iot_exporter_poll_cycles_total") + 1)


def test_state_goes_stale_while_a_cycle_hangs(harness: HarnessFactory) -> None:
    h = harness(quiet(3, seed=21), aws={"read_timeout": "10m"}, interval="1s", staleness="1m")
    assert len(connected_by_thing(h.cycle())) == 3
    # Every answer now takes longer than the test: the scheduled cycle hangs on it.
    h.sim.faults.set(latency=600)
    h.exporter.start()
    h.clock.advance(61)
    # Nothing changes while the cycle hangs: the renderer withdraws the state on time alone.
    wait_until(
        lambda: connected_by_thing(h.served()) == {} or None,
        timeout=20,
        what="stale state withdrawn during the hung cycle",
    )
    samples = h.served()
    wait_until(
        lambda: h.live_value("iot_exporter_poll_cycles_overrun_total") >= 1 or None,
        timeout=20,
        what="the hung cycle's overrun",
    )
    assert series(samples, "iot_thing_connectivity_timestamp_seconds") == {}
    # Withdrawn, not forgotten: when the last good poll was is still shown.
    assert len(series(samples, "iot_thing_last_successful_poll_timestamp_seconds")) == 3


def test_a_budget_too_small_for_the_interval_is_warned_at_load(
    harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness(SimulatorConfig(things=5, seed=17, quotas=False))
    h.rewrite_config(poll={**h.document["poll"], "interval": "1s", "max_requests_per_second": 2})
    with caplog.at_level(logging.WARNING, logger="exporter.app"):
        assert h.exporter.reload().ok
    warning = next(
        r for r in caplog.records if "cannot finish within poll.interval" in r.getMessage()
    )
    assert warning.__dict__["shortest_cycle_seconds"] == 2.5


def test_own_metrics_move_during_a_long_cycle(harness: HarnessFactory) -> None:
    h = harness(
        SimulatorConfig(things=6, seed=18, quotas=False),
        faults=FaultConfig(latency=0.3),
        concurrency=1,
    )
    cycle = threading.Thread(target=h.cycle)
    cycle.start()
    try:
        # Before the cycle ends (6 x 0.3 s) the scrape already shows requests being spent.
        wait_until(
            lambda: (
                (value(h.samples(), "iot_exporter_api_requests_total", operation=OP) or 0) >= 2
                or None
            ),
            timeout=10,
            what="live request counter",
        )
        assert series(h.samples(), "iot_thing_connected") == {}  # fleet waits for the cycle
    finally:
        cycle.join()
    assert len(series(h.samples(), "iot_thing_connected")) == 6


def test_reload_during_a_cycle_drops_answers_for_removed_things(harness: HarnessFactory) -> None:
    h = harness(
        SimulatorConfig(things=4, seed=19, quotas=False),
        faults=FaultConfig(latency=0.3),
        concurrency=1,
    )
    names = h.sim.fleet.thing_names()
    cycle = threading.Thread(target=h.cycle)
    cycle.start()
    wait_until(lambda: sum(h.sim.request_counts().values()) or None, timeout=10, what="a request")
    h.rewrite_config(things=names[1:])
    assert h.exporter.reload().ok
    cycle.join()
    samples = h.samples()
    assert set(connected_by_thing(samples)) == set(names[1:])
    assert all(dict(k)["thing_name"] != names[0] for k in series(samples, "iot_thing_poll_success"))


def test_reload_reschedules_a_changed_interval(harness: HarnessFactory) -> None:
    h = harness(SimulatorConfig(things=2, seed=20, quotas=False), interval="1h", staleness="2h")
    h.exporter.start()
    wait_until(
        lambda: h.live_value("iot_exporter_poll_cycles_total") >= 1 or None,
        timeout=10,
        what="the first cycle",
    )
    h.rewrite_config(poll={**h.document["poll"], "interval": "1s", "staleness": "1m"})
    assert h.exporter.reload().ok
    wait_until(
        lambda: h.live_value("iot_exporter_poll_cycles_total") >= 3 or None,
        timeout=10,
        what="cycles at the new 1s interval",
    )
    h.exporter.stop()


def test_unexpected_reload_failure_keeps_the_daemon_and_its_config(harness: HarnessFactory) -> None:
    h = harness(SimulatorConfig(things=2, seed=21, quotas=False))
    h.cycle()

    def broken_factory(config: object) -> object:
        raise RuntimeError("credential helper crashed")

    h.exporter._client_factory = broken_factory  # type: ignore[assignment]
    # A changed AWS setup needs a new client (an unchanged one keeps the running client).
    h.rewrite_config(aws={**h.document["aws"], "read_timeout": "3s"})
    result = h.exporter.reload()
    assert not result.ok
    assert "credential helper crashed" in result.message
    samples = h.cycle(advance=60)
    assert value(samples, "iot_exporter_config_last_reload_successful") == 0
    assert len(connected_by_thing(samples)) == 2


def test_last_success_timestamp_needs_a_successful_poll(harness: HarnessFactory) -> None:
    h = harness(SimulatorConfig(things=3, seed=22, quotas=False))
    first = h.cycle()
    stamp = value(first, "iot_exporter_last_poll_success_timestamp_seconds")
    assert stamp == h.clock.now()
    h.sim.faults.set(error_rates={"UnauthorizedException": 1.0})
    failed = h.cycle(advance=60)
    assert value(failed, "iot_exporter_last_poll_success_timestamp_seconds") == stamp
    assert value(failed, "iot_exporter_poll_cycles_total") == 2


def test_unauthorized_is_explained_once(
    harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness(
        SimulatorConfig(things=3, seed=23, quotas=False),
        faults=FaultConfig(error_rates={"UnauthorizedException": 1.0}),
    )
    with caplog.at_level(logging.WARNING, logger="exporter.app"):
        h.cycle()
        h.cycle(advance=60)
    hints = [r for r in caplog.records if "iot:GetThingConnectivityData" in r.getMessage()]
    assert len(hints) == 1
    cycles = [r for r in caplog.records if r.getMessage() == "poll cycle finished"]
    assert [r.levelno for r in cycles] == [logging.WARNING, logging.WARNING]
    assert cycles[0].__dict__["errors"] == "UnauthorizedException:3"


def test_missing_credentials_are_explained_once_with_what_to_do(
    harness: HarnessFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # An empty credential chain: no keys, no profile, no metadata service.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    h = harness(
        SimulatorConfig(things=2, seed=25, quotas=False),
        factory=lambda c: make_iot_client(c.aws, c.poll.concurrency),
    )
    with caplog.at_level(logging.ERROR):
        first = h.cycle()
        h.cycle(advance=60)
    assert (
        value(
            first, "iot_thing_poll_error_info", thing_name="thing-00001", error_code="NoCredentials"
        )
        == 1
    )
    hints = [r.getMessage() for r in caplog.records if "no AWS credentials found" in r.getMessage()]
    assert len(hints) == 1  # once per episode, not per thing or per cycle
    assert "AWS_ACCESS_KEY_ID" in hints[0]
    assert "--demo" in hints[0]


def test_an_endpoint_that_does_not_resolve_is_explained_once(
    harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness(
        SimulatorConfig(things=2, seed=26, quotas=False),
        aws={"endpoint_url": "http://iot.no-such-host.invalid:9"},
    )
    with caplog.at_level(logging.ERROR):
        first = h.cycle()
        h.cycle(advance=60)
    assert (
        value(
            first,
            "iot_thing_poll_error_info",
            thing_name="thing-00001",
            error_code="EndpointNotResolved",
        )
        == 1
    )
    hints = [
        r.getMessage()
        for r in caplog.records
        if "cannot resolve the AWS endpoint" in r.getMessage()
    ]
    assert len(hints) == 1
    assert "aws.endpoint_url" in hints[0]


def test_external_id_is_sent_and_a_refused_role_fails_the_reload(
    harness: HarnessFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDBASECHAIN0000002")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "base-chain-secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    sim_config = SimulatorConfig(things=2, seed=24, quotas=False, sts_external_id="ext-7f3a")
    h = harness(sim_config, factory=lambda c: make_iot_client(c.aws, c.poll.concurrency))
    role = {
        **h.document["aws"],
        "role_arn": "arn:aws:iam::123456789012:role/iot-exporter",
        "sts_endpoint_url": h.sim.url,
        "role_session_name": "fleet-monitor",
    }
    h.rewrite_config(aws={**role, "external_id": "ext-7f3a"})
    assert h.exporter.reload().ok
    samples = h.cycle()
    assert all(
        value(samples, "iot_thing_poll_success", thing_name=n) == 1
        for n in h.sim.fleet.thing_names()
    )
    assert all(key.startswith("ASIA") for key in h.sim.access_key_counts())
    h.rewrite_config(aws={**role, "external_id": "wrong-id"})
    result = h.exporter.reload()
    assert not result.ok
    assert "aws.role_arn: cannot assume the role" in result.message
    assert "AccessDenied" in result.message


def test_named_profile_from_the_shared_files(
    harness: HarnessFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key, secret = "AKIDPROFILE000000001", "profile-secret"
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[iot-reader]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"
    )
    empty = tmp_path / "aws-config"
    empty.write_text("")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    sim_config = SimulatorConfig(things=2, seed=25, quotas=False, credentials={key: secret})
    h = harness(
        sim_config,
        factory=lambda c: make_iot_client(c.aws, c.poll.concurrency),
        aws={"profile": "iot-reader"},
    )
    samples = h.cycle()
    assert all(
        value(samples, "iot_thing_poll_success", thing_name=n) == 1
        for n in h.sim.fleet.thing_names()
    )
    assert h.sim.access_key_counts() == {key: 2}
