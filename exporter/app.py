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

from exporter import __version__
from exporter.aws import AwsSetupError, known_disconnect_reasons
from exporter.collector import FleetView, Payload, render_fleet, render_live
from exporter.config import Config
from exporter.fleet import CycleSummary, FleetState, went_stale_between
from exporter.poller import Poller
from exporter.ratelimit import RateLimiter
from exporter.server import ReloadResult
from exporter.targets import Targets, resolve_targets
from exporter.telemetry import ExporterMetrics
from exporter.yamlfile import ConfigError

if TYPE_CHECKING:
    from mypy_boto3_iot import IoTClient

log = logging.getLogger(__name__)

JOB_ID = "poll"
ClientFactory = Callable[[Config], "IoTClient"]
ConfigLoader = Callable[[], Config]

# Errors that no retry fixes: the account or the identity must change. Each is explained
# once per episode (until a cycle succeeds without it), not once per thing.
ACCOUNT_HINTS = {
    "IndexNotReadyException": (
        "fleet indexing of thing connectivity is not enabled in this account and region; "
        "GetThingConnectivityData needs it. Enable it with: aws iot update-indexing-configuration "
        "--thing-indexing-configuration "
        "thingIndexingMode=REGISTRY,thingConnectivityIndexingMode=STATUS --region {region}"
    ),
    "AccessDeniedException": (
        "AWS denied GetThingConnectivityData: give the exporter's identity "
        "iot:GetThingConnectivityData on arn:aws:iot:{region}:ACCOUNT:thing/* (see the README)"
    ),
    "UnauthorizedException": (
        "AWS answered UnauthorizedException: check the exporter's credentials and that its "
        "identity has iot:GetThingConnectivityData in {region}"
    ),
}


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
        # The exporter's own metrics are small and rendered per scrape, so counters and
        # overruns move during a long cycle; the fleet's families (nearly every byte) are
        # rendered once per cycle and cached.
        self._registry = registry if registry is not None else CollectorRegistry()
        self.metrics = ExporterMetrics(self._registry)
        ProcessCollector(registry=self._registry)
        self._fleet = FleetState(known_disconnect_reasons())
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._state_lock = threading.Lock()  # fleet, runtime swap, fleet rendering
        self._cycle_lock = threading.Lock()  # at most one cycle at a time
        self._reload_lock = threading.Lock()
        self._hints_logged: set[str] = set()
        self._not_found: frozenset[str] = frozenset()
        self._scheduler: BackgroundScheduler | None = None
        self._runtime = self._build(load_config())  # errors here are fatal at start-up
        self._apply_runtime_metrics(self._runtime)
        self.metrics.config_reload_ok.set(1)
        self.metrics.config_reload_time.set(clock())
        with self._state_lock:
            self._fleet_payload = self._render_fleet_locked()
        config = self._runtime.config
        log.info(
            "exporter configured",
            extra={
                "version": __version__,
                "things": len(self._runtime.targets.names),
                "region": self._region,
                "interval_seconds": config.poll.interval,
                "max_requests_per_second": config.poll.max_requests_per_second,
                "concurrency": config.poll.concurrency,
            },
        )

    # -- state the HTTP layer reads ------------------------------------------------------

    def payload(self) -> Payload:
        """The cached fleet exposition behind a fresh rendering of the exporter's own metrics."""
        return self._fleet_payload.preceded_by(render_live(self._registry))

    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def _region(self) -> str:
        # The region may come from boto3's chain rather than the file; the client knows.
        region = self._runtime.poller.region
        return region or self._runtime.config.aws.region or "<your region>"

    # -- polling ------------------------------------------------------------------------

    def poll_cycle(self) -> CycleSummary | None:
        """Poll every target once and publish the result; None if stopped."""
        with self._cycle_lock:
            if self._stop.is_set():
                return None
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
                if summary.succeeded:
                    # A cycle in which every poll failed, or none was made, is no sign of
                    # life from AWS.
                    self.metrics.last_cycle_success.set(self._clock())
                self._fleet_payload = self._render_fleet_locked()
        self._ready.set()
        self._log_cycle(summary, duration)
        return summary

    def _render_fleet_locked(self) -> Payload:
        runtime = self._runtime
        self._rendered_view = FleetView(
            fleet=self._fleet,
            staleness=runtime.config.poll.staleness,
            now=self._clock(),
            thing_labels=runtime.targets.labels,
            label_names=runtime.targets.label_names,
        )
        return render_fleet(self._rendered_view)

    def _log_cycle(self, summary: CycleSummary, duration: float) -> None:
        errors = ",".join(f"{code}:{n}" for code, n in sorted(summary.error_codes.items()))
        log.log(
            logging.WARNING if summary.failed else logging.INFO,
            "poll cycle finished",
            extra={
                "things": summary.observed,
                "ok": summary.succeeded,
                "failed": summary.failed,
                "not_found": summary.not_found,
                "errors": errors,
                "disconnects": sum(summary.counted.values()),
                "duration_seconds": round(duration, 3),
            },
        )
        self._log_hints(summary)
        if summary.not_found_names != self._not_found:
            self._not_found = summary.not_found_names
            if self._not_found:
                log.warning(
                    "things not found in AWS IoT; reported as poll failures, not disconnects",
                    extra={
                        "count": len(self._not_found),
                        "things": ",".join(sorted(self._not_found)[:20]),
                    },
                )

    def _log_hints(self, summary: CycleSummary) -> None:
        """Explain, once per episode, the account-level problems an operator must fix."""
        for code, hint in ACCOUNT_HINTS.items():
            if summary.error_codes.get(code):
                if code not in self._hints_logged:
                    self._hints_logged.add(code)
                    log.error(hint.format(region=self._region))
            elif summary.succeeded:
                self._hints_logged.discard(code)

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
                return self._reload_failed(str(error))
            except Exception as error:  # a reload must never take the daemon down
                log.exception("unexpected error while reloading the config")
                return self._reload_failed(f"unexpected error: {error!r}")
            old = self._runtime
            with self._state_lock:
                self._runtime = runtime
                removed = self._fleet.retain(runtime.targets.names)
                self._apply_runtime_metrics(runtime)
                self.metrics.config_reload_ok.set(1)
                self.metrics.config_reload_time.set(self._clock())
                self._fleet_payload = self._render_fleet_locked()
            self._reschedule(old.config, runtime.config)
            log.info(
                "config reloaded",
                extra={"things": len(runtime.targets.names), "removed": len(removed)},
            )
            return ReloadResult(True, f"config reloaded: {len(runtime.targets.names)} things")

    def _reload_failed(self, error: str) -> ReloadResult:
        self.metrics.config_reload_ok.set(0)
        log.error("config reload failed; keeping the running config", extra={"error": error})
        return ReloadResult(False, f"config reload failed; keeping the running config:\n{error}")

    def _reschedule(self, old: Config, new: Config) -> None:
        if self._scheduler is not None and old.poll.interval != new.poll.interval:
            self._scheduler.reschedule_job(
                JOB_ID, trigger=IntervalTrigger(seconds=new.poll.interval)
            )

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start polling now (first cycle immediately), then every poll.interval."""
        # One worker for the one job: max_instances=1 refuses a run while a cycle is still
        # going (the listener below reports it), so a second worker would never be used.
        scheduler = BackgroundScheduler(executors={"default": SchedulerPool(1)}, timezone="UTC")
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
        # The running cycle publishes nothing until it ends, and one stuck on a request
        # that never times out (a hung DNS lookup) may not end at all. Rendering here
        # withdraws state older than poll.staleness all the same; only when some has
        # crossed the window, as an overrun is also routine for a budget too small.
        with self._state_lock:
            shown = self._rendered_view
            things = self._fleet.things.values()
            if went_stale_between(things, shown.now, self._clock(), shown.staleness):
                self._fleet_payload = self._render_fleet_locked()

    def stop(self) -> None:
        """Stop polling; safe to call twice. In-flight requests are abandoned, not awaited."""
        self._stop.set()
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.shutdown(wait=False)


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
