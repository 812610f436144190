"""What each pass tells the operator: the source's metrics and log lines, once per episode.

Every source's pass ends in a PassOutcome; this turns it into the iot_exporter_source_*
families, the poll-cycle figures of sources that observe, a log line when a failure
starts or ends (not one per pass), one-line fixes for failures no retry cures, and a
word on names AWS could not have issued.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from exporter.aws.hints import Hints
from exporter.exposition.event_metrics import EventMetrics
from exporter.exposition.self_metrics import ExporterMetrics
from exporter.fleet.connectivity import BatchSummary
from exporter.fleet.shared import SharedState
from exporter.fleet.targets import STATIC_SOURCE, SourceCount, SourceSlot
from exporter.sources.base import PassOutcome, Source

log = logging.getLogger(__name__)

# A name in a log line is shown as Python writes it (quotes, \n escaped), at most this many.
INVALID_NAMES_SHOWN = 3


class PassReports:
    """Reports the passes of one exporter's sources; a reload hands it the new slots."""

    def __init__(
        self,
        metrics: ExporterMetrics,
        state: SharedState,
        *,
        clock: Callable[[], float],
        region: Callable[[], str],
        sharded: bool = False,
    ) -> None:
        self._metrics = metrics
        # Sharded, a small source may name no thing of this shard's: no cause for a warning.
        self._sharded = sharded
        self._state = state
        self._clock = clock
        self._region = region
        self._caps: dict[str, int] = {}  # target source -> its max_things, if capped
        self._hints = Hints()
        self._failing: dict[str, str] = {}  # source -> the problem logged for its episode
        self._invalid: set[str] = set()  # sources whose invalid names were logged
        self.event_metrics: EventMetrics | None = None  # set once events are configured

    def use(self, slots: Sequence[SourceSlot]) -> None:
        """The target sources of the config now running."""
        self._caps = {slot.name: slot.max_things for slot in slots if slot.max_things is not None}
        for name, cap in self._caps.items():
            self._metrics.source_max_things.labels(name).set(cap)
        self.update_counts()

    def record(self, source: Source, outcome: PassOutcome, duration: float) -> None:
        """Metrics and log lines for one pass of `source`."""
        metrics, name = self._metrics, source.name
        metrics.source_passes.labels(name).inc()
        if outcome.summary.missed and self.event_metrics is not None:
            self.event_metrics.missed.inc(outcome.summary.missed)
        metrics.source_duration.labels(name).set(duration)
        metrics.source_ok.labels(name).set(1 if outcome.ok else 0)
        if outcome.ok:
            metrics.source_success_time.labels(name).set(self._clock())
        else:
            metrics.source_failures.labels(name).inc()
        if source.observes:
            metrics.cycles.inc()
            metrics.cycle_duration.observe(duration)
            if outcome.summary.succeeded:
                metrics.last_cycle_success.set(self._clock())
            self._log_cycle(source, outcome, duration)
        self._invalid_names(source, outcome.invalid_names)
        counts = self.update_counts()
        self._log_outcome(source, outcome, counts.get(name))
        self._hints.observe(name, outcome.failures, succeeded=outcome.ok, region=self._region())

    def update_counts(self) -> dict[str, SourceCount]:
        """The target gauges, after every pass and reload: the passes change the targets.

        The counts are the state's own, for the sources it holds now: a pass that ends
        while a reload swaps the sources reads no source the state no longer knows.
        """
        self._metrics.things_targeted.set(self._state.targeted())
        counts = self._state.counts()
        for name, count in counts.items():
            self._metrics.source_things.labels(name).set(count.things)
            if name in self._caps:
                self._metrics.source_refused.labels(name).set(count.refused)
        return counts

    def forget(self, name: str) -> None:
        """A reload removed the source: its series go, and it holds no episode open."""
        self._failing.pop(name, None)
        self._invalid.discard(name)
        self._hints.forget(name)
        self._metrics.forget_source(name)

    # -- log lines ----------------------------------------------------------------------

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
        _log_not_found(summary)

    def _log_outcome(self, source: Source, outcome: PassOutcome, count: SourceCount | None) -> None:
        """Failures once per episode (and their end), caps and empty sources as they happen.

        `count` is the source's target count; None when it names no things.
        """
        name = source.name
        if not outcome.ok:
            if self._failing.get(name) != outcome.problem:
                self._failing[name] = outcome.problem
                kept = "; keeping its last list" if count is not None else ""
                log.error(
                    f"{source.where}: source failed{kept}",
                    extra={"source": name, "problem": outcome.problem},
                )
            return
        if self._failing.pop(name, None) is not None:
            log.info(f"{source.where}: source recovered", extra={"source": name})
        if count is None:
            return
        if count.refused:
            log.warning(
                f"{source.where}: more things than max_things; the rest are left out",
                extra={
                    "source": name,
                    "max_things": self._caps.get(name),
                    "refused": count.refused,
                },
            )
        elif count.things == 0 and name != STATIC_SOURCE and not self._sharded:
            log.warning(f"{source.where}: names no things", extra={"source": name})

    def _invalid_names(self, source: Source, names: Sequence[str]) -> None:
        """Count names AWS could not have issued; log once until a pass meets none."""
        if not names:
            self._invalid.discard(source.name)
            return
        self._metrics.source_invalid_names.labels(source.name).inc(len(names))
        if source.name in self._invalid:
            return
        self._invalid.add(source.name)
        log.warning(
            f"{source.where}: names that AWS could not have issued as thing names are left out"
            " (logged once; iot_exporter_source_invalid_thing_names_total counts them)",
            extra={
                "source": source.name,
                "count": len(names),
                # repr: a name with a quote or a newline must not break the log line.
                "names": ", ".join(repr(name) for name in names[:INVALID_NAMES_SHOWN]),
            },
        )


def _log_not_found(summary: BatchSummary) -> None:
    if summary.not_found_names:
        log.warning(
            "things not found in AWS IoT; reported as poll failures, not disconnects",
            extra={
                "count": len(summary.not_found_names),
                "things": ",".join(sorted(summary.not_found_names)[:20]),
            },
        )
