"""Settings of one simulator instance: fleet shape, random process, quotas, credentials, server."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import botocore.session
from botocore.model import StringShape

# Per-account rates (requests per second). GetThingConnectivityData, ListThingsInThingGroup
# and ListThings are AWS's documented defaults. AWS documents no rate for the fleet-index
# queries (SearchIndex, GetStatistics, GetBucketsAggregation): those figures, and the one for
# DescribeThingGroup, are the simulator's assumptions. Every figure can be configured.
DEFAULT_RATES: Mapping[str, float | None] = {
    "GetThingConnectivityData": 350.0,
    "ListThingsInThingGroup": 25.0,
    "ListThings": 10.0,
    "SearchIndex": 15.0,  # assumption
    "GetStatistics": 5.0,  # assumption: an aggregation costs AWS more than a search page
    "GetBucketsAggregation": 5.0,  # assumption, as GetStatistics
    "DescribeThing": 350.0,
    "DescribeThingGroup": 100.0,  # assumption
    "ListThingGroups": 10.0,
    "GetIndexingConfiguration": 10.0,
    "DescribeIndex": 10.0,
    "AssumeRole": None,
}

# Relative weights of disconnect reasons; an enum value not listed here gets weight 1, so a
# reason AWS adds to botocore's model appears in the mix without a code change.
DEFAULT_REASON_WEIGHTS: Mapping[str, float] = {
    "CONNECTION_LOST": 40.0,
    "MQTT_KEEP_ALIVE_TIMEOUT": 20.0,
    "CLIENT_INITIATED_DISCONNECT": 15.0,
    "SERVER_INITIATED_DISCONNECT": 5.0,
    "DUPLICATE_CLIENTID": 3.0,
    "CLIENT_ERROR": 3.0,
    "AUTH_ERROR": 2.0,
    "THROTTLED": 2.0,
    "API_INITIATED_DISCONNECT": 2.0,
    "WEBSOCKET_TTL_EXPIRATION": 1.0,
    "CUSTOMAUTH_TTL_EXPIRATION": 1.0,
    "FORBIDDEN_ACCESS": 1.0,
    "SERVER_ERROR": 1.0,
    "UNKNOWN": 1.0,
    "NONE": 0.5,
}


@functools.cache
def disconnect_reasons() -> tuple[str, ...]:
    """Every ``DisconnectReasonValue`` in botocore's iot model, in model order."""
    model = botocore.session.get_session().get_service_model("iot")
    shape = model.shape_for("DisconnectReasonValue")
    assert isinstance(shape, StringShape)
    return tuple(shape.enum)


def index_setting_problems(lag_seconds: float, retention_seconds: float) -> list[str]:
    """What is wrong with the index settings (also checked when they change at run time)."""
    problems = []
    if not (math.isfinite(lag_seconds) and lag_seconds >= 0):
        problems.append(f"search_index_lag_seconds must be finite and >= 0, got {lag_seconds}")
    if not retention_seconds > 0:
        problems.append(
            "index_disconnect_details_retention_seconds must be > 0 (math.inf keeps the "
            f"details), got {retention_seconds}"
        )
    return problems


def _default_rates() -> dict[str, float | None]:
    return dict(DEFAULT_RATES)


