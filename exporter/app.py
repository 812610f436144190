"""Composition root: builds what a config asks for, runs it, and swaps it whole on reload.

Only this module wires the parts together. It knows sources only through the Source
contract (sources/base.py): which exist is plan()'s business. It owns the scheduler and
the render thread; every part it wires is passed its collaborators (client, clock,
collector registry) so tests can substitute real ones.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.process_collector import ProcessCollector

from exporter import __version__
from exporter.aws.calls import AwsCalls
from exporter.aws.clients import AwsSetupError, known_disconnect_reasons, make_sqs_client
from exporter.aws.pacing import RateLimiters
from exporter.config import Config, ConfigError
from exporter.config.budgets import DEFAULT_BUDGETS
from exporter.exposition.event_metrics import EventMetrics
from exporter.exposition.renderer import Renderer
from exporter.exposition.self_metrics import ExporterMetrics
from exporter.exposition.series import Exposition, Shape
from exporter.fleet.rollups import RollupSpec
from exporter.fleet.shards import Shard
from exporter.fleet.shared import SharedState
from exporter.fleet.targets import STATIC_SOURCE
from exporter.names import AGGREGATE_OPERATIONS, POLL_OPERATION
from exporter.schedule import Schedule
from exporter.sources.base import EventWiring, PassOutcome, Source, Wiring
from exporter.sources.plan import Plan, plan
from exporter.sources.reports import PassReports
from exporter.web.payload import Payload
from exporter.web.server import ReloadResult

if TYPE_CHECKING:
    from mypy_boto3_iot import IoTClient

log = logging.getLogger(__name__)

ClientFactory = Callable[[Config], "IoTClient"]
SqsClientFactory = Callable[[Config], Any]
ConfigLoader = Callable[[], Config]
Planner = Callable[[Config, Wiring], Plan]

# Aggregates older than this many aggregates.interval are withdrawn, like stale things.
AGGREGATE_STALENESS_INTERVALS = 3


class SetupError(Exception):
    """A config that validates but cannot run (for example no AWS region anywhere)."""


@dataclass(frozen=True, slots=True)
class Runtime:
    """Everything derived from one config; replaced as a whole on reload."""

    config: Config
    calls: AwsCalls
    plan: Plan
    exposition: Exposition

    def source(self, name: str) -> Source | None:
        try:
            return self.plan.source(name)
        except KeyError:
            return None

    @property
    def target_sources(self) -> set[str]:
        return {slot.name for slot in self.plan.slots}

    @property
    def aggregate_max_age(self) -> float:
        return AGGREGATE_STALENESS_INTERVALS * self.config.aggregates.interval


def _shape(config: Config) -> Shape:
    registry = config.registry
    return Shape(
        staleness=config.poll.staleness,
        static_labels=config.labels,
        thing_labels=config.things.labels,
        label_names=config.label_names(),
        info_labels=registry.info_labels if registry is not None else None,
        promoted=registry.promote if registry is not None else (),
        per_thing=config.metrics.per_thing,
        problems_window=config.metrics.problems_window,
        max_problem_things=config.metrics.max_problem_things,
        aggregates=bool(config.aggregates.queries),
        session_details=config.metrics.session_details,
        socket_information=config.poll.socket_information,
    )


def _rollups(config: Config) -> RollupSpec:
    registry = config.registry
    return RollupSpec(
        labels=config.metrics.rollup_by,
        info_labels=registry.info_labels if registry is not None else (),
        static_labels=config.labels,
        thing_labels=config.things.labels,
        max_segments=config.metrics.max_rollup_segments,
    )


def _rates(config: Config, shard: Shard) -> dict[str, float]:
    """Each operation's budget for this process: the config's are the account's, shared
    evenly by the shards, but for the aggregates' calls, which shard 0 alone makes."""
    return {
        operation: (
            config.budget(operation)
            if operation in AGGREGATE_OPERATIONS
            else shard.share(config.budget(operation))
        )
        for operation in (POLL_OPERATION, *DEFAULT_BUDGETS)
    }


