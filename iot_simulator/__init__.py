"""A simulated AWS IoT endpoint for tests, the demo and benchmarks: the public API."""

from iot_simulator.clock import Clock, ManualClock, WallClock
from iot_simulator.config import SimulatorConfig, disconnect_reasons
from iot_simulator.faults import FaultConfig
from iot_simulator.index import FleetIndex
from iot_simulator.index_truth import IndexTruth
from iot_simulator.instance import Simulator
from iot_simulator.model import (
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
