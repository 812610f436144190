"""poll: how often and how hard to poll; the request budget protects the shared API quota."""

from typing import Annotated, Any

from pydantic import Field, ValidationInfo, ValidatorFunctionWrapHandler, field_validator

from exporter.config.budgets import RequestsPerSecond
from exporter.config.durations import format_prometheus_duration
from exporter.config.fields import Boolean, Duration, Interval, Mode, integer_in
from exporter.config.yamlfile import StrictSection, fail

DEFAULT_INTERVAL = 60.0
DEFAULT_MAX_REQUESTS_PER_SECOND = 50.0
DEFAULT_CONCURRENCY = 16
MAX_CONCURRENCY = 512
STALENESS_INTERVALS = 3
DEFAULT_MAX_RETRIES = 2
MAX_RETRIES = 10

_DERIVED = object()  # staleness not given: derive it from the interval


class PollSettings(StrictSection):
    """How often and how hard to poll; the request budget protects the shared API quota."""

    mode: Mode = "live"
    interval: Interval = DEFAULT_INTERVAL
    max_requests_per_second: RequestsPerSecond = DEFAULT_MAX_REQUESTS_PER_SECOND
    concurrency: Annotated[int, integer_in(1, MAX_CONCURRENCY)] = DEFAULT_CONCURRENCY
    staleness: Duration = Field(default=_DERIVED, validate_default=True)
    max_retries: Annotated[int, integer_in(0, MAX_RETRIES)] = DEFAULT_MAX_RETRIES
    # Live mode: ask GetThingConnectivityData for the connection's socket (addresses,
    # ports, VPC endpoint) and show it in iot_thing_socket_info. Off by default: AWS
    # needs an IAM permission and a fleet-indexing filter for it.
    socket_information: Boolean = False

    @field_validator("staleness", mode="wrap")
    @classmethod
    def _staleness(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> float:
        # interval is absent from info.data when it failed its own check.
        interval: float | None = info.data.get("interval")
        if value is _DERIVED:
            return STALENESS_INTERVALS * (DEFAULT_INTERVAL if interval is None else interval)
        staleness: float = handler(value)
        if interval is not None and staleness < interval:
            fail(
                f"must be at least poll.interval ({format_prometheus_duration(interval)}),"
                f" got {format_prometheus_duration(staleness)}"
            )
        return staleness