@dataclass(frozen=True, kw_only=True)
class SimulatorConfig:
    """Everything that shapes one simulator; immutable, so a test can share and vary it."""

    things: int = 100
    seed: int = 0
    host: str = "127.0.0.1"
    port: int = 0
    region: str = "eu-west-1"
    account_id: str = "123456789012"
    thing_name_prefix: str = "thing-"
    # The random process: exponential session and offline lengths with these means.
    mean_session_seconds: float = 3600.0
    mean_offline_seconds: float = 120.0
    churn: bool = True
    reason_weights: Mapping[str, float] | None = None
    never_connected_fraction: float = 0.02
    duplicate_clientid_things: int = 1
    # Shares of the fleet (for benches). disconnected_fraction: things that start
    # disconnected (reason drawn as for any disconnect), then follow the process.
    # flapping_fraction: things whose sessions and outages have the flapping means below
    # (the two means above apply to the rest). Disjoint from each other, from the
    # never-connected things and from the duplicate-clientid things.
    disconnected_fraction: float = 0.0
    flapping_fraction: float = 0.0
    flapping_mean_session_seconds: float = 60.0
    flapping_mean_offline_seconds: float = 10.0
    # Registry shape.
    thing_types: tuple[str, ...] = ("sensor", "gateway", "controller")
    top_groups: int = 2
    subgroups_per_group: int = 2
    # Fleet indexing. The index (SearchIndex and the aggregations) shows the fleet as it was
    # this long ago; GetThingConnectivityData is live. Both index settings can be changed
    # at run time (Simulator.set_index_lag, PUT /_simulator/index).
    connectivity_indexing: bool = True
    search_index_lag_seconds: float = 0.0
    # AWS documents that the index may lose a disconnected thing's connectivity.timestamp
    # and connectivity.disconnectReason after about an hour; math.inf keeps them.
    index_disconnect_details_retention_seconds: float = 3600.0
    # Quotas: operation -> requests per second (None: unlimited); merged over DEFAULT_RATES.
    # quotas=False turns every bucket off (tests that poll faster than AWS would allow).
    quotas: bool = True
    rates: Mapping[str, float | None] = field(default_factory=_default_rates)
    burst_seconds: float = 1.0
    # SigV4: access key -> secret. None accepts any well-formed signature.
    credentials: Mapping[str, str] | None = None
    # STS AssumeRole.
    sts_max_session_duration: int = 43200
    sts_duration_override_seconds: float | None = None
    sts_external_id: str | None = None
    # Robustness.
    max_body_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        problems = []
        if self.things < 0:
            problems.append(f"things must be >= 0, got {self.things}")
        for name in ("mean_session_seconds", "mean_offline_seconds"):
            value = getattr(self, name)
            if not value > 0:
                problems.append(f"{name} must be > 0 (math.inf disables), got {value}")
        problems.extend(self._share_problems())
        if self.duplicate_clientid_things < 0:
            problems.append("duplicate_clientid_things must be >= 0")
        problems.extend(
            index_setting_problems(
                self.search_index_lag_seconds, self.index_disconnect_details_retention_seconds
            )
        )
        for reason, weight in (self.reason_weights or {}).items():
            if weight < 0 or math.isnan(weight):
                problems.append(f"reason weight for {reason} must be >= 0")
        if self.reason_weights is not None and not any(self.reason_weights.values()):
            problems.append("reason_weights needs at least one positive weight")
        if problems:
            raise ValueError("; ".join(problems))

    def _share_problems(self) -> list[str]:
        problems = []
        shares = ("never_connected_fraction", "disconnected_fraction", "flapping_fraction")
        for name in shares:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                problems.append(f"{name} must be within [0, 1], got {value}")
        if sum(getattr(self, name) for name in shares) > 1.0 + 1e-9:
            problems.append(f"{' + '.join(shares)} must be <= 1")
        for name in ("flapping_mean_session_seconds", "flapping_mean_offline_seconds"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                problems.append(f"{name} must be finite and > 0, got {value}")
        return problems

    def effective_rates(self) -> dict[str, float | None]:
        """The per-operation quotas: AWS's defaults overridden by ``rates``."""
        merged = dict(DEFAULT_RATES)
        merged.update(self.rates)
        if not self.quotas:
            return dict.fromkeys(merged)
        return merged

    def effective_reason_weights(self) -> dict[str, float]:
        """Weights over every modelled reason (and any extra reason configured)."""
        if self.reason_weights is not None:
            return {reason: float(w) for reason, w in self.reason_weights.items() if w > 0}
        return {reason: DEFAULT_REASON_WEIGHTS.get(reason, 1.0) for reason in disconnect_reasons()}

    def replace(self, **changes: object) -> SimulatorConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def demo(cls, **changes: object) -> SimulatorConfig:
        """A few hundred lively things: disconnects of several reasons show within minutes."""
        base = cls(
            things=300,
            seed=42,
            mean_session_seconds=180.0,
            mean_offline_seconds=40.0,
            never_connected_fraction=0.02,
            duplicate_clientid_things=2,
            search_index_lag_seconds=1.0,
        )
        return base.replace(**changes) if changes else base
