"""The events section: valid files against their settings, invalid ones against exact errors."""

import textwrap
from pathlib import Path

import pytest

from exporter.aws.clients import make_sqs_client
from exporter.cli import check_config
from exporter.config import Config, parse_config
from exporter.config.budgets import DEFAULT_BUDGETS
from exporter.config.events import ClientIdSettings, EventsSettings, queue_region
from exporter.config.yamlfile import ConfigError

QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/iot-lifecycle"


def parsed(text: str) -> Config:
    return parse_config(textwrap.dedent(text).lstrip("\n"), "config.yaml")


VALID: list[tuple[str, str, EventsSettings | None]] = [
    ("absent", "things: [a]", None),
    (
        "issue-10-contract",
        f"""
        things: [a]
        events:
          queue_url: {QUEUE}
          endpoint_url: http://127.0.0.1:5000
        """,
        EventsSettings(queue_url=QUEUE, endpoint_url="http://127.0.0.1:5000"),
    ),
    (
        "every-key",
        f"""
        things: [a]
        events:
          queue_url: {QUEUE}
          consumers: 4
          client_id: {{prefix: "dev/", suffix: "-mqtt"}}
          visibility_timeout: 2m
          dedupe_keys: 5000
          wait_time: 5s
        """,
        EventsSettings(
            queue_url=QUEUE,
            consumers=4,
            client_id=ClientIdSettings(prefix="dev/", suffix="-mqtt"),
            visibility_timeout=120.0,
            dedupe_keys=5000,
            wait_time=5.0,
        ),
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in VALID], ids=[c[0] for c in VALID])
def test_valid_events_section(text: str, expected: EventsSettings | None) -> None:
    assert parsed(text).events == expected


def test_defaults() -> None:
    events = parsed(f"things: [a]\nevents: {{queue_url: {QUEUE}}}").events
    assert events is not None
    assert (events.consumers, events.visibility_timeout, events.dedupe_keys) == (1, None, 100_000)
    assert events.wait_time == 20.0  # SQS's longest long poll: the fewest empty receives
    assert events.client_id == ClientIdSettings(prefix="", suffix="")


def test_sqs_operations_have_budgets() -> None:
    config = parsed("things: [a]\nbudgets: {ReceiveMessage: 200}")
    assert config.budget("ReceiveMessage") == 200.0
    assert config.budget("DeleteMessageBatch") == DEFAULT_BUDGETS["DeleteMessageBatch"]
    assert config.budget("GetQueueAttributes") == 1.0


HINT = 'did you mean "ReceiveMessage"?'

