"""Composition root: wires config, AWS calls, sources, shared state, renderer and scheduler.

Only this module owns threads, the scheduler and reloads; every part it wires is passed
its collaborators (client, clock, registry) so tests can substitute real ones.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor as SchedulerPool
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.process_collector import ProcessCollector

from exporter import __version__
from exporter.aws.calls import AwsCalls
from exporter.aws.clients import AwsSetupError, known_disconnect_reasons, make_sqs_client
from exporter.aws.hints import Hints
from exporter.aws.pacing import RateLimiters
from exporter.config import Config
from exporter.config.budgets import DEFAULT_BUDGETS
from exporter.config.yamlfile import ConfigError
from exporter.exposition.event_metrics import EventMetrics
from exporter.exposition.self_metrics import ExporterMetrics
from exporter.exposition.series import Exposition, Shape
from exporter.fleet.connectivity import BatchSummary
from exporter.fleet.shared import SharedState
from exporter.fleet.targets import STATIC_SOURCE, Found
from exporter.names import POLL_OPERATION
from exporter.sources import PassOutcome, Plan, Source, plan
from exporter.sources.aggregates import AggregatesSource
from exporter.sources.events import EventSource, EventWiring
from exporter.sources.index import IndexPager
from exporter.sources.live import LivePoller
from exporter.web.payload import Payload
from exporter.web.server import ReloadResult

if TYPE_CHECKING:
    from mypy_boto3_iot import IoTClient

log = logging.getLogger(__name__)

ClientFactory = Callable[[Config], "IoTClient"]
SqsClientFactory = Callable[[Config], Any]
ConfigLoader = Callable[[], Config]

# Rendering follows changes, but at most once per this many seconds, and never more often
# than RENDER_SHARE of the time: a render of 100,000 things takes a good part of a second.
RENDER_MIN_INTERVAL = 1.0
RENDER_SHARE = 0.25
# The renderer looks at the clock at least this often, so a thing crossing poll.staleness
# is withdrawn on time even when nothing changes (and on a test's manual clock).
RENDER_TICK = 1.0
# Aggregates older than this many aggregates.interval are withdrawn, like stale things.
AGGREGATE_STALENESS_INTERVALS = 3
# Each source's job is one thread; the live poller's workers are its own.
SCHEDULER_THREADS = 64


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
        return next((s for s in self.plan.sources if s.name == name), None)


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
        aggregates=bool(config.aggregates.queries),
    )


def _rates(config: Config) -> dict[str, float]:
    return {operation: config.budget(operation) for operation in (POLL_OPERATION, *DEFAULT_BUDGETS)}


def _observes(source: Source) -> bool:
    """Whether the source's passes are poll cycles: it observes connectivity."""
    return isinstance(source, LivePoller) or (isinstance(source, IndexPager) and source.observes)


