"""Composition root: wires config, AWS client, poller, fleet state, scheduler and HTTP server.

Only this module owns threads, the scheduler and reloads; every part it wires is
passed its collaborators (client, clock, registry) so tests can substitute real ones.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor as SchedulerPool
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CollectorRegistry
from prometheus_client.process_collector import ProcessCollector

from exporter.aws import AwsSetupError, known_disconnect_reasons
from exporter.collector import FleetCollector, FleetView, Payload, render
from exporter.config import Config, ConfigError
from exporter.fleet import CycleSummary, FleetState
from exporter.poller import Poller
from exporter.ratelimit import RateLimiter
from exporter.server import ReloadResult
from exporter.targets import Targets, resolve_targets
from exporter.telemetry import ExporterMetrics

if TYPE_CHECKING:
    from mypy_boto3_iot import IoTClient

log = logging.getLogger(__name__)

JOB_ID = "poll"
ClientFactory = Callable[[Config], "IoTClient"]
ConfigLoader = Callable[[], Config]

INDEXING_HINT = (
    "fleet indexing of thing connectivity is not enabled in this account and region; "
    "GetThingConnectivityData needs it. Enable it with: aws iot update-indexing-configuration "
    "--thing-indexing-configuration thingIndexingMode=REGISTRY,thingConnectivityIndexingMode=STATUS"
)


class SetupError(Exception):
    """A config that validates but cannot run (for example no AWS region anywhere)."""


@dataclass(frozen=True, slots=True)
class Runtime:
    """Everything derived from one config; replaced as a whole on reload."""

    config: Config
    targets: Targets
    poller: Poller


class Exporter:
    """The running exporter: polls on a schedule, keeps state, serves rendered bytes."""

    def __init__(
        self,
        load_config: ConfigLoader,
        client_factory: ClientFactory,
        *,
        clock: Callable[[], float] = time.time,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._load_config = load_config
        self._client_factory = client_factory
        self._clock = clock
        self._registry = registry if registry is not None else CollectorRegistry()
        self.metrics = ExporterMetrics(self._registry)
        ProcessCollector(registry=self._registry)
        self._collector = FleetCollector()
        self._registry.register(self._collector)
        self._fleet = FleetState(known_disconnect_reasons())
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._state_lock = threading.Lock()  # fleet, runtime swap, rendering
        self._cycle_lock = threading.Lock()  # at most one cycle, and reload waits to close pollers
        self._reload_lock = threading.Lock()
        self._index_hint_logged = False
        self._not_found: frozenset[str] = frozenset()
        self._scheduler: BackgroundScheduler | None = None
        self._runtime = self._build(load_config())  # errors here are fatal at start-up
        self._apply_runtime_metrics(self._runtime)
        self.metrics.config_reload_ok.set(1)
        self.metrics.config_reload_time.set(clock())
        with self._state_lock:
            self._payload = self._render_locked()

    # -- state the HTTP layer reads ------------------------------------------------------

    def payload(self) -> Payload:
        return self._payload

    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def config(self) -> Config:
        return self._runtime.config

    # -- polling ------------------------------------------------------------------------

    def poll_cycle(self) -> CycleSummary | None:
        """Poll every target once and publish the result; None if stopped mid-cycle."""
        with self._cycle_lock:
            runtime = self._runtime
            started = time.monotonic()
            observations = runtime.poller.poll(runtime.targets.names)
            if self._stop.is_set():
                return None
            with self._state_lock:
                if runtime is not self._runtime:
                    # Reloaded mid-cycle: drop answers for things the new config removed.
                    wanted = set(self._runtime.targets.names)
                    observations = [o for o in observations if o.thing_name in wanted]
                summary = self._fleet.apply(observations)
                duration = time.monotonic() - started
                self.metrics.cycle_duration.observe(duration)
                self.metrics.cycles.inc()
                self.metrics.last_cycle_success.set(self._clock())
                self._payload = self._render_locked()
            if runtime is not self._runtime:
                runtime.poller.close()
        self._ready.set()
        self._log_cycle(summary, duration)
        return summary

    def _render_locked(self) -> Payload:
        runtime = self._runtime
        self._collector.view = FleetView(
            fleet=self._fleet,
            staleness=runtime.config.poll.staleness,
            now=self._clock(),
            thing_labels=runtime.targets.labels,
            label_names=runtime.targets.label_names,
        )
        return render(self._registry)

    def _log_cycle(self, summary: CycleSummary, duration: float) -> None:
        log.info(
            "poll cycle finished",
            extra={
                "things": summary.observed,
                "ok": summary.succeeded,
                "failed": summary.failed,
                "not_found": summary.not_found,
                "disconnects": sum(summary.counted.values()),
                "duration_seconds": round(duration, 3),
            },
        )
        if summary.error_codes.get("IndexNotReadyException"):
            if not self._index_hint_logged:
                region = self._runtime.config.aws.region or "<your region>"
                log.error(INDEXING_HINT + f" --region {region}")
                self._index_hint_logged = True
        elif summary.succeeded:
            self._index_hint_logged = False
        not_found = frozenset(
            name
            for name, state in self._fleet.things.items()
            if state.last_error == "ResourceNotFoundException"
        )
        if not_found != self._not_found:
            self._not_found = not_found
            if not_found:
                log.warning(
                    "things not found in AWS IoT; reported as poll failures, not disconnects",
                    extra={"count": len(not_found), "things": ",".join(sorted(not_found)[:20])},
                )

    # -- configuration ------------------------------------------------------------------

    def _build(self, config: Config) -> Runtime:
        try:
            client = self._client_factory(config)
        except AwsSetupError as error:
            raise SetupError(str(error)) from error
        limiter = RateLimiter(config.poll.max_requests_per_second, wait=self._stop.wait)
        poller = Poller(
            client,
            limiter,
            self.metrics,
            concurrency=config.poll.concurrency,
            max_retries=config.poll.max_retries,
            stop=self._stop,
            clock=self._clock,
        )
        runtime = Runtime(config=config, targets=resolve_targets(config), poller=poller)
        _warn_if_budget_too_small(runtime)
        return runtime

    def _apply_runtime_metrics(self, runtime: Runtime) -> None:
        self.metrics.request_budget.set(runtime.config.poll.max_requests_per_second)
        self.metrics.things_targeted.set(len(runtime.targets.names))

    def reload(self) -> ReloadResult:
        """Load the config again; on any error keep the running one and report it."""
        with self._reload_lock:
            try:
                runtime = self._build(self._load_config())
            except (ConfigError, SetupError) as error:
                self.metrics.config_reload_ok.set(0)
                log.error(
                    "config reload failed; keeping the running config", extra={"error": str(error)}
                )
                with self._state_lock:
                    self._payload = self._render_locked()
                return ReloadResult(
                    False, f"config reload failed; keeping the running config:\n{error}"
                )
            old = self._runtime
            with self._state_lock:
                self._runtime = runtime
                removed = self._fleet.retain(runtime.targets.names)
                self._apply_runtime_metrics(runtime)
                self.metrics.config_reload_ok.set(1)
                self.metrics.config_reload_time.set(self._clock())
                self._payload = self._render_locked()
            self._reschedule(old.config, runtime.config)
            if self._cycle_lock.acquire(blocking=False):
                # No cycle is using the old poller; otherwise that cycle closes it when done.
                try:
                    old.poller.close()
                finally:
                    self._cycle_lock.release()
            log.info(
                "config reloaded",
                extra={"things": len(runtime.targets.names), "removed": len(removed)},
            )
            return ReloadResult(True, f"config reloaded: {len(runtime.targets.names)} things")

    def _reschedule(self, old: Config, new: Config) -> None:
        if self._scheduler is not None and old.poll.interval != new.poll.interval:
            self._scheduler.reschedule_job(
                JOB_ID, trigger=IntervalTrigger(seconds=new.poll.interval)
            )

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start polling now (first cycle immediately), then every poll.interval."""
        # Two workers so APScheduler can notice (and report) a due run while one is busy.
        scheduler = BackgroundScheduler(executors={"default": SchedulerPool(2)}, timezone="UTC")
        scheduler.add_listener(self._on_overrun, EVENT_JOB_MAX_INSTANCES)
        scheduler.add_job(
            self._scheduled_cycle,
            IntervalTrigger(seconds=self._runtime.config.poll.interval),
            id=JOB_ID,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=dt.datetime.now(dt.UTC),
        )
        scheduler.start()
        self._scheduler = scheduler

    def _scheduled_cycle(self) -> None:
        try:
            self.poll_cycle()
        except Exception:
            # Never let one bad cycle kill the schedule; the next cycle tries again.
            log.exception("poll cycle failed")

    def _on_overrun(self, event: JobExecutionEvent) -> None:
        self.metrics.cycles_overrun.inc()
        log.warning(
            "poll cycle overran its interval; skipping this run instead of stacking cycles",
            extra={"interval_seconds": self._runtime.config.poll.interval},
        )

    def stop(self) -> None:
        """Stop polling; safe to call twice. In-flight requests are abandoned, not awaited."""
        self._stop.set()
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        self._runtime.poller.close()


def _warn_if_budget_too_small(runtime: Runtime) -> None:
    """Say at load time, not after the first overrun, when the budget cannot fit a cycle."""
    poll = runtime.config.poll
    shortest_cycle = len(runtime.targets.names) / poll.max_requests_per_second
    if shortest_cycle > poll.interval:
        log.warning(
            "a poll cycle cannot finish within poll.interval at this request budget; "
            "cycles will overrun: raise poll.interval or poll.max_requests_per_second",
            extra={
                "things": len(runtime.targets.names),
                "max_requests_per_second": poll.max_requests_per_second,
                "shortest_cycle_seconds": round(shortest_cycle, 1),
                "interval_seconds": poll.interval,
            },
        )
