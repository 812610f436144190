"""Tables of config files against the settings they give or the exact errors they raise."""

import math
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from exporter.config import Config, load_config, parse_config
from exporter.config.aggregates import AggregateQuerySettings, AggregatesSettings
from exporter.config.aws import DEFAULT_ROLE_SESSION_NAME, AwsSettings
from exporter.config.discovery import (
    RESERVED_SOURCE_NAMES,
    AttributeFilterSettings,
    DiscoverySettings,
    QuerySettings,
    ThingGroupSettings,
    ThingTypeSettings,
)
from exporter.config.durations import format_prometheus_duration, parse_prometheus_duration
from exporter.config.metrics import MetricsSettings
from exporter.config.poll import PollSettings
from exporter.config.registry import RegistryAttribute, RegistrySettings
from exporter.config.things import StaticThings, ThingSettings
from exporter.config.yamlfile import ConfigError
from exporter.fleet.targets import STATIC_SOURCE
from exporter.sources import aggregates, events, live
from tests.support.paths import REPO_ROOT


def yaml_text(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def things(*items: str | ThingSettings) -> StaticThings:
    """The static list the file's items make: names, and the labels of those that have some."""
    settings = [ThingSettings(name=i) if isinstance(i, str) else i for i in items]
    return StaticThings(
        tuple(t.name for t in settings), {t.name: t.labels for t in settings if t.labels}
    )


# --- valid configs ----------------------------------------------------------------------------

VALID: list[tuple[str, str, Config]] = [
    (
        "issue-3-minimal-shape",
        """
        aws:
          region: eu-west-1
          endpoint_url: http://127.0.0.1:4566   # optional: a simulator or VPC endpoint
        poll:
          interval: 60s
        things:
          - sensor-0001
          - name: pump-7
            labels: {site: plant-a}
        """,
        Config(
            aws=AwsSettings(region="eu-west-1", endpoint_url="http://127.0.0.1:4566"),
            poll=PollSettings(interval=60.0),
            things=things("sensor-0001", ThingSettings(name="pump-7", labels={"site": "plant-a"})),
        ),
    ),
    ("only-things", "things: [a]", Config(things=things("a"))),
    (
        "empty-sections-mean-defaults",
        """
        aws:
        poll:
        labels:
        things:
          - name: a
            labels:
        """,
        Config(things=things("a")),
    ),
    (
        "staleness-defaults-to-3-intervals",
        "poll: {interval: 1h30m}\nthings: [a]",
        Config(poll=PollSettings(interval=5400.0, staleness=16200.0), things=things("a")),
    ),
    (
        "staleness-may-equal-interval",
        "poll: {interval: 10s, staleness: 10s}\nthings: [a]",
        Config(poll=PollSettings(interval=10.0, staleness=10.0), things=things("a")),
    ),
    (
        "every-key",
        """
        aws:
          region: us-gov-west-1
          endpoint_url: https://iot.example.internal:8443/
          sts_endpoint_url: https://sts.us-gov-west-1.amazonaws.com
          profile: monitoring
          role_arn: arn:aws-us-gov:iam::123456789012:role/path/to/iot-exporter
          external_id: 123456
          role_session_name: prom@eu-1
          connect_timeout: 500ms
          read_timeout: 1m
        poll:
          interval: 1s
          max_requests_per_second: 10000
          concurrency: 512
          staleness: 1w
          max_retries: 0
        labels: {env: prod}
        things: [a]
        """,
        Config(
            aws=AwsSettings(
                region="us-gov-west-1",
                endpoint_url="https://iot.example.internal:8443/",
                sts_endpoint_url="https://sts.us-gov-west-1.amazonaws.com",
                profile="monitoring",
                role_arn="arn:aws-us-gov:iam::123456789012:role/path/to/iot-exporter",
                external_id="123456",
                role_session_name="prom@eu-1",
                connect_timeout=0.5,
                read_timeout=60.0,
            ),
            poll=PollSettings(
                interval=1.0,
                max_requests_per_second=10000.0,
                concurrency=512,
                staleness=604800.0,
                max_retries=0,
            ),
            labels={"env": "prod"},
            things=things("a"),
        ),
    ),
    (
        "fractional-request-budget",
        "poll: {max_requests_per_second: 0.5, max_retries: 10, concurrency: 1}\nthings: [a]",
        Config(
            poll=PollSettings(max_requests_per_second=0.5, max_retries=10, concurrency=1),
            things=things("a"),
        ),
    ),
    (
        "numbers-as-text-are-kept-as-written",
        """
        labels: {floor: 3, version: 1.10, zone: 010, empty: ""}
        things: [000123, 12:30, {name: 42, labels: {rack: 0x1F}}]
        """,
        Config(
            labels={"floor": "3", "version": "1.10", "zone": "010", "empty": ""},
            things=things("000123", "12:30", ThingSettings(name="42", labels={"rack": "0x1F"})),
        ),
    ),
    (
        "thing-names-at-the-limits",
        f"things: [a, 'A:b_c-9', {'x' * 128}]",
        Config(things=things("a", "A:b_c-9", "x" * 128)),
    ),
    (
        "per-thing-label-overrides-static",
        "labels: {env: prod}\nthings: [{name: a, labels: {env: staging, _x: '1'}}]",
        Config(
            labels={"env": "prod"},
            things=things(ThingSettings(name="a", labels={"env": "staging", "_x": "1"})),
        ),
    ),
    (
        "role-in-china-partition",
        "aws: {role_arn: 'arn:aws-cn:iam::123456789012:role/x'}\nthings: [a]",
        Config(aws=AwsSettings(role_arn="arn:aws-cn:iam::123456789012:role/x"), things=things("a")),
    ),
    (
        "discovery-only-every-kind-plain-and-mapped",
        """
        discovery:
          interval: 10m
          max_things: 5000
          thing_groups:
            - plant-a
            - {name: plant-b, recursive: true, mode: index, max_things: 20}
          thing_types: [pump, {name: valve, mode: live}]
          attributes:
            - {attribute: site, value: plant-c, thing_type: pump}
          queries:
            - "attributes.site:plant-d"
            - {query: "thingName:gw-*", name: gateways}
        """,
        Config(
            discovery=DiscoverySettings(
                interval=600.0,
                max_things=5000,
                thing_groups=(
                    ThingGroupSettings(name="plant-a"),
                    ThingGroupSettings(name="plant-b", recursive=True, mode="index", max_things=20),
                ),
                thing_types=(
                    ThingTypeSettings(name="pump"),
                    ThingTypeSettings(name="valve", mode="live"),
                ),
                attributes=(
                    AttributeFilterSettings(attribute="site", value="plant-c", thing_type="pump"),
                ),
                queries=(
                    QuerySettings(query="attributes.site:plant-d"),
                    QuerySettings(query="thingName:gw-*", name="gateways"),
                ),
            )
        ),
    ),
    (
        "things-empty-with-a-discovery-source",
        "things: []\ndiscovery: {thing_types: [pump]}\npoll: {mode: index}",
        Config(
            poll=PollSettings(mode="index"),
            discovery=DiscoverySettings(thing_types=(ThingTypeSettings(name="pump"),)),
        ),
    ),
    (
        "registry-labels-and-promotion",
        """
        registry:
          attributes: [site, {attribute: serial-no, label: serial}]
          promote: [thing_type, site]
        things: [a]
        """,
        Config(
            registry=RegistrySettings(
                attributes=(
                    RegistryAttribute(attribute="site", label="site"),
                    RegistryAttribute(attribute="serial-no", label="serial"),
                ),
                promote=("thing_type", "site"),
            ),
            things=things("a"),
        ),
    ),
    (
        "registry-on-with-defaults",
        "registry:\nthings: [a]",
        Config(registry=RegistrySettings(), things=things("a")),
    ),
    (
        "aggregates-only-without-per-thing-series",
        """
        aggregates:
          interval: 5m
          queries:
            - {name: all}
            - name: plant-a
              query: "thingGroupNames:plant-a"
              by: [thingTypeName, attributes.fw]
              max_buckets: 50
        metrics: {per_thing: false}
        budgets: {GetStatistics: 0.5, SearchIndex: 20}
        """,
        Config(
            aggregates=AggregatesSettings(
                interval=300.0,
                queries=(
                    AggregateQuerySettings(name="all"),
                    AggregateQuerySettings(
                        name="plant-a",
                        query="thingGroupNames:plant-a",
                        by=("thingTypeName", "attributes.fw"),
                        max_buckets=50,
                    ),
                ),
            ),
            metrics=MetricsSettings(per_thing="none"),
            budgets={"GetStatistics": 0.5, "SearchIndex": 20.0},
        ),
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in VALID], ids=[c[0] for c in VALID])
def test_valid_config(text: str, expected: Config) -> None:
    assert parse_config(yaml_text(text)) == expected


def test_defaults() -> None:
    config = parse_config("things: [a]")
    assert config.aws == AwsSettings(
        region=None,
        endpoint_url=None,
        sts_endpoint_url=None,
        profile=None,
        role_arn=None,
        external_id=None,
        role_session_name=DEFAULT_ROLE_SESSION_NAME,
        connect_timeout=2.0,
        read_timeout=5.0,
    )
    assert DEFAULT_ROLE_SESSION_NAME == "iot-connectivity-exporter"
    assert config.poll.model_dump() == {
        "mode": "live",
        "interval": 60.0,
        "max_requests_per_second": 50.0,
        "concurrency": 16,
        "staleness": 180.0,
        "max_retries": 2,
        "socket_information": False,
    }
    assert config.labels == {}
    assert config.things == StaticThings(("a",), {})
    assert config.discovery.sources == ()
    assert config.registry is None
    assert config.aggregates.queries == ()
    assert config.metrics.per_thing == "all"
    assert config.metrics.session_details is False
    assert config.budgets == {}


def test_parsed_values_have_plain_types() -> None:
    config = parse_config("poll: {concurrency: 0x10, max_requests_per_second: 7}\nthings: [a]")
    assert type(config.poll.concurrency) is int
    assert config.poll.concurrency == 16
    assert type(config.poll.max_requests_per_second) is float


def test_label_names_are_the_sorted_union() -> None:
    config = parse_config(
        yaml_text("""
        labels: {env: prod, team: iot}
        things:
          - {name: a, labels: {site: x, env: dev}}
          - {name: b, labels: {floor: 1}}
          - c
        """)
    )
    assert config.label_names() == ("env", "floor", "site", "team")
    assert parse_config("things: [a]").label_names() == ()


def test_models_are_frozen() -> None:
    config = parse_config("things: [a]")
    with pytest.raises(ValidationError):
        config.poll.interval = 5.0


def test_python_callers_may_give_seconds() -> None:
    assert PollSettings(interval=10).staleness == 30.0
    assert AwsSettings(connect_timeout=0.25).connect_timeout == 0.25
    with pytest.raises(ValidationError):
        PollSettings(interval=10, staleness=5)
    with pytest.raises(ValidationError):
        AwsSettings(external_id="abc")


def test_example_config_loads() -> None:
    config = load_config(REPO_ROOT / "config.example.yaml")
    assert config.aws.region == "eu-west-1"
    assert config.things


# --- invalid configs --------------------------------------------------------------------------

INVALID: list[tuple[str, str, list[str]]] = [
    # metrics
    (
        "per-thing-unknown",
        "metrics: {per_thing: some}\nthings: [a]",
        ['metrics.per_thing: expected all, problems or none (true is all, false none), got "some"'],
    ),
    (
        "problems-window-zero-and-cap-zero",
        "metrics: {per_thing: problems, problems_window: 0s, max_problem_things: 0}\nthings: [a]",
        [
            "metrics.problems_window: must be longer than 0s, got 0s",
            "metrics.max_problem_things: must be between 1 and 10000000, got 0",
        ],
    ),
    (
        "rollup-by-unknown-labels",
        "metrics: {rollup_by: [site, thing_group, thing_type, site, reason]}\n"
        "labels: {env: prod}\nthings: [a]",
        [
            'metrics.rollup_by[4]: reserved label name "reason": the exporter sets it',
            'metrics.rollup_by[3]: duplicate label "site" (first at [0])',
        ],
    ),
    (
        "rollup-by-a-label-valued-like-the-fold",
        "metrics: {rollup_by: [site]}\nthings: [{name: a, labels: {site: (other)}}]",
        [
            'metrics.rollup_by[0]: a configured "site" label has the value "(other)", which'
            " names the segment the cap folds the rest into; choose another value"
        ],
    ),
    (
        "rollup-by-thing-group-also-a-registry-label",
        "metrics: {rollup_by: [thing_group]}\ndiscovery: {thing_groups: [g]}\n"
        "registry: {attributes: [{attribute: group, label: thing_group}]}",
        [
            "metrics.rollup_by[0]: thing_group is also a registry.attributes label; give that"
            " one another"
        ],
    ),
    (
        "rollup-by-connected",
        "metrics: {rollup_by: [connected]}\nlabels: {connected: x}\nthings: [a]",
        ['metrics.rollup_by[0]: "connected" is a label iot_things sets itself; roll up by another'],
    ),
    (
        "rollup-by-labels-nothing-gives",
        "metrics: {rollup_by: [site, thing_group, thing_type], max_rollup_segments: 0}\n"
        "labels: {env: prod}\nthings: [a]",
        [
            "metrics.max_rollup_segments: must be between 1 and 1000000, got 0",
        ],
    ),
    (
        "rollup-by-needs-a-source-of-values",
        "metrics: {rollup_by: [site, thing_group, thing_type, env]}\n"
        "labels: {env: prod}\nthings: [a]",
        [
            'metrics.rollup_by[0]: "site" is no label a thing has: roll up by one of thing_group,'
            " env (thing_type and attributes need a registry: section)",
            "metrics.rollup_by[1]: thing_group needs discovery.thing_groups: none is listed",
            'metrics.rollup_by[2]: "thing_type" is no label a thing has: roll up by one of'
            " thing_group, env (thing_type and attributes need a registry: section)",
        ],
    ),
    (
        "rollup-by-ambiguous-label",
        "metrics: {rollup_by: [site, thing_group]}\nregistry: {attributes: [site]}\n"
        "labels: {site: hq, thing_group: x}\ndiscovery: {thing_groups: [g]}",
        [
            'metrics.rollup_by[0]: "site" is both a registry label and a configured label;'
            " rename the configured one",
            "metrics.rollup_by[1]: thing_group is also a configured label; rename that one",
        ],
    ),
    # durations
    (
        "duration-word",
        "poll: {interval: fast}\nthings: [a]",
        ['poll.interval: expected a duration such as 30s, got "fast"'],
    ),
    (
        "duration-bare-int",
        "poll: {interval: 60}\nthings: [a]",
        ["poll.interval: expected a duration such as 30s, got 60; write 60s"],
    ),
    (
        "duration-bare-float",
        "aws: {read_timeout: 1.5}\nthings: [a]",
        ["aws.read_timeout: expected a duration such as 30s, got 1.5; write 1s500ms"],
    ),
    (
        "duration-negative",
        "poll: {interval: -5}\nthings: [a]",
        ["poll.interval: expected a duration such as 30s, got -5"],
    ),
    (
        "duration-decimal-unit",
        "poll: {interval: 1.5m}\nthings: [a]",
        ['poll.interval: expected a duration such as 30s, got "1.5m"'],
    ),
    (
        "duration-bool",
        "poll: {interval: yes}\nthings: [a]",
        ["poll.interval: expected a duration such as 30s, got true"],
    ),
    (
        "duration-null",
        "poll: {staleness: null}\nthings: [a]",
        ["poll.staleness: expected a duration such as 30s, got null"],
    ),
    (
        "interval-below-1s",
        "poll: {interval: 500ms}\nthings: [a]",
        ["poll.interval: must be at least 1s, got 500ms"],
    ),
    (
        "staleness-below-interval",
        "poll: {interval: 2m, staleness: 90s}\nthings: [a]",
        ["poll.staleness: must be at least poll.interval (2m), got 1m30s"],
    ),
    (
        "staleness-below-default-interval",
        "poll: {staleness: 30s}\nthings: [a]",
        ["poll.staleness: must be at least poll.interval (1m), got 30s"],
    ),
    (
        "zero-timeouts",
        "aws: {connect_timeout: 0s, read_timeout: '0'}\nthings: [a]",
        [
            "aws.connect_timeout: must be longer than 0s, got 0s",
            "aws.read_timeout: must be longer than 0s, got 0s",
        ],
    ),
    # numbers
    (
        "request-budget-bounds",
        "poll: {max_requests_per_second: 0}\nthings: [a]",
        ["poll.max_requests_per_second: must be greater than 0 and at most 10000, got 0"],
    ),
    (
        "request-budget-too-high",
        "poll: {max_requests_per_second: 10000.5}\nthings: [a]",
        ["poll.max_requests_per_second: must be greater than 0 and at most 10000, got 10000.5"],
    ),
    (
        "request-budget-nan",
        "poll: {max_requests_per_second: .nan}\nthings: [a]",
        ["poll.max_requests_per_second: must be greater than 0 and at most 10000, got .nan"],
    ),
    (
        "request-budget-types",
        "poll: {max_requests_per_second: '50'}\nthings: [a]",
        ['poll.max_requests_per_second: expected a number, got "50"'],
    ),
    (
        "request-budget-bool",
        "poll: {max_requests_per_second: true}\nthings: [a]",
        ["poll.max_requests_per_second: expected a number, got true"],
    ),
    (
        "concurrency-bounds",
        "poll: {concurrency: 0, max_retries: 11}\nthings: [a]",
        [
            "poll.concurrency: must be between 1 and 512, got 0",
            "poll.max_retries: must be between 0 and 10, got 11",
        ],
    ),
    (
        "concurrency-too-high-as-written",
        "poll: {concurrency: 1_000, max_retries: -1}\nthings: [a]",
        [
            "poll.concurrency: must be between 1 and 512, got 1_000",
            "poll.max_retries: must be between 0 and 10, got -1",
        ],
    ),
    (
        "integers-only",
        "poll: {concurrency: 2.0, max_retries: on}\nthings: [a]",
        [
            "poll.concurrency: expected an integer, got 2.0",
            "poll.max_retries: expected an integer, got true",
        ],
    ),
    # unknown keys
    (
        "unknown-keys-everywhere",
        """
        aws: {regin: eu-west-1}
        poll: {intervall: 5m}
        thing: [a]
        things: [{name: a, lables: {}}, {name: b, site: plant-a}]
        """,
        [
            'aws.regin: unknown key (did you mean "region"?)',
            'poll.intervall: unknown key (did you mean "interval"?)',
            'thing: unknown key (did you mean "things"?)',
            'things[0].lables: unknown key (did you mean "labels"?)',
            "things[1].site: unknown key",
        ],
    ),
    (
        "unknown-key-not-a-string",
        "aws: {1: x}\nthings: [a]",
        ["aws.1: unknown key"],
    ),
    # things
    (
        "things-missing",
        "poll: {interval: 1m}",
        ["things: list at least one thing, or name a discovery source or an aggregate query"],
    ),
    (
        "things-empty",
        "things: []",
        ["things: list at least one thing, or name a discovery source or an aggregate query"],
    ),
    (
        "things-null",
        "things:",
        ["things: list at least one thing, or name a discovery source or an aggregate query"],
    ),
    (
        "things-not-a-list",
        "things: sensor-1",
        ['things: expected a list of things, got "sensor-1"'],
    ),
    (
        "thing-items-of-wrong-type",
        "things: [~, [a], yes, {labels: {a: b}}]",
        [
            "things[0]: expected a thing name or a mapping with name and labels, got null",
            "things[1]: expected a thing name or a mapping with name and labels, got a list",
            "things[2].name: expected a string, got true"
            " (quote it: YAML reads yes, no, on, off, true, false as booleans)",
            "things[3].name: required key is missing",
        ],
    ),
    (
        "thing-names-invalid",
        f"things: ['pump 7', '', {'y' * 129}, {{name: a/b}}]",
        [
            'things[0].name: invalid thing name "pump 7": use 1 to 128 letters, digits or : _ -',
            'things[1].name: invalid thing name "": use 1 to 128 letters, digits or : _ -',
            f'things[2].name: invalid thing name "{"y" * 57}...":'
            " use 1 to 128 letters, digits or : _ -",
            'things[3].name: invalid thing name "a/b": use 1 to 128 letters, digits or : _ -',
        ],
    ),
    (
        "thing-names-duplicate",
        """
        things:
          - sensor-0001
          - pump-7
          - 'bad name'
          - name: pump-7
            labels: {site: b}
          - sensor-0001
          - 'bad name'
        """,
        [
            'things[2].name: invalid thing name "bad name": use 1 to 128 letters, digits or : _ -',
            'things[3].name: duplicate thing "pump-7" (first at things[1])',
            'things[4].name: duplicate thing "sensor-0001" (first at things[0])',
            'things[5].name: invalid thing name "bad name": use 1 to 128 letters, digits or : _ -',
        ],
    ),
    (
        "duplicates-found-even-when-another-thing-is-invalid",
        "things: [a, {name: b, labels: {1x: y}}, a]",
        [
            'things[1].labels.1x: invalid label name "1x": use letters, digits and _,'
            " not a digit first",
            'things[2].name: duplicate thing "a" (first at things[0])',
        ],
    ),
    # labels
    (
        "label-names",
        """
        labels:
          plant-site: a
          __meta: b
          thing_name: c
          instance: d
          ok: e
        things: [a]
        """,
        [
            'labels.plant-site: invalid label name "plant-site": use letters, digits and _,'
            " not a digit first",
            'labels.__meta: reserved label name "__meta": names starting with __ belong to'
            " Prometheus",
            'labels.thing_name: reserved label name "thing_name": the exporter sets it',
            'labels.instance: reserved label name "instance": Prometheus sets it when it scrapes',
        ],
    ),
    (
        "label-name-not-a-string",
        "labels: {1: a}\nthings: [a]",
        ["labels.1: expected a label name (a string), got 1"],
    ),
    (
        "label-values",
        """
        things:
          - a
          - b
          - name: c
            labels: {site: no, floor: ~, tags: [x], since: 2024-01-01}
        """,
        [
            "things[2].labels.site: expected a string, got false"
            " (quote it: YAML reads yes, no, on, off, true, false as booleans)",
            "things[2].labels.floor: expected a string, got null",
            "things[2].labels.tags: expected a string, got a list",
            "things[2].labels.since: expected a string, got 2024-01-01 (a date)",
        ],
    ),
    (
        "labels-not-a-mapping",
        "labels: [env]\nthings: [{name: a, labels: prod}]",
        [
            "labels: expected a mapping of label names to values, got a list",
            'things[0].labels: expected a mapping of label names to values, got "prod"',
        ],
    ),
    (
        "reserved-label-per-thing",
        "things: [{name: a, labels: {reason: x, job: y, error_code: z}}]",
        [
            'things[0].labels.reason: reserved label name "reason": the exporter sets it',
            'things[0].labels.job: reserved label name "job": Prometheus sets it when it scrapes',
            'things[0].labels.error_code: reserved label name "error_code": the exporter sets it',
        ],
    ),
    # aws
    (
        "sections-not-mappings",
        "aws: eu-west-1\npoll: [60s]\nthings: [a]",
        ['aws: expected a mapping, got "eu-west-1"', "poll: expected a mapping, got a list"],
    ),
    (
        "external-id-without-role",
        "aws: {external_id: abc}\nthings: [a]",
        ["aws.external_id: only allowed together with role_arn"],
    ),
    (
        "role-arn-syntax",
        """
        aws:
          role_arn: arn:aws:iam::123:role/x
          external_id: abc
        things: [a]
        """,
        [
            "aws.role_arn: expected an IAM role ARN such as arn:aws:iam::123456789012:role/name,"
            ' got "arn:aws:iam::123:role/x"'
        ],
    ),
    (
        "role-arn-not-a-role",
        "aws: {role_arn: 'arn:aws:iam::123456789012:user/x'}\nthings: [a]",
        [
            "aws.role_arn: expected an IAM role ARN such as arn:aws:iam::123456789012:role/name,"
            ' got "arn:aws:iam::123456789012:user/x"'
        ],
    ),
    (
        "role-session-name-and-external-id",
        """
        aws:
          role_arn: arn:aws:iam::123456789012:role/x
          role_session_name: a
          external_id: 'has space'
        things: [a]
        """,
        [
            'aws.role_session_name: must be 2 to 64 letters, digits or + = , . @ _ -, got "a"',
            "aws.external_id: must be 2 to 1224 letters, digits or + = , . @ : / _ - (the value"
            " is not shown: an external ID is a shared secret)",
        ],
    ),
    (
        "urls",
        """
        aws:
          endpoint_url: localhost:4566
          sts_endpoint_url: ftp://sts.example.com
        things: [a]
        """,
        [
            'aws.endpoint_url: expected an http:// or https:// URL, got "localhost:4566"',
            'aws.sts_endpoint_url: expected an http:// or https:// URL, got "ftp://sts.example.com"',
        ],
    ),
    (
        "url-bad-port",
        "aws: {endpoint_url: 'http://127.0.0.1:99999'}\nthings: [a]",
        ['aws.endpoint_url: expected an http:// or https:// URL, got "http://127.0.0.1:99999"'],
    ),
    (
        "region-and-profile",
        "aws: {region: eu west 1, profile: ''}\nthings: [a]",
        [
            'aws.region: expected an AWS region such as eu-west-1, got "eu west 1"',
            "aws.profile: must not be empty",
        ],
    ),
    (
        "strings-of-wrong-type",
        "aws: {region: [eu-west-1], profile: {a: b}, role_session_name: off}\nthings: [a]",
        [
            "aws.region: expected a string, got a list",
            "aws.profile: expected a string, got a mapping",
            "aws.role_session_name: expected a string, got false"
            " (quote it: YAML reads yes, no, on, off, true, false as booleans)",
        ],
    ),
    # the file itself
    (
        "empty-file",
        "",
        ["the file is empty: it needs a list of things, a discovery source or an aggregate"],
    ),
    (
        "comments-only",
        "# things: [a]\n",
        ["the file is empty: it needs a list of things, a discovery source or an aggregate"],
    ),
    ("top-level-list", "- a\n- b", ["expected a mapping at the top level, got a list"]),
    ("top-level-scalar", "things", ['expected a mapping at the top level, got "things"']),
    (
        "yaml-syntax",
        "things:\n  - a\n bad: [",
        [
            "line 3, column 2: invalid YAML: expected <block end>,"
            " but found '<block mapping start>' (while parsing a block mapping)"
        ],
    ),
    (
        "yaml-tab",
        "things:\n\t- a",
        [
            "line 2, column 1: invalid YAML: found character '\\t' that cannot start any token"
            " (while scanning for the next token)"
        ],
    ),
    (
        "yaml-unknown-tag",
        "things: [!thing a]",
        ["line 1, column 10: invalid YAML: could not determine a constructor for the tag '!thing'"],
    ),
    (
        "yaml-two-documents",
        "things: [a]\n---\nthings: [b]",
        [
            "line 2, column 1: invalid YAML: but found another document"
            " (expected a single document in the stream)"
        ],
    ),
    (
        "duplicate-keys",
        """
        poll:
          interval: 30s
          interval: 40s
        things:
          - name: a
            labels: {site: x, site: y}
        poll: {concurrency: 0}
        """,
        [
            "poll.interval: duplicate key at line 3 (first at line 2)",
            "things[0].labels.site: duplicate key at line 6 (first at line 6)",
            "poll: duplicate key at line 7 (first at line 1)",
            "poll.concurrency: must be between 1 and 512, got 0",
        ],
    ),
    (
        "session-and-socket-switches",
        """
        poll: {socket_information: "yes"}
        metrics: {session_details: 1}
        things: [a]
        """,
        [
            'poll.socket_information: expected true or false, got "yes"',
            "metrics.session_details: expected true or false, got 1",
        ],
    ),
    # all at once, in file order
    (
        "discovery-bad-names-and-duplicates",
        """
        discovery:
          interval: 0s
          thing_groups: [plant-a, 'plant a', plant-a, {name: x, recursive: maybe}]
          thing_types: [{name: pump, mode: fast, max_things: 0}]
          attributes: [{attribute: site}, {attribute: 'si te', value: x}]
          queries: ["", {query: "a\\tb"}, {query: q, name: "with space"}]
        """,
        [
            "discovery.interval: must be at least 1s, got 0s",
            'discovery.thing_groups[1].name: invalid thing group name "plant a": use 1 to 128'
            " letters, digits or : _ -",
            'discovery.thing_groups[3].recursive: expected true or false, got "maybe"',
            'discovery.thing_groups[2]: duplicate thing group "plant-a" (first at [0])',
            'discovery.thing_types[0].mode: expected live or index, got "fast"',
            "discovery.thing_types[0].max_things: must be between 1 and 10000000, got 0",
            "discovery.attributes[0].value: required key is missing",
            'discovery.attributes[1].attribute: invalid attribute name "si te": use 1 to 128'
            " letters, digits or _ . , @ / : # -",
            "discovery.queries[0].query: must not be empty",
            'discovery.queries[1].query: must be one line of at most 2048 characters, got "a\\tb"',
            'discovery.queries[2].name: invalid name "with space": use 1 to 128 letters, digits'
            " or _ . : / = -",
        ],
    ),
    (
        "duplicate-attribute-filters",
        """
        discovery:
          attributes:
            - {attribute: site, value: "b=c"}
            - {attribute: site, value: b, thing_type: c}
            - {attribute: site, value: "b=c"}
            - {attribute: site, value: b, thing_type: c}
        """,
        [
            'discovery.attributes[2]: duplicate attribute filter site="b=c" (first at [0])',
            'discovery.attributes[3]: duplicate attribute filter site="b" of thing type "c"'
            " (first at [1])",
        ],
    ),
    (
        "source-names-that-clash",
        """
        things: [a]
        discovery:
          thing_groups: [g]
          attributes:
            - {attribute: site, value: "b,thing_type:c"}
            - {attribute: site, value: b, thing_type: c}
          queries:
            - {query: "thingName:x*", name: live}
            - {query: "thingName:y*", name: "thing_group:g"}
        """,
        [
            'discovery.attributes[1]: source name "attribute:site=b,thing_type:c" is also'
            " discovery.attributes[0]'s: two sources cannot share one source label",
            'discovery.queries[0].name: "live" is the name of the live poller; choose another',
            'discovery.queries[1]: source name "thing_group:g" is also'
            " discovery.thing_groups[0]'s: two sources cannot share one source label",
        ],
    ),
    (
        "registry-problems",
        """
        registry:
          attributes: [serial-no, {attribute: fw, label: thing_type}]
        things: [a]
        """,
        [
            'registry.attributes[0]: attribute "serial-no" is not a valid label name: write'
            " {attribute: serial-no, label: NAME} with a NAME of letters, digits and _",
            'registry.attributes[1].label: label "thing_type" is iot_thing_info\'s own; choose'
            " another",
        ],
    ),
    (
        "registry-promote-unknown-and-clashing",
        """
        labels: {site: x}
        registry: {attributes: [site, fw], promote: [site, nope]}
        things: [a]
        """,
        [
            'registry.promote: cannot promote "nope": it is neither thing_type nor a label of'
            " registry.attributes (thing_type, site, fw)",
        ],
    ),
    (
        "registry-promote-a-configured-label",
        "labels: {site: x}\nregistry: {attributes: [site], promote: [site]}\nthings: [a]",
        [
            "registry.promote: site: also a configured label; promote another or rename the"
            " configured one"
        ],
    ),
    (
        "budgets",
        "budgets: {SearchIndx: 3, GetThingConnectivityData: 4, ListThings: 0}\nthings: [a]",
        [
            'budgets.SearchIndx: unknown AWS operation "SearchIndx" (did you mean "SearchIndex"?)',
            "budgets.GetThingConnectivityData: GetThingConnectivityData's budget is"
            " poll.max_requests_per_second; set it there",
            "budgets.ListThings: must be greater than 0 and at most 10000, got 0",
        ],
    ),
    (
        "aggregates-problems",
        """
        aggregates:
          queries:
            - {name: all}
            - {name: all, query: x}
            - {query: y, by: [thingTypeName, foo], max_buckets: 20000}
        """,
        [
            'aggregates.queries[1]: duplicate aggregate name "all" (first at [0])',
            "aggregates.queries[2].name: required key is missing",
            "aggregates.queries[2].by[1]: expected thingTypeName, thingGroupNames or"
            ' attributes.NAME, got "foo"',
            "aggregates.queries[2].max_buckets: must be between 1 and 10000, got 20000",
        ],
    ),
    (
        "poll-mode",
        "poll: {mode: fast}\nthings: [a]",
        ['poll.mode: expected live or index, got "fast"'],
    ),
    (
        "no-source-beside-other-errors",
        "aws: {regin: x}\ndiscovery: {interval: 5m}",
        [
            'aws.regin: unknown key (did you mean "region"?)',
            "things: list at least one thing, or name a discovery source or an aggregate query",
        ],
    ),
    (
        "every-error-at-once-in-file-order",
        """
        things:
          - sensor-0001
          - name: pump-7
            labels: {site: true}
          - pump-7
        aws:
          external_id: abc
          connect_timeout: 3
        labels: {__x: a}
        poll:
          concurrency: 0
          interval: fast
        zzz: 1
        """,
        [
            "things[1].labels.site: expected a string, got true"
            " (quote it: YAML reads yes, no, on, off, true, false as booleans)",
            'things[2].name: duplicate thing "pump-7" (first at things[1])',
            "aws.external_id: only allowed together with role_arn",
            "aws.connect_timeout: expected a duration such as 30s, got 3; write 3s",
            'labels.__x: reserved label name "__x": names starting with __ belong to Prometheus',
            "poll.concurrency: must be between 1 and 512, got 0",
            'poll.interval: expected a duration such as 30s, got "fast"',
            "zzz: unknown key",
        ],
    ),
]


# Characters YAML forbids stop its parser with a byte offset; each is reported by line and
# column instead, before any parsing (the test feeds the text as is, without dedent).
CONTROL_CHARACTERS = [
    (
        "nul",
        "things:\n  - a\x00b\n",
        "line 2, column 6: invalid YAML: NUL U+0000 is not allowed in a YAML file; delete it"
        " (in a double-quoted string, write it as an escape such as \\x00)",
    ),
    (
        "esc-in-label-value",
        'labels:\n  env: "pro\x1bd"\nthings: [a]\n',
        "line 2, column 12: invalid YAML: ESC U+001B is not allowed in a YAML file; delete it"
        " (in a double-quoted string, write it as an escape such as \\x1b)",
    ),
    (
        "form-feed",
        "things: [a]\n\x0c\n",
        "line 2, column 1: invalid YAML: form feed U+000C is not allowed in a YAML file;"
        " delete it (in a double-quoted string, write it as an escape such as \\x0c)",
    ),
    (
        "trailing-ctrl-z",
        "things: [a]\n\x1a",
        "line 2, column 1: invalid YAML: Ctrl-Z U+001A is not allowed in a YAML file;"
        " delete it (in a double-quoted string, write it as an escape such as \\x1a)",
    ),
    (
        "lone-surrogate",
        "things: [a\ud800]\n",
        "line 1, column 11: invalid YAML: character U+D800 is not allowed in a YAML file;"
        " delete it",
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [c[1:] for c in CONTROL_CHARACTERS],
    ids=[c[0] for c in CONTROL_CHARACTERS],
)
def test_characters_yaml_forbids_are_placed_by_line_and_column(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "config.yaml")
    assert list(caught.value.errors) == [expected]


def test_an_escaped_control_character_is_a_valid_label_value() -> None:
    config = parse_config('labels:\n  env: "pro\\x1bd"\nthings: [a]\n', "config.yaml")
    assert config.labels == {"env": "pro\x1bd"}


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_config(text: str, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(yaml_text(text), "config.yaml")
    assert list(caught.value.errors) == expected
    assert str(caught.value) == "\n".join(f"config.yaml: {line}" for line in expected)
    # pydantic's own wording and links must never reach the operator.
    for word in ("pydantic", "Input should", "validation error", "Traceback"):
        assert word not in str(caught.value)


def test_default_source_name() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("")
    assert (
        str(caught.value)
        == "<config>: "
        + "the file is empty: it needs a list of things, a discovery source or an aggregate"
    )


# --- loading files ----------------------------------------------------------------------------


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("things: [a]\n", encoding="utf-8")
    assert load_config(path) == Config(things=things("a"))
    assert load_config(str(path)) == Config(things=things("a"))


def test_load_config_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.errors == ("cannot read the file: No such file or directory",)
    assert str(caught.value) == f"{path}: cannot read the file: No such file or directory"


def test_load_config_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert caught.value.errors == ("cannot read the file: Is a directory",)


def test_load_config_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"things: [caf\xe9]\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.errors == ("not UTF-8 text (byte 12: invalid continuation byte)",)


def test_load_config_names_the_file_in_validation_errors(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("poll: {interval: 60}\nthings: [a]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        f"{path}: poll.interval: expected a duration such as 30s, got 60; write 60s"
    )


# --- durations --------------------------------------------------------------------------------

DURATIONS: list[tuple[str, float]] = [
    ("0", 0.0),
    ("0s", 0.0),
    ("1ms", 0.001),
    ("500ms", 0.5),
    ("30s", 30.0),
    ("5m", 300.0),
    ("1h30m", 5400.0),
    ("1d", 86400.0),
    ("1w", 604800.0),
    ("1y", 31536000.0),
    ("90d", 7776000.0),
    ("1y2w3d4h5m6s7ms", 31536000 + 2 * 604800 + 3 * 86400 + 4 * 3600 + 5 * 60 + 6.007),
    ("0001s", 1.0),
]


@pytest.mark.parametrize(("text", "seconds"), DURATIONS)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_prometheus_duration(text) == pytest.approx(seconds, abs=1e-9)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1",
        "s",
        "ms",
        "1.5s",
        "-1s",
        "1S",
        "1m1h",
        "1s1s",
        " 1s",
        "1s ",
        "1 s",
        "1h 30m",
        "1mo",
        "1µs",
        "१s",  # a non-ASCII digit
        "300000000y",
    ],
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_prometheus_duration(text)


FORMATS: list[tuple[float, str]] = [
    (0, "0s"),
    (0.0004, "0s"),
    (0.001, "1ms"),
    (0.5, "500ms"),
    (1.5, "1s500ms"),
    (60, "1m"),
    (90, "1m30s"),
    (5400, "1h30m"),
    (86400, "1d"),
    (8 * 86400, "8d"),
    (14 * 86400, "2w"),
    (365 * 86400, "1y"),
    (366 * 86400, "366d"),
    (90 * 86400 + 1, "90d1s"),
]


@pytest.mark.parametrize(("seconds", "text"), FORMATS)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_prometheus_duration(seconds) == text


@pytest.mark.parametrize("seconds", [1.0, 0.25, 5400.0, 86400.5, 123456.789, 31536000.0])
def test_format_duration_inverts_parse(seconds: float) -> None:
    assert parse_prometheus_duration(format_prometheus_duration(seconds)) == seconds


@pytest.mark.parametrize("seconds", [-1.0, math.nan, math.inf])
def test_format_duration_rejects(seconds: float) -> None:
    with pytest.raises(ValueError, match="duration"):
        format_prometheus_duration(seconds)


def test_yaml_merge_key_override_is_not_a_duplicate() -> None:
    text = "things:\n  - &t {name: a, labels: {site: x}}\n  - <<: *t\n    name: b\n"
    config = parse_config(text)
    assert config.things.names == ("a", "b")
    assert config.things.labels == {"a": {"site": "x"}, "b": {"site": "x"}}


def test_absurdly_nested_yaml_is_an_error_not_a_crash() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("things: " + "[" * 5000 + "]" * 5000)
    assert caught.value.errors == ("the YAML nests too deeply to be a config file",)


def test_every_name_the_exporter_gives_its_own_sources_is_reserved() -> None:
    own = {STATIC_SOURCE, live.NAME, aggregates.NAME, events.NAME}
    assert own == set(RESERVED_SOURCE_NAMES)


@pytest.mark.parametrize(
    ("written", "mode"),
    [
        ("true", "all"),
        ("false", "none"),
        ("all", "all"),
        ("problems", "problems"),
        ("none", "none"),
    ],
)
def test_per_thing_modes_and_the_booleans_that_came_before_them(written: str, mode: str) -> None:
    config = parse_config(f"metrics: {{per_thing: {written}}}\nthings: [a]")
    assert config.metrics.per_thing == mode
    assert config.metrics.problems_window == 3600.0
    assert config.metrics.max_problem_things == 10_000
    assert config.metrics.rollup_by == ()


def test_rollup_by_takes_registry_group_and_configured_labels() -> None:
    config = parse_config(
        "registry: {attributes: [site]}\nlabels: {env: prod}\n"
        "discovery: {thing_groups: [g]}\n"
        "metrics: {rollup_by: [thing_type, site, thing_group, env], max_rollup_segments: 50}"
    )
    assert config.metrics.rollup_by == ("thing_type", "site", "thing_group", "env")
    assert config.metrics.max_rollup_segments == 50
