"""The renderer: a rendering runs with garbage collection deferred, and restores it."""

from __future__ import annotations

import gc

import pytest
from prometheus_client import CollectorRegistry

from exporter.exposition.renderer import Renderer
from exporter.exposition.self_metrics import ExporterMetrics
from exporter.exposition.series import Exposition, Rendered, Shape
from exporter.fleet.aggregates import AggregateCounts
from exporter.fleet.connectivity import FleetState
from exporter.fleet.shared import SharedState
from exporter.fleet.targets import Targets


class Watching(Exposition):
    """An exposition that notes whether the collector was on while it rendered."""

    def __init__(self) -> None:
        super().__init__(Shape(staleness=60))
        self.collecting: list[bool] = []

    def render(
        self,
        targets: Targets,
        fleet: FleetState,
        aggregates: dict[str, AggregateCounts],  # type: ignore[override]
        now: float,
    ) -> Rendered:
        self.collecting.append(gc.isenabled())
        return super().render(targets, fleet, aggregates, now)


def renderer(exposition: Exposition) -> Renderer:
    collectors = CollectorRegistry()
    return Renderer(
        SharedState((), clock=lambda: 0.0),
        exposition,
        aggregate_max_age=60,
        metrics=ExporterMetrics(collectors),
        collectors=collectors,
        clock=lambda: 0.0,
    )


def test_a_rendering_defers_garbage_collection_and_turns_it_back_on() -> None:
    exposition = Watching()
    renderer(exposition).render_now()
    assert exposition.collecting == [False]
    assert gc.isenabled()


def test_a_rendering_leaves_collection_off_if_it_was_off() -> None:
    exposition = Watching()
    gc.disable()
    try:
        renderer(exposition).render_now()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_failing_rendering_turns_collection_back_on() -> None:
    class Failing(Exposition):
        def render(self, *args: object, **kwargs: object) -> Rendered:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        renderer(Failing(Shape(staleness=60))).render_now()
    assert gc.isenabled()
