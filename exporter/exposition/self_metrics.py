"""The exporter's own health metrics (iot_exporter_*), defined on an injected collector registry."""

from __future__ import annotations

import contextlib
import platform

import boto3
import botocore
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from exporter import __version__
from exporter.names import POLL_OPERATION

# Passes range from well under a second (a handful of things) to minutes (100k things at
# the default budget); the buckets cover both ends.
CYCLE_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class ExporterMetrics:
    """Counters and gauges the sources and the app update; rendered with every scrape.

    A "poll cycle" is a pass of an observation source: the live poller, or an index-mode
    source paging the fleet index. The iot_exporter_source_* families cover every source,
    discovery and aggregates included, by source="...".
    """

    def __init__(self, collectors: CollectorRegistry) -> None:
        self.build_info = Gauge(
            "iot_exporter_build_info",
            "A metric with a constant '1' value labelled by the exporter's and its SDK's versions.",
            ["version", "python_version", "boto3_version", "botocore_version"],
            registry=collectors,
        )
        self.build_info.labels(
            __version__, platform.python_version(), boto3.__version__, botocore.__version__
        ).set(1)
        self.api_requests = Counter(
            "iot_exporter_api_requests",
            "AWS API requests sent, by operation (each attempt counts, retries included).",
            ["operation"],
            registry=collectors,
        )
        self.api_errors = Counter(
            "iot_exporter_api_errors",
            "AWS API requests that failed, by operation and error code "
            '(throttling is error_code="ThrottlingException").',
            ["operation", "error_code"],
            registry=collectors,
        )
        self.request_budget = Gauge(
            "iot_exporter_request_budget_per_second",
            "The configured budget of AWS API requests per second, by operation "
            "(GetThingConnectivityData's is poll.max_requests_per_second).",
            ["operation"],
            registry=collectors,
        )
        self.cycle_duration = Histogram(
            "iot_exporter_poll_cycle_duration_seconds",
            "How long a poll cycle (a pass of the live poller or of an index-mode source) took.",
            buckets=CYCLE_BUCKETS,
            registry=collectors,
        )
        self.cycles = Counter(
            "iot_exporter_poll_cycles",
            "Poll cycles completed.",
            registry=collectors,
        )
        self.cycles_overrun = Counter(
            "iot_exporter_poll_cycles_overrun",
            "Poll cycles skipped because the previous cycle was still running when they were due.",
            registry=collectors,
        )
        self.last_cycle_success = Gauge(
            "iot_exporter_last_poll_success_timestamp_seconds",
            "When the last poll cycle in which at least one observation succeeded completed, "
            "in seconds since the epoch.",
            registry=collectors,
        )
        self.things_targeted = Gauge(
            "iot_exporter_things_targeted",
            "Things some source names: the static list and every discovery source, merged.",
            registry=collectors,
        )
        self.config_reload_ok = Gauge(
            "iot_exporter_config_last_reload_successful",
            "Whether the last configuration reload attempt succeeded (1) or failed (0).",
            registry=collectors,
        )
        self.config_reload_time = Gauge(
            "iot_exporter_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully, in seconds since the epoch.",
            registry=collectors,
        )
        source = ["source"]
        self.source_passes = Counter(
            "iot_exporter_source_passes",
            "Passes a source completed or gave up on (discovery, polling, index paging, "
            "aggregates).",
            source,
            registry=collectors,
        )
        self.source_failures = Counter(
            "iot_exporter_source_pass_failures",
            "Passes that failed; a failed discovery pass keeps the source's last good list.",
            source,
            registry=collectors,
        )
        self.source_ok = Gauge(
            "iot_exporter_source_last_pass_successful",
            "Whether the source's last pass succeeded (1) or failed (0).",
            source,
            registry=collectors,
        )
        self.source_success_time = Gauge(
            "iot_exporter_source_last_success_timestamp_seconds",
            "When the source last completed a pass successfully, in seconds since the epoch.",
            source,
            registry=collectors,
        )
        self.source_duration = Gauge(
            "iot_exporter_source_last_pass_duration_seconds",
            "How long the source's last pass took.",
            source,
            registry=collectors,
        )
        self.source_overruns = Counter(
            "iot_exporter_source_passes_overrun",
            "Passes skipped because the source's previous pass was still running when due.",
            source,
            registry=collectors,
        )
        self.source_things = Gauge(
            "iot_exporter_source_things",
            "Things a target source names now (its last good answer).",
            source,
            registry=collectors,
        )
        self.source_max_things = Gauge(
            "iot_exporter_source_max_things",
            "The most things a discovery source may name (max_things).",
            source,
            registry=collectors,
        )
        self.source_refused = Gauge(
            "iot_exporter_source_things_refused",
            "Things a discovery source found in its last pass beyond max_things, and left out.",
            source,
            registry=collectors,
        )
        self.source_invalid_names = Counter(
            "iot_exporter_source_invalid_thing_names",
            "Names a source met that AWS could not have issued as thing names (not 1 to 128 of"
            " a-z A-Z 0-9 : _ -), left out; each time it meets one counts.",
            source,
            registry=collectors,
        )
        self.problem_things = Gauge(
            "iot_exporter_problem_things",
            "Things listed with per-thing series under metrics.per_thing: problems (in trouble,"
            " or within metrics.problems_window of it).",
            registry=collectors,
        )
        self.problem_things_left_out = Gauge(
            "iot_exporter_problem_things_left_out",
            "Things still in trouble that metrics.max_problem_things left off the page (the"
            " longest-disconnected are kept).",
            registry=collectors,
        )
        self.shard_ordinal = Gauge(
            "iot_exporter_shard_ordinal",
            "This process's shard (--shard), from 0; 0 when not sharded.",
            registry=collectors,
        )
        self.total_shards = Gauge(
            "iot_exporter_total_shards",
            "How many shards split the fleet (--total-shards); 1 when not sharded.",
            registry=collectors,
        )
        self.rollup_segments = Gauge(
            "iot_exporter_rollup_segments",
            "Segments of metrics.rollup_by with series of their own (iot_things,"
            " iot_disconnects_total), not counting the one the cap folds the rest into.",
            registry=collectors,
        )
        self.rollup_segments_dropped = Gauge(
            "iot_exporter_rollup_segments_dropped",
            "Distinct segments metrics.max_rollup_segments folded into the (other) segment"
            " since the rollups were last set up (start or a reload that changed them).",
            registry=collectors,
        )
        self.max_rollup_segments = Gauge(
            "iot_exporter_max_rollup_segments",
            "The most segments with series of their own (metrics.max_rollup_segments).",
            registry=collectors,
        )
        self.max_problem_things = Gauge(
            "iot_exporter_max_problem_things",
            "The most things metrics.per_thing: problems lists (metrics.max_problem_things);"
            " 0 in the other modes.",
            registry=collectors,
        )
        self.render_duration = Gauge(
            "iot_exporter_render_duration_seconds",
            "How long the last rendering of the fleet's series took.",
            registry=collectors,
        )
        self.renders = Counter(
            "iot_exporter_renders",
            "Renderings of the fleet's series (at most one per short interval, on change).",
            registry=collectors,
        )
        # Pre-create the series operators alert on, so rate() works from the first scrape.
        self.api_requests.labels(POLL_OPERATION)
        self.api_errors.labels(POLL_OPERATION, "ThrottlingException")

    def forget_source(self, source: str) -> None:
        """Remove a source's series when a reload removes the source."""
        for family in (
            self.source_passes,
            self.source_failures,
            self.source_ok,
            self.source_success_time,
            self.source_duration,
            self.source_overruns,
            self.source_things,
            self.source_max_things,
            self.source_refused,
            self.source_invalid_names,
        ):
            with contextlib.suppress(KeyError):  # it never ran
                family.remove(source)
