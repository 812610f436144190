"""The renderer: renders the fleet's series when the state changes, and keeps what a scrape serves.

A render of 100,000 things takes a good part of a second, so it follows changes rather
than scrapes: at most once per RENDER_MIN_INTERVAL, and never more than RENDER_SHARE of
the time. A scrape then costs a copy of cached bytes plus the exporter's own few families,
rendered fresh so their counters move during a long pass.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, generate_latest

from exporter.exposition.self_metrics import ExporterMetrics
from exporter.exposition.series import Exposition, Rendered
from exporter.fleet.shared import SharedState, Snapshot
from exporter.web.payload import Payload

log = logging.getLogger(__name__)

RENDER_MIN_INTERVAL = 1.0
RENDER_SHARE = 0.25
# The renderer looks at the clock at least this often, so a thing crossing poll.staleness
# is withdrawn on time even when nothing changes (and on a test's manual clock).
RENDER_TICK = 1.0


class Renderer:
    """Renders the state through the current exposition, on change or on demand."""

    def __init__(
        self,
        state: SharedState,
        exposition: Exposition,
        *,
        aggregate_max_age: float,
        metrics: ExporterMetrics,
        collectors: CollectorRegistry,
        clock: Callable[[], float],
    ) -> None:
        self._state = state
        self._exposition = exposition
        self._aggregate_max_age = aggregate_max_age
        self._metrics = metrics
        self._collectors = collectors
        self._clock = clock
        # One render at a time; a reload holds it to swap the state and the exposition together.
        self._lock = threading.RLock()
        self._fleet_payload = Payload.of(b"")
        self._stale_at: float | None = None
        self.rendered_version = -1
        self._show_cap()

    def payload(self) -> Payload:
        """The cached fleet exposition behind a fresh rendering of the exporter's own metrics."""
        return self._fleet_payload.preceded_by(generate_latest(self._collectors))

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No render starts while this is held."""
        with self._lock:
            yield

    def use(self, exposition: Exposition, *, aggregate_max_age: float) -> None:
        """Render through a new exposition from now on (a reload's labels and switches)."""
        with self._lock:
            self._exposition = exposition
            self._aggregate_max_age = aggregate_max_age
            self._show_cap()

    def _show_cap(self) -> None:
        shape = self._exposition.shape
        cap = shape.max_problem_things if shape.per_thing == "problems" else 0
        self._metrics.max_problem_things.set(cap)

    def render_now(self) -> None:
        """Render the fleet's series from the state as it is now."""
        with self._lock, _no_collection():
            started = time.monotonic()
            version, rendered = self._state.read(
                self._render, aggregate_max_age=self._aggregate_max_age
            )
            # Compressed outside the state's lock: sources keep applying while this runs.
            self._fleet_payload = Payload.of(rendered.text)
            self.rendered_version = version
            self._stale_at = rendered.stale_at
            self._metrics.problem_things.set(rendered.problems)
            self._metrics.problem_things_left_out.set(rendered.left_out)
            self._metrics.rollup_segments.set(rendered.segments)
            self._metrics.rollup_segments_dropped.set(rendered.segments_dropped)
            self._metrics.max_rollup_segments.set(rendered.max_segments)
            self._metrics.render_duration.set(time.monotonic() - started)
            self._metrics.renders.inc()

    def _render(self, snapshot: Snapshot) -> tuple[int, Rendered]:
        exposition = self._exposition
        exposition.forget(snapshot.left)
        rendered = exposition.render(
            snapshot.targets, snapshot.fleet, snapshot.aggregates, snapshot.now
        )
        return snapshot.version, rendered

    def run(self, stop: threading.Event) -> None:
        """Render on every change until `stop` (the body of the app's render thread)."""
        last_render = 0.0
        cost = 0.0
        while not stop.is_set():
            version = self._state.wait_for_change(self.rendered_version, RENDER_TICK)
            if stop.is_set():
                return
            due = self._stale_at is not None and self._clock() >= self._stale_at
            if version == self.rendered_version and not due:
                continue
            pause = max(RENDER_MIN_INTERVAL, cost / RENDER_SHARE) - (time.monotonic() - last_render)
            if pause > 0 and stop.wait(pause):
                return
            started = time.monotonic()
            try:
                self.render_now()
            except Exception:  # never let a rendering bug stop rendering
                log.exception("rendering the fleet failed")
            last_render, cost = time.monotonic(), time.monotonic() - started


@contextmanager
def _no_collection() -> Iterator[None]:
    """No garbage collection while a rendering runs; it runs as soon as the rendering ends.

    An index pass of a large fleet replaces most things' state objects, which makes the
    next full collection due; a rendering's allocations would trigger it, and at a million
    things it costs longer than the rendering itself (0.9 s of a 1.3 s rendering after a
    mass outage). Deferred, it runs after the new page is served, in whichever thread
    allocates next. The cost is the same; the page is not late by it.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
