"""Property: any bytes or text as a config or web config file give a config or a ConfigError.

Never another exception: a traceback at --config.check, at start-up or on reload is a bug.
Inputs are random bytes, random text, and random YAML documents built from the real keys
(so the validators, not only the YAML parser, see most of them).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.config import load_config, parse_config
from exporter.config.yamlfile import ConfigError
from exporter.web.config_file import load_web_security, parse_web_config

CONFIG_KEYS = [
    "aws", "region", "endpoint_url", "sts_endpoint_url", "profile", "role_arn", "external_id",
    "role_session_name", "connect_timeout", "read_timeout", "poll", "interval",
    "max_requests_per_second", "concurrency", "staleness", "max_retries", "mode", "labels",
    "things", "name", "discovery", "thing_groups", "recursive", "thing_types", "queries",
    "events", "queue_url",
]  # fmt: skip
WEB_KEYS = [
    "tls_server_config", "cert_file", "key_file", "cert", "key", "client_ca", "client_ca_file",
    "client_auth_type", "client_allowed_sans", "cipher_suites", "curve_preferences",
    "min_version", "max_version", "prefer_server_cipher_suites", "http_server_config", "http2",
    "headers", "X-Frame-Options", "X-XSS-Protection", "basic_auth_users", "rate_limit",
    "interval", "burst", "RequireAndVerifyClientCert", "TLS13", "CurveP256", "1s",
]  # fmt: skip

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def scalars(words: list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(words),
        st.text(max_size=30),
    )


def documents(words: list[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars(words),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.one_of(st.sampled_from(words), scalars(words)), inner, max_size=5),
        ),
        max_leaves=25,
    )


def yaml_text(words: list[str]) -> st.SearchStrategy[str]:
    return documents(words).map(lambda doc: yaml.safe_dump(doc, allow_unicode=True))


def refusal(call: Callable[[], object]) -> ConfigError | None:
    """The ConfigError call raises, or None when it succeeds; anything else propagates."""
    try:
        call()
    except ConfigError as error:
        return error
    return None


def assert_clear(error: ConfigError | None) -> None:
    if error is not None:
        assert error.errors
        assert all(isinstance(line, str) and line for line in error.errors)
        assert "Traceback" not in str(error)


def through_a_file(data: bytes, load: Callable[[Path], object]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "config.yaml"
        path.write_bytes(data)
        assert_clear(refusal(lambda: load(path)))


def as_text(text: str, parse: Callable[[str, str], object]) -> None:
    assert_clear(refusal(lambda: parse(text, "config.yaml")))


@SETTINGS
@given(st.binary(max_size=300))
def test_any_bytes_as_a_config_file(data: bytes) -> None:
    through_a_file(data, load_config)


@SETTINGS
@given(st.one_of(st.text(max_size=300), yaml_text(CONFIG_KEYS)))
def test_any_text_as_a_config(text: str) -> None:
    as_text(text, parse_config)


@SETTINGS
@given(st.binary(max_size=300))
def test_any_bytes_as_a_web_config_file(data: bytes) -> None:
    through_a_file(data, load_web_security)


@SETTINGS
@given(st.one_of(st.text(max_size=300), yaml_text(WEB_KEYS)))
def test_any_text_as_a_web_config(text: str) -> None:
    as_text(text, parse_web_config)


@SETTINGS
@given(yaml_text(WEB_KEYS))
def test_any_web_config_document_builds_or_is_refused(text: str) -> None:
    # Past parsing: building the TLS context, rate limiter and auth from what validated.
    through_a_file(text.encode(), load_web_security)
