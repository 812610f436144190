"""One simulator: fleet, quotas, faults, credentials and counters behind one HTTP server."""

from __future__ import annotations

import threading
from types import TracebackType

from iot_simulator.admin import Admin
from iot_simulator.clock import Clock, WallClock
from iot_simulator.config import SimulatorConfig
from iot_simulator.faults import FaultConfig, Faults
from iot_simulator.index import FleetIndex
from iot_simulator.index_truth import IndexTruth
from iot_simulator.model import Event, Fleet
from iot_simulator.operations import IotApi
from iot_simulator.quotas import Quotas
from iot_simulator.server import Server
from iot_simulator.service import RequestCounters, Service
from iot_simulator.sigv4 import CredentialStore


class Simulator:
    """A simulated AWS IoT (and STS AssumeRole) endpoint on 127.0.0.1.

    >>> with Simulator(SimulatorConfig(things=10)) as sim:   # doctest: +SKIP
    ...     boto3.client("iot", endpoint_url=sim.url, ...)
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        clock: Clock | None = None,
        faults: FaultConfig | None = None,
    ) -> None:
        self.config = config or SimulatorConfig()
        self.clock: Clock = clock or WallClock()
        self.fleet = Fleet(self.config, self.clock)
        self.index = FleetIndex(
            self.fleet,
            self.clock,
            connectivity=self.config.connectivity_indexing,
            lag_seconds=self.config.search_index_lag_seconds,
            disconnect_details_retention_seconds=(
                self.config.index_disconnect_details_retention_seconds
            ),
        )
        # What the index should answer, worked out apart from the serving path (for tests).
        self.index_truth = IndexTruth(self.fleet, self.index, self.clock)
        self.faults = Faults(self.config.seed, faults)
        self.quotas = Quotas(self.config.effective_rates(), self.config.burst_seconds)
        self.credentials = CredentialStore(self.config.credentials)
        self._counters = RequestCounters()
        self.service = Service(
            config=self.config,
            api=IotApi(self.fleet, self.config, self.index),
            faults=self.faults,
            quotas=self.quotas,
            credentials=self.credentials,
            counters=self._counters,
        )
        self._server = Server(
            self.config.host,
            self.config.port,
            self.service.handle,
            Admin(self),
            self.config.max_body_bytes,
        )
        self.faults.on_change(self._faults_changed)
        self._outage_timer: threading.Timer | None = None
        self._started = False
        self._stopped = threading.Event()

    def _faults_changed(self, config: FaultConfig) -> None:
        if self._outage_timer is not None:
            self._outage_timer.cancel()
            self._outage_timer = None
        if not self._started:
            return
        self._server.set_outage(config.outage)
        if config.outage is not None and config.outage_seconds is not None:
            self._outage_timer = threading.Timer(config.outage_seconds, self._end_outage, (config,))
            self._outage_timer.daemon = True
            self._outage_timer.start()

    def _end_outage(self, config: FaultConfig) -> None:
        if self.faults.current() == config:
            self.faults.set(outage=None, outage_seconds=None)

    def start(self) -> Simulator:
        """Start serving (returns self, so ``sim = Simulator(...).start()`` works)."""
        if not self._started:
            self._server.start()
            self._started = True
            self._faults_changed(self.faults.current())
        return self

    @property
    def started_at(self) -> float:
        """Simulated time when the fleet was created; earlier events describe initial states."""
        return self.fleet.started_at

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        if not self._started:
            raise RuntimeError("the simulator is not started")
        return f"http://{self.config.host}:{self._server.port}"

    def stop(self) -> None:
        """Stop serving and drop open connections; safe to call twice."""
        if self._outage_timer is not None:
            self._outage_timer.cancel()
        if self._started and not self._stopped.is_set():
            self._server.stop()
        self._stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until stop() is called (or ``timeout``); True if stopped."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def ground_truth(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        thing_name: str | None = None,
    ) -> list[Event]:
        """Every connect and disconnect generated, in time order (see Fleet.ground_truth)."""
        return self.fleet.ground_truth(since=since, until=until, thing_name=thing_name)

    def mass_outage(self, fraction: float, reason: str = "CONNECTION_LOST") -> list[str]:
        """Disconnect ``fraction`` of the things connected now, at once, with ``reason``;
        return their names (see Fleet.mass_outage)."""
        return self.fleet.mass_outage(fraction, reason)

    def set_index_lag(self, seconds: float) -> None:
        """From now on the fleet index shows the fleet as it was ``seconds`` ago.

        SearchIndex, GetStatistics and GetBucketsAggregation lag; GetThingConnectivityData
        and the registry operations do not.
        """
        self.index.configure(lag_seconds=seconds)

    def set_index_disconnect_details_retention(self, seconds: float) -> None:
        """How long a disconnected thing keeps its timestamp and reason in the index
        (math.inf: for ever)."""
        self.index.configure(disconnect_details_retention_seconds=seconds)

    def request_counts(self) -> dict[tuple[str, str], int]:
        """Requests that reached the simulator, per (operation, outcome).

        outcome is "ok", an error code (e.g. "ThrottlingException"), "slow" or "malformed".
        """
        return self._counters.by_outcome()

    def access_key_counts(self) -> dict[str, int]:
        """Authenticated IoT requests per access key (shows which credentials were used)."""
        return self._counters.by_access_key()

    def reset_request_counts(self) -> None:
        self._counters.reset()

    def internal_errors(self) -> list[str]:
        """Tracebacks of unexpected exceptions (each was answered with InternalFailureException)."""
        return list(self.service.internal_errors)