class Exporter:
    """The running exporter: runs its sources on schedules, keeps state, serves bytes."""

    def __init__(
        self,
        load_config: ConfigLoader,
        client_factory: ClientFactory,
        *,
        clock: Callable[[], float] = time.time,
        collectors: CollectorRegistry | None = None,
        sqs_client_factory: SqsClientFactory | None = None,
        planner: Planner = plan,
        shard: Shard | None = None,
    ) -> None:
        self._load_config = load_config
        self.shard = shard or Shard()
        self._client_factory = client_factory
        self._sqs_client_factory = sqs_client_factory or _default_sqs_client
        self._planner = planner
        self._sqs_client: tuple[tuple[object, object], Any] | None = None
        self._clock = clock
        # The exporter's own metrics are small and rendered per scrape, so counters move
        # during a long pass; the fleet's series (nearly every byte) are rendered on change.
        self._collectors = collectors if collectors is not None else CollectorRegistry()
        self.metrics = ExporterMetrics(self._collectors)
        ProcessCollector(registry=self._collectors)
        self._stop = threading.Event()
        self._reload_lock = threading.Lock()
        self._schedule: Schedule | None = None
        self._render_thread: threading.Thread | None = None
        self._reported: set[str] = set()
        self._succeeded: set[str] = set()  # the sources with a successful pass: readiness
        self._ready_at: int | None = None  # the state's version once every source reported
        self._followers_released = False
        self.state = SharedState(known_disconnect_reasons(), clock=clock, shard=self.shard)
        self.metrics.shard_ordinal.set(self.shard.ordinal)
        self.metrics.total_shards.set(self.shard.total)
        self._reports = PassReports(
            self.metrics,
            self.state,
            clock=clock,
            region=self._region,
            sharded=not self.shard.whole,
        )
        self._runtime = self._build(load_config(), None)  # errors here are fatal at start-up
        self.renderer = Renderer(
            self.state,
            self._runtime.exposition,
            aggregate_max_age=self._runtime.aggregate_max_age,
            metrics=self.metrics,
            collectors=self._collectors,
            clock=clock,
        )
        self._configure_state(self._runtime)
        self._apply_runtime_metrics(self._runtime)
        self.metrics.config_reload_ok.set(1)
        self.metrics.config_reload_time.set(clock())
        self.render_now()
        config = self._runtime.config
        log.info(
            "exporter configured",
            extra={
                "version": __version__,
                "static_things": len(config.things),
                "sources": ",".join(source.name for source in self._runtime.plan.sources),
                "region": self._region(),
                "mode": config.poll.mode,
                "interval_seconds": config.poll.interval,
                "max_requests_per_second": config.poll.max_requests_per_second,
            },
        )

    # -- what the HTTP layer reads -------------------------------------------------------

    def payload(self) -> Payload:
        """What /metrics serves now."""
        return self.renderer.payload()

    def ready(self) -> bool:
        """Ready once every source has succeeded once, and /metrics shows what they
        reported; then for good. A source that only ever fails (credentials, IAM, a queue
        that does not exist) keeps the pod out of service, where a probe shows it."""
        if self._ready_at is None:
            if not all(s.name in self._succeeded for s in self._runtime.plan.sources):
                return False
            self._ready_at = self.state.version
        return self.renderer.rendered_version >= self._ready_at

    def render_now(self) -> None:
        """Render the fleet's series from the state as it is now."""
        self.renderer.render_now()

    def _region(self) -> str:
        # The region may come from boto3's chain rather than the file; the client knows.
        region = self._runtime.calls.client.meta.region_name
        return str(region or self._runtime.config.aws.region or "<your region>")

    # -- passes -------------------------------------------------------------------------

    def run_pass(self, name: str) -> PassOutcome | None:
        """Run one pass of the named source now; None if stopped or no such source."""
        if self._stop.is_set():
            return None
        runtime = self._runtime
        source = runtime.source(name)
        if source is None:
            return None
        targets_things = name in runtime.target_sources
        if targets_things:
            self.state.begin(name)
        started = time.monotonic()
        try:
            outcome = source.run(self.state)
        except Exception as error:  # a bug must fail one pass, never the schedule
            log.exception("source pass failed unexpectedly", extra={"source": name})
            outcome = PassOutcome(ok=False, problem=f"unexpected error: {error!r}")
        duration = time.monotonic() - started
        if self._stop.is_set():
            return None
        self._reports.record(source, outcome, duration)
        self._reported.add(name)
        if outcome.ok:
            self._succeeded.add(name)
        if targets_things:
            self._after_target_pass(runtime)
        return outcome

    def run_all(self) -> dict[str, PassOutcome | None]:
        """One pass of every source, those that follow the targets last: a test's "cycle"."""
        order = sorted(self._runtime.plan.sources, key=lambda source: source.follows_targets)
        return {source.name: self.run_pass(source.name) for source in order}

    def _after_target_pass(self, runtime: Runtime) -> None:
        """Hand what discovery just added to the sources that follow the targets, or start
        them once every target source has reported (so their first pass covers the whole
        discovered fleet)."""
        followers = [source for source in runtime.plan.sources if source.follows_targets]
        if not followers:
            return
        if self._followers_released:
            joined = self.state.take_joined_live()
            if joined:
                for source in followers:
                    _hook(source, source.targets_joined, joined, self.state)
            return
        if runtime.target_sources <= self._reported | {STATIC_SOURCE}:
            self._release_followers(followers)
            for source in followers:
                _hook(source, source.targets_reported, self.state)

    def _release_followers(self, followers: list[Source]) -> None:
        self._followers_released = True
        self.state.take_joined_live()  # their first pass covers these
        if self._schedule is not None:
            for source in followers:
                self._schedule.release(source.name)

    def _held(self, source: Source) -> bool:
        """Whether the source's first pass still waits for the target sources."""
        return source.follows_targets and not self._followers_released

    def _overran(self, name: str) -> None:
        source = self._runtime.source(name)
        self.metrics.source_overruns.labels(name).inc()
        if source is not None and source.observes:
            self.metrics.cycles_overrun.inc()
        log.warning(
            "a pass overran its interval; skipping this run instead of stacking passes",
            extra={"source": name, "interval_seconds": source.interval if source else None},
        )

    # -- configuration ------------------------------------------------------------------

    def _build(self, config: Config, old: Runtime | None) -> Runtime:
        if config.events is not None and not self.shard.whole and not config.events.per_shard:
            # One queue read by every shard would hand each event to one shard at random,
            # which deletes it whether it owns the thing or not.
            raise SetupError(
                f"events.queue_url: with --total-shards={self.shard.total} each shard needs its"
                " own queue (the topic rule sends every event to each): write {shard} in the"
                " URL, as https://sqs.REGION.amazonaws.com/ACCOUNT/iot-lifecycle-{shard}"
            )
        for note in config.notes():
            log.warning("config", extra={"warning": note})
        calls = self._calls(config, old)
        wiring = Wiring(
            calls, self._stop, self._clock, self._events(config, calls), shard=self.shard
        )
        return Runtime(config, calls, self._planner(config, wiring), Exposition(_shape(config)))

    def _calls(self, config: Config, old: Runtime | None) -> AwsCalls:
        """AWS calls for a config: an unchanged AWS setup keeps its client and its budgets'
        pacing, so a reload neither loads botocore's model again nor resets a backoff."""
        same_client = (
            old is not None
            and old.config.aws == config.aws
            and old.config.poll.concurrency == config.poll.concurrency
        )
        if same_client and old is not None:
            client: Any = old.calls.client
            limiters = old.calls.limiters.updated(_rates(config, self.shard))
        else:
            try:
                client = self._client_factory(config)
            except AwsSetupError as error:
                raise SetupError(str(error)) from error
            limiters = RateLimiters(_rates(config, self.shard), wait=self._stop.wait)
        return AwsCalls(
            client,
            limiters,
            self.metrics,
            max_retries=config.poll.max_retries,
            stop=self._stop,
        )

    def _events(self, config: Config, calls: AwsCalls) -> EventWiring | None:
        """SQS calls for the event source, with budgets and a stop of their own: a batch
        already applied is still deleted while the app stops (or it would count twice)."""
        if config.events is None:
            return None
        # As with the IoT client: an unchanged AWS and events setup keeps its client, so a
        # reload does not load botocore's SQS model again.
        key = (config.aws, config.events)
        if self._sqs_client is not None and self._sqs_client[0] == key:
            client = self._sqs_client[1]
        else:
            try:
                client = self._sqs_client_factory(config)
            except AwsSetupError as error:
                raise SetupError(str(error)) from error
            self._sqs_client = (key, client)
        if self._reports.event_metrics is None:
            # Registered once, at the first config with events: iot_exporter_events_* exist
            # only in event mode, and a registry takes each family once.
            self._reports.event_metrics = EventMetrics(self._collectors)
        closing = threading.Event()
        sqs_calls = AwsCalls(
            client,
            RateLimiters(calls.limiters.rates, wait=closing.wait),
            self.metrics,
            max_retries=config.poll.max_retries,
            stop=closing,
        )
        return EventWiring(sqs_calls, self._reports.event_metrics, closing)

    def _configure_state(self, runtime: Runtime) -> list[str]:
        """Give the state the runtime's target sources, static list, mode and aggregates;
        return the things that left."""
        config = runtime.config
        return self.state.configure(
            runtime.plan.slots,
            runtime.plan.static,
            events=config.events is not None,
            aggregates={query.name for query in config.aggregates.queries},
            rollups=_rollups(config),
        )

    def _apply_runtime_metrics(self, runtime: Runtime) -> None:
        for operation, rate in runtime.calls.limiters.rates.items():
            self.metrics.request_budget.labels(operation).set(rate)
        self._reports.use(runtime.plan.slots)

    def reload(self) -> ReloadResult:
        """Load the config again; on any error keep the running one and report it."""
        with self._reload_lock:
            old = self._runtime
            try:
                runtime = self._build(self._load_config(), old)
            except (ConfigError, SetupError) as error:
                return self._reload_failed(str(error))
            except Exception as error:  # a reload must never take the daemon down
                log.exception("unexpected error while reloading the config")
                return self._reload_failed(f"unexpected error: {error!r}")
            with self.renderer.paused():
                self._runtime = runtime
                left = self._configure_state(runtime)
                self.renderer.use(runtime.exposition, aggregate_max_age=runtime.aggregate_max_age)
            self._forget_removed_sources(old, runtime)
            for source in old.plan.sources:
                source.close()  # a reload builds every source anew; the old ones must end
            self._apply_runtime_metrics(runtime)
            self.metrics.config_reload_ok.set(1)
            self.metrics.config_reload_time.set(self._clock())
            self.render_now()
            if self._schedule is not None:
                self._schedule.update(old.plan.sources, runtime.plan.sources, held=self._held)
                # What follows a target pass follows a reload too: static things it added
                # are polled at once, and followers still waiting start if the new config
                # leaves nothing to wait for.
                self._schedule.soon(self._after_target_pass, runtime)
            targeted = self.state.targeted()
            log.info("config reloaded", extra={"things": targeted, "removed": len(left)})
            return ReloadResult(True, f"config reloaded: {targeted} things")

    def _forget_removed_sources(self, old: Runtime, new: Runtime) -> None:
        kept = {source.name for source in new.plan.sources}
        for source in old.plan.sources:
            if source.name not in kept:
                self._reported.discard(source.name)
                self._succeeded.discard(source.name)
                self._reports.forget(source.name)

    def _reload_failed(self, error: str) -> ReloadResult:
        self.metrics.config_reload_ok.set(0)
        log.error("config reload failed; keeping the running config", extra={"error": error})
        return ReloadResult(False, f"config reload failed; keeping the running config:\n{error}")

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start every source now (followers once discovery has reported) and the renderer."""
        runtime = self._runtime
        schedule = Schedule(self.run_pass, self._overran)
        self._schedule = schedule
        schedule.start(runtime.plan.sources, held=self._held)
        if not runtime.target_sources - {STATIC_SOURCE}:
            # Nothing to discover first.
            self._release_followers([s for s in runtime.plan.sources if s.follows_targets])
        self._render_thread = threading.Thread(
            target=self.renderer.run, args=(self._stop,), name="render", daemon=True
        )
        self._render_thread.start()

    def stop(self) -> None:
        """Stop every source; safe to call twice. In-flight requests are abandoned, not awaited."""
        self._stop.set()
        self.state.poke()
        schedule, self._schedule = self._schedule, None
        if schedule is not None:
            schedule.shutdown()


def _hook(source: Source, hook: Callable[..., None], *args: Any) -> None:
    """Call one of a source's hooks; a bug in it must not stop the passes that follow."""
    try:
        hook(*args)
    except Exception:
        log.exception(f"a source's {hook.__name__} failed", extra={"source": source.name})


def _default_sqs_client(config: Config) -> Any:
    if config.events is None:
        raise SetupError("events: no events section")
    return make_sqs_client(config.aws, config.events)
