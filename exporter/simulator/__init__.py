"""A simulated AWS IoT endpoint for tests, the demo and benchmarks: the public API."""

from exporter.simulator.clock import Clock, ManualClock, WallClock
from exporter.simulator.config import SimulatorConfig, disconnect_reasons
from exporter.simulator.faults import FaultConfig
from exporter.simulator.index import FleetIndex
from exporter.simulator.index_truth import IndexTruth
from exporter.simulator.instance import Simulator
from exporter.simulator.model import (
    Event,
    Fleet,
    ThingConnectivity,
    UnknownGroupError,
    UnknownThingError,
)

__all__ = [
    "Clock",
    "Event",
    "FaultConfig",
    "Fleet",
    "FleetIndex",
    "IndexTruth",
    "ManualClock",
    "Simulator",
    "SimulatorConfig",
    "ThingConnectivity",
    "UnknownGroupError",
    "UnknownThingError",
    "WallClock",
    "disconnect_reasons",
]