INVALID: list[tuple[str, str, list[str]]] = [
    (
        "events-alone-names-no-target",
        f"events: {{queue_url: {QUEUE}}}",
        ["things: list at least one thing, or name a discovery source or an aggregate query"],
    ),
    ("empty-section", "things: [a]\nevents:", ["events.queue_url: required key is missing"]),
    (
        "not-a-mapping",
        "things: [a]\nevents: [x]",
        ["events: expected a mapping, got a list"],
    ),
    (
        "bad-urls",
        "things: [a]\nevents: {queue_url: iot-lifecycle, endpoint_url: 'ftp://x'}",
        [
            'events.queue_url: expected an http:// or https:// URL, got "iot-lifecycle"',
            'events.endpoint_url: expected an http:// or https:// URL, got "ftp://x"',
        ],
    ),
    (
        "consumers-out-of-range",
        f"things: [a]\nevents: {{queue_url: {QUEUE}, consumers: 17}}",
        ["events.consumers: must be between 1 and 16, got 17"],
    ),
    (
        "consumers-zero",
        f"things: [a]\nevents: {{queue_url: {QUEUE}, consumers: 0}}",
        ["events.consumers: must be between 1 and 16, got 0"],
    ),
    (
        "visibility-timeout-too-long",
        f"things: [a]\nevents: {{queue_url: {QUEUE}, visibility_timeout: 13h}}",
        ["events.visibility_timeout: must be at most 12h, got 13h"],
    ),
    (
        "visibility-timeout-bare-number",
        f"things: [a]\nevents: {{queue_url: {QUEUE}, visibility_timeout: 30}}",
        ["events.visibility_timeout: expected a duration such as 30s, got 30; write 30s"],
    ),
    (
        "wait-time-beyond-sqs-s-longest-poll",
        f"things: [a]\nevents: {{queue_url: {QUEUE}, wait_time: 30s}}",
        ["events.wait_time: must be at most 20s, got 30s"],
    ),
    (
        "wait-time-zero-would-be-short-polling",
        f"things: [a]\nevents: {{queue_url: {QUEUE}, wait_time: 0s}}",
        ["events.wait_time: must be at least 1s, got 0s"],
    ),
    (
        "dedupe-keys-too-few",
        f"things: [a]\nevents: {{queue_url: {QUEUE}, dedupe_keys: 10}}",
        ["events.dedupe_keys: must be between 1000 and 10000000, got 10"],
    ),
    (
        "client-id-unknown-key",
        f"things: [a]\nevents: {{queue_url: {QUEUE}, client_id: {{prefx: a}}}}",
        ['events.client_id.prefx: unknown key (did you mean "prefix"?)'],
    ),
    (
        "unknown-budget",
        "things: [a]\nbudgets: {ReceiveMessages: 5}",
        [f'budgets.ReceiveMessages: unknown AWS operation "ReceiveMessages" ({HINT})'],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_events_section(text: str, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "config.yaml")
    assert list(caught.value.errors) == expected


@pytest.mark.parametrize(("wait_time", "read_timeout"), [("20s", 25.0), ("1s", 6.0)])
def test_the_sqs_read_timeout_outlasts_the_long_poll(wait_time: str, read_timeout: float) -> None:
    config = parsed(
        f"""
        aws: {{region: eu-west-1, read_timeout: 5s}}
        things: [a]
        events: {{queue_url: {QUEUE}, wait_time: {wait_time}}}
        """
    )
    assert config.events is not None
    client = make_sqs_client(config.aws, config.events, static_credentials=("AKID", "secret"))
    # A hung receive is given up the read timeout after the poll should have answered.
    assert vars(client.meta.config)["read_timeout"] == read_timeout  # not in the stubs


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://sqs.eu-west-1.amazonaws.com/123456789012/lifecycle", "eu-west-1"),
        ("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/lifecycle", "cn-north-1"),
        ("https://us-east-2.queue.amazonaws.com/123456789012/lifecycle", "us-east-2"),
        ("http://127.0.0.1:5000/123456789012/lifecycle", None),
        ("https://sqs.example.com/123/q", None),
    ],
)
def test_the_queue_url_names_its_region(url: str, region: str | None) -> None:
    assert queue_region(url) == region


def test_a_queue_in_another_region_than_the_things_is_noted() -> None:
    text = """
    aws: {region: eu-west-1}
    things: [a]
    events: {queue_url: "https://sqs.us-east-1.amazonaws.com/123456789012/lifecycle"}
    """
    config = parsed(text)
    [note] = config.notes()
    assert note.startswith("events.queue_url: the queue is in us-east-1, aws.region is eu-west-1")
    assert config.events is not None
    # The SQS client is the queue's region's, whatever aws.region says.
    client = make_sqs_client(config.aws, config.events, static_credentials=("AKID", "secret"))
    assert client.meta.region_name == "us-east-1"
    assert parsed(text.replace("us-east-1", "eu-west-1")).notes() == []


def test_config_check_prints_the_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "aws: {region: eu-west-1}\nthings: [a]\n"
        'events: {queue_url: "https://sqs.us-east-1.amazonaws.com/123456789012/lifecycle"}\n'
    )
    assert check_config(str(path)) == 0  # a note, not an error
    out = capsys.readouterr().out
    assert f"{path}: warning: events.queue_url: the queue is in us-east-1" in out
