"""The exporter's own health metrics (iot_exporter_*), defined on an injected registry."""

from __future__ import annotations

import platform

import boto3
import botocore
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from exporter import __version__

# The one AWS operation the poller spends its budget on; its series exist from the start.
POLL_OPERATION = "GetThingConnectivityData"

# Cycles range from well under a second (a handful of things) to minutes (100k things at
# the default budget); the buckets cover both ends.
CYCLE_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class ExporterMetrics:
    """Counters and gauges the poller and the app update; rendered with everything else."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.build_info = Gauge(
            "iot_exporter_build_info",
            "A metric with a constant '1' value labelled by the exporter's and its SDK's versions.",
            ["version", "python_version", "boto3_version", "botocore_version"],
            registry=registry,
        )
        self.build_info.labels(
            __version__, platform.python_version(), boto3.__version__, botocore.__version__
        ).set(1)
        self.api_requests = Counter(
            "iot_exporter_api_requests",
            "AWS API requests sent, by operation (each attempt counts, retries included).",
            ["operation"],
            registry=registry,
        )
        self.api_errors = Counter(
            "iot_exporter_api_errors",
            "AWS API requests that failed, by operation and error code "
            '(throttling is error_code="ThrottlingException").',
            ["operation", "error_code"],
            registry=registry,
        )
        self.request_budget = Gauge(
            "iot_exporter_request_budget_per_second",
            "The configured budget of AWS API requests per second (poll.max_requests_per_second).",
            registry=registry,
        )
        self.cycle_duration = Histogram(
            "iot_exporter_poll_cycle_duration_seconds",
            "How long a poll cycle over all targeted things took.",
            buckets=CYCLE_BUCKETS,
            registry=registry,
        )
        self.cycles = Counter(
            "iot_exporter_poll_cycles",
            "Poll cycles completed.",
            registry=registry,
        )
        self.cycles_overrun = Counter(
            "iot_exporter_poll_cycles_overrun",
            "Poll cycles skipped because the previous cycle was still running when they were due.",
            registry=registry,
        )
        self.last_cycle_success = Gauge(
            "iot_exporter_last_poll_success_timestamp_seconds",
            "When the last poll cycle in which at least one poll succeeded completed, "
            "in seconds since the epoch.",
            registry=registry,
        )
        self.things_targeted = Gauge(
            "iot_exporter_things_targeted",
            "Things the current configuration asks the exporter to poll.",
            registry=registry,
        )
        self.config_reload_ok = Gauge(
            "iot_exporter_config_last_reload_successful",
            "Whether the last configuration reload attempt succeeded (1) or failed (0).",
            registry=registry,
        )
        self.config_reload_time = Gauge(
            "iot_exporter_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully, in seconds since the epoch.",
            registry=registry,
        )
        # Pre-create the series operators alert on, so rate() works from the first scrape.
        self.api_requests.labels(POLL_OPERATION)
        self.api_errors.labels(POLL_OPERATION, "ThrottlingException")