class Exporter:
    """The running exporter: runs its sources on schedules, keeps state, serves bytes."""

    def __init__(
        self,
        load_config: ConfigLoader,
        client_factory: ClientFactory,
        *,
        clock: Callable[[], float] = time.time,
        registry: CollectorRegistry | None = None,
        sqs_client_factory: SqsClientFactory | None = None,
    ) -> None:
        self._load_config = load_config
        self._client_factory = client_factory
        self._sqs_client_factory = sqs_client_factory or _default_sqs_client
        self._event_metrics: EventMetrics | None = None
        self._sqs_client: tuple[tuple[object, object], Any] | None = None
        self._clock = clock
        # The exporter's own metrics are small and rendered per scrape, so counters move
        # during a long pass; the fleet's series (nearly every byte) are rendered on change.
        self._registry = registry if registry is not None else CollectorRegistry()
        self.metrics = ExporterMetrics(self._registry)
        ProcessCollector(registry=self._registry)
        self._stop = threading.Event()
        self._reload_lock = threading.Lock()
        self._render_lock = threading.Lock()
        self._scheduler: BackgroundScheduler | None = None
        self._renderer: threading.Thread | None = None
        self._reported: set[str] = set()
        self._ready_at: int | None = None  # the state's version once every source reported
        self._live_released = False
        self._hints = Hints()
        self._failing: dict[str, str] = {}
        self._runtime = self._build(load_config(), None)  # errors here are fatal at start-up
        self.state = SharedState(self._runtime.plan.slots, known_disconnect_reasons(), clock=clock)
        self.state.fleet.events = self._runtime.config.events is not None
        self._seed_static(self._runtime.config)
        self._apply_runtime_metrics(self._runtime)
        self.metrics.config_reload_ok.set(1)
        self.metrics.config_reload_time.set(clock())
        self._rendered_version = -1
        self._stale_at: float | None = None
        self._fleet_payload = Payload.of(b"")
        self.render_now()
        config = self._runtime.config
        log.info(
            "exporter configured",
            extra={
                "version": __version__,
                "static_things": len(config.things),
                "sources": ",".join(source.name for source in self._runtime.plan.sources),
                "region": self._region,
                "mode": config.poll.mode,
                "interval_seconds": config.poll.interval,
                "max_requests_per_second": config.poll.max_requests_per_second,
            },
        )

    # -- what the HTTP layer reads -------------------------------------------------------

    def payload(self) -> Payload:
        """The cached fleet exposition behind a fresh rendering of the exporter's own metrics."""
        return self._fleet_payload.preceded_by(generate_latest(self._registry))

    def ready(self) -> bool:
        """Ready once every source has reported once (successfully or not), and /metrics
        shows what they reported."""
        if self._ready_at is None:
            if not all(s.name in self._reported for s in self._runtime.plan.sources):
                return False
            self._ready_at = self.state.version
        return self._rendered_version >= self._ready_at

    @property
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
        targets_things = name in {slot.name for slot in runtime.plan.slots}
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
        self._record(source, outcome, duration)
        if targets_things:
            self._after_target_pass(runtime)
        return outcome

    def run_all(self) -> dict[str, PassOutcome | None]:
        """One pass of every source, target sources first: what a test's "cycle" is."""
        sources = self._runtime.plan.sources
        order = sorted(sources, key=lambda s: isinstance(s, LivePoller | AggregatesSource))
        return {source.name: self.run_pass(source.name) for source in order}

    def _record(self, source: Source, outcome: PassOutcome, duration: float) -> None:
        metrics, name = self.metrics, source.name
        metrics.source_passes.labels(name).inc()
        if outcome.summary.missed and self._event_metrics is not None:
            self._event_metrics.missed.inc(outcome.summary.missed)
        metrics.source_duration.labels(name).set(duration)
        metrics.source_ok.labels(name).set(1 if outcome.ok else 0)
        if outcome.ok:
            metrics.source_success_time.labels(name).set(self._clock())
        else:
            metrics.source_failures.labels(name).inc()
        if _observes(source):
            metrics.cycles.inc()
            metrics.cycle_duration.observe(duration)
            if outcome.summary.succeeded:
                metrics.last_cycle_success.set(self._clock())
            self._log_cycle(source, outcome, duration)
        self._update_counts()
        self._log_outcome(source, outcome)
        self._hints.observe(name, outcome.failures, succeeded=outcome.ok, region=self._region)
        self._reported.add(name)

    def _after_target_pass(self, runtime: Runtime) -> None:
        """Poll what discovery just added, or start the live poller once every target
        source has reported (so its first pass covers the whole discovered fleet)."""
        live = runtime.plan.live
        if live is None:
            return
        if self._live_released:
            joined = self.state.take_joined_live()
            if joined:
                self._log_prompt_poll(len(joined))
                live.poll(joined, self.state)
            return
        targets = {slot.name for slot in runtime.plan.slots}
        if targets <= self._reported | {STATIC_SOURCE}:
            self._release_live()
            self._warn_if_live_budget_too_small(runtime)

    def _warn_if_live_budget_too_small(self, runtime: Runtime) -> None:
        """Once discovery has named the live things, say if a cycle cannot fit its interval."""
        things = len(self.state.targets.live_names())
        poll = runtime.config.poll
        if things / poll.max_requests_per_second > poll.interval:
            _warn_budget(things, poll.max_requests_per_second, poll.interval)

    def _release_live(self) -> None:
        self._live_released = True
        self.state.take_joined_live()  # the first pass covers them
        scheduler = self._scheduler
        if scheduler is not None and scheduler.get_job(LivePoller.name) is not None:
            scheduler.modify_job(LivePoller.name, next_run_time=dt.datetime.now(dt.UTC))

    def _update_counts(self) -> None:
        """The target gauges, after every pass and reload: the passes change the targets."""
        self.metrics.things_targeted.set(len(self.state.targets))
        for slot in self._runtime.plan.slots:
            count = self.state.count(slot.name)
            self.metrics.source_things.labels(slot.name).set(count.things)
            if slot.max_things is not None:
                self.metrics.source_refused.labels(slot.name).set(count.refused)

    # -- rendering ----------------------------------------------------------------------

    def render_now(self) -> None:
        """Render the fleet's series from the state as it is now."""
        with self._render_lock:
            runtime = self._runtime
            started = time.monotonic()
            with self.state.lock:
                version = self.state.version
                now = self._clock()
                runtime.exposition.forget(self.state.take_left())
                max_age = AGGREGATE_STALENESS_INTERVALS * runtime.config.aggregates.interval
                rendered = runtime.exposition.render(
                    self.state.targets,
                    self.state.fleet,
                    self.state.aggregates(now, max_age),
                    now,
                )
            # Compressed outside the lock: sources keep applying while this runs.
            self._fleet_payload = Payload.of(rendered.text)
            self._rendered_version = version
            self._stale_at = rendered.stale_at
            self.metrics.render_duration.set(time.monotonic() - started)
            self.metrics.renders.inc()

    def _render_loop(self) -> None:
        last_render = 0.0
        cost = 0.0
        while not self._stop.is_set():
            version = self.state.wait_for_change(self._rendered_version, RENDER_TICK)
            if self._stop.is_set():
                return
            due = self._stale_at is not None and self._clock() >= self._stale_at
            if version == self._rendered_version and not due:
                continue
            pause = max(RENDER_MIN_INTERVAL, cost / RENDER_SHARE) - (time.monotonic() - last_render)
            if pause > 0 and self._stop.wait(pause):
                return
            started = time.monotonic()
            try:
                self.render_now()
            except Exception:  # never let a rendering bug stop rendering
                log.exception("rendering the fleet failed")
            last_render, cost = time.monotonic(), time.monotonic() - started

    # -- logs ---------------------------------------------------------------------------

    def _log_cycle(self, source: Source, outcome: PassOutcome, duration: float) -> None:
        summary = outcome.summary
        errors = ",".join(f"{code}:{n}" for code, n in sorted(summary.error_codes.items()))
        log.log(
            logging.WARNING if summary.failed or not outcome.ok else logging.INFO,
            "poll cycle finished",
            extra={
                "source": source.name,
                "things": summary.observed,
                "ok": summary.succeeded,
                "failed": summary.failed,
                "not_found": summary.not_found,
                "errors": errors,
                "disconnects": sum(summary.counted.values()),
                "duration_seconds": round(duration, 3),
            },
        )
        self._log_not_found(summary)

    def _log_not_found(self, summary: BatchSummary) -> None:
        if summary.not_found_names:
            log.warning(
                "things not found in AWS IoT; reported as poll failures, not disconnects",
                extra={
                    "count": len(summary.not_found_names),
                    "things": ",".join(sorted(summary.not_found_names)[:20]),
                },
            )

    def _log_outcome(self, source: Source, outcome: PassOutcome) -> None:
        """Failures once per episode (and their end), caps and empty sources as they happen."""
        name = source.name
        if not outcome.ok:
            if self._failing.get(name) != outcome.problem:
                self._failing[name] = outcome.problem
                kept = (
                    "; keeping its last list"
                    if name in {slot.name for slot in self._runtime.plan.slots}
                    else ""
                )
                log.error(
                    f"{source.where}: source failed{kept}",
                    extra={"source": name, "problem": outcome.problem},
                )
            return
        if self._failing.pop(name, None) is not None:
            log.info(f"{source.where}: source recovered", extra={"source": name})
        slot = next((s for s in self._runtime.plan.slots if s.name == name), None)
        if slot is None:
            return
        count = self.state.count(name)
        if count.refused:
            log.warning(
                f"{source.where}: more things than max_things; the rest are left out",
                extra={"source": name, "max_things": slot.max_things, "refused": count.refused},
            )
        elif count.things == 0 and name != STATIC_SOURCE:
            log.warning(f"{source.where}: names no things", extra={"source": name})

    def _log_prompt_poll(self, count: int) -> None:
        log.info("polling newly discovered things now", extra={"things": count})

    # -- configuration ------------------------------------------------------------------

    def _build(self, config: Config, old: Runtime | None) -> Runtime:
        calls = self._calls(config, old)
        events = self._events(config, calls)
        sources = plan(config, calls, stop=self._stop, clock=self._clock, events=events)
        runtime = Runtime(config, calls, sources, Exposition(_shape(config)))
        _warn_if_budget_too_small(runtime)
        return runtime

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
            budgets = old.calls.limiters.updated(_rates(config))
        else:
            try:
                client = self._client_factory(config)
            except AwsSetupError as error:
                raise SetupError(str(error)) from error
            budgets = RateLimiters(_rates(config), wait=self._stop.wait)
        return AwsCalls(
            client,
            budgets,
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
        if self._event_metrics is None:
            self._event_metrics = EventMetrics(self._registry)
        closing = threading.Event()
        sqs_calls = AwsCalls(
            client,
            RateLimiters(calls.limiters.rates, wait=closing.wait),
            self.metrics,
            max_retries=config.poll.max_retries,
            stop=closing,
        )
        return EventWiring(sqs_calls, self._event_metrics, closing)

    def _seed_static(self, config: Config) -> None:
        if config.things:
            names = config.things.names
            self.state.found(STATIC_SOURCE, [Found(name) for name in names])
            self.state.settled(STATIC_SOURCE, frozenset(names))

    def _apply_runtime_metrics(self, runtime: Runtime) -> None:
        for operation, rate in runtime.calls.limiters.rates.items():
            self.metrics.request_budget.labels(operation).set(rate)
        for slot in runtime.plan.slots:
            if slot.max_things is not None:
                self.metrics.source_max_things.labels(slot.name).set(slot.max_things)
        self._update_counts()

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
            with self._render_lock, self.state.lock:
                self._runtime = runtime
                self.state.fleet.events = runtime.config.events is not None
                left = self.state.reconfigure(runtime.plan.slots)
                self._seed_static(runtime.config)
                self.state.keep_aggregates({q.name for q in runtime.config.aggregates.queries})
            self._forget_removed_sources(old, runtime)
            _close_event_sources(old)
            self._apply_runtime_metrics(runtime)
            self.metrics.config_reload_ok.set(1)
            self.metrics.config_reload_time.set(self._clock())
            self.render_now()
            self._reschedule(old, runtime)
            self._after_reload(runtime)
            log.info(
                "config reloaded",
                extra={"things": len(self.state.targets), "removed": len(left)},
            )
            return ReloadResult(True, f"config reloaded: {len(self.state.targets)} things")

    def _after_reload(self, runtime: Runtime) -> None:
        """What follows a target pass follows a reload too, on a scheduler thread: static
        things it added are polled at once, and a live poller still waiting for discovery
        starts if the new config leaves none to wait for."""
        scheduler = self._scheduler
        if scheduler is not None:
            scheduler.add_job(self._after_target_pass, args=(runtime,), misfire_grace_time=None)

    def _forget_removed_sources(self, old: Runtime, new: Runtime) -> None:
        kept = {source.name for source in new.plan.sources}
        for source in old.plan.sources:
            if source.name not in kept:
                self._reported.discard(source.name)
                self._failing.pop(source.name, None)
                self._hints.forget(source.name)
                self.metrics.forget_source(source.name)

    def _reload_failed(self, error: str) -> ReloadResult:
        self.metrics.config_reload_ok.set(0)
        log.error("config reload failed; keeping the running config", extra={"error": error})
        return ReloadResult(False, f"config reload failed; keeping the running config:\n{error}")

    def _reschedule(self, old: Runtime, new: Runtime) -> None:
        scheduler = self._scheduler
        if scheduler is None:
            return
        before = {source.name: source.interval for source in old.plan.sources}
        for source in new.plan.sources:
            if source.name not in before:
                self._add_job(scheduler, source)
            elif before[source.name] != source.interval:
                scheduler.reschedule_job(
                    source.name, trigger=IntervalTrigger(seconds=source.interval)
                )
        kept = {source.name for source in new.plan.sources}
        for name in before:
            if name not in kept and scheduler.get_job(name) is not None:
                scheduler.remove_job(name)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start every source now (the live poller once discovery has reported) and the renderer."""
        scheduler = BackgroundScheduler(
            executors={"default": SchedulerPool(SCHEDULER_THREADS)}, timezone="UTC"
        )
        scheduler.add_listener(self._on_overrun, EVENT_JOB_MAX_INSTANCES)
        self._scheduler = scheduler
        for source in self._runtime.plan.sources:
            self._add_job(scheduler, source)
        scheduler.start()
        if not {slot.name for slot in self._runtime.plan.slots} - {STATIC_SOURCE}:
            self._release_live()  # nothing to discover first
        self._renderer = threading.Thread(target=self._render_loop, name="render", daemon=True)
        self._renderer.start()

    def _add_job(self, scheduler: BackgroundScheduler, source: Source) -> None:
        waits = isinstance(source, LivePoller) and not self._live_released
        scheduler.add_job(
            self._scheduled_pass,
            IntervalTrigger(seconds=source.interval),
            args=(source.name,),
            id=source.name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            # The live poller waits for discovery: its first pass then covers every thing.
            next_run_time=None if waits else dt.datetime.now(dt.UTC),
        )

    def _scheduled_pass(self, name: str) -> None:
        try:
            self.run_pass(name)
        except Exception:
            # Never let one bad pass kill the schedule; the next pass tries again.
            log.exception("source pass failed", extra={"source": name})

    def _on_overrun(self, event: JobExecutionEvent) -> None:
        name = event.job_id
        source = self._runtime.source(name)
        self.metrics.source_overruns.labels(name).inc()
        if source is not None and _observes(source):
            self.metrics.cycles_overrun.inc()
        log.warning(
            "a pass overran its interval; skipping this run instead of stacking passes",
            extra={"source": name, "interval_seconds": source.interval if source else None},
        )

    def stop(self) -> None:
        """Stop every source; safe to call twice. In-flight requests are abandoned, not awaited."""
        self._stop.set()
        self.state.poke()
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.shutdown(wait=False)


def _default_sqs_client(config: Config) -> Any:
    if config.events is None:
        raise SetupError("events: no events section")
    return make_sqs_client(config.aws, config.events)


def _close_event_sources(runtime: Runtime) -> None:
    """A reload builds a new event source; the old one's consumers must end."""
    for source in runtime.plan.sources:
        if isinstance(source, EventSource):
            source.close()


def _warn_if_budget_too_small(runtime: Runtime) -> None:
    """Say at load time, not after the first overrun, when a budget cannot fit a cycle.

    The static list is known now; what discovery adds is checked once it has reported.
    The index pager's pages are a hundredth of its things, so only the live poller's
    budget is checked here.
    """
    config = runtime.config
    if config.poll.mode != "live" or not config.things:
        return
    things = len(config.things)
    if things / config.poll.max_requests_per_second > config.poll.interval:
        _warn_budget(things, config.poll.max_requests_per_second, config.poll.interval)


def _warn_budget(things: int, budget: float, interval: float) -> None:
    log.warning(
        "a poll cycle cannot finish within poll.interval at this request budget; "
        "cycles will overrun: raise poll.interval or poll.max_requests_per_second",
        extra={
            "things": things,
            "max_requests_per_second": budget,
            "shortest_cycle_seconds": round(things / budget, 1),
            "interval_seconds": interval,
        },
    )
