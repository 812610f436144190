"""The scheduler: a job per source, each running one pass at a time, every interval.

APScheduler's thread pool owns the jobs' threads. A pass still running when its next is
due is skipped, not stacked (max_instances=1, coalesced), and the skip is reported.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor as SchedulerPool
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from exporter.sources.base import Source

log = logging.getLogger(__name__)

# Each source's job is one thread; the live poller's workers are its own.
SCHEDULER_THREADS = 64


class Schedule:
    """Runs `run_pass(name)` for each source on its interval, and tells `overran(name)`
    when a pass was skipped because the previous one still ran."""

    def __init__(self, run_pass: Callable[[str], Any], overran: Callable[[str], None]) -> None:
        self._run_pass = run_pass
        self._overran = overran
        self._scheduler = BackgroundScheduler(
            executors={"default": SchedulerPool(SCHEDULER_THREADS)}, timezone="UTC"
        )
        self._scheduler.add_listener(self._on_overrun, EVENT_JOB_MAX_INSTANCES)

    def start(self, sources: Iterable[Source], *, held: Callable[[Source], bool]) -> None:
        """A job per source, first run now; `held` sources wait for `release`."""
        for source in sources:
            self._add(source, held=held(source))
        self._scheduler.start()

    def release(self, name: str) -> None:
        """Run a held source's job now, and on its interval from then on."""
        if self._scheduler.get_job(name) is not None:
            self._scheduler.modify_job(name, next_run_time=_now())

    def update(
        self, old: Sequence[Source], new: Sequence[Source], *, held: Callable[[Source], bool]
    ) -> None:
        """After a reload: jobs for new sources, new intervals, removed sources' jobs gone."""
        before = {source.name: source.interval for source in old}
        for source in new:
            if source.name not in before:
                self._add(source, held=held(source))
            elif before[source.name] != source.interval:
                self._scheduler.reschedule_job(
                    source.name, trigger=IntervalTrigger(seconds=source.interval)
                )
        kept = {source.name for source in new}
        for name in before:
            if name not in kept and self._scheduler.get_job(name) is not None:
                self._scheduler.remove_job(name)

    def soon(self, work: Callable[..., Any], *args: Any) -> None:
        """Run `work(*args)` once, now, on a scheduler thread."""
        self._scheduler.add_job(work, args=args, misfire_grace_time=None)

    def shutdown(self) -> None:
        """Stop scheduling; a pass still running is abandoned, not awaited."""
        self._scheduler.shutdown(wait=False)

    def _add(self, source: Source, *, held: bool) -> None:
        self._scheduler.add_job(
            self._scheduled_pass,
            IntervalTrigger(seconds=source.interval),
            args=(source.name,),
            id=source.name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=None if held else _now(),
        )

    def _scheduled_pass(self, name: str) -> None:
        try:
            self._run_pass(name)
        except Exception:
            # Never let one bad pass kill the schedule; the next pass tries again.
            log.exception("source pass failed", extra={"source": name})

    def _on_overrun(self, event: JobExecutionEvent) -> None:
        self._overran(event.job_id)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
