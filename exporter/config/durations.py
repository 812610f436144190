"""Durations as operators write them: Prometheus's grammar in config files, Go's in --web.* flags.

Two grammars because the exporter follows two conventions. The config file's durations
read like Prometheus's own (`5m`, `1h30m`, `1d`, `1w`); the web flags and the web config
file follow exporter-toolkit and Go's time.ParseDuration (`1m30s`, `250ms`, `1.5h`), as
every Go exporter's do.
"""

from __future__ import annotations

import math
import re

_PROMETHEUS_RE = re.compile(
    r"(?:([0-9]+)y)?(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?"
    r"(?:([0-9]+)s)?(?:([0-9]+)ms)?"
)
_DAY_MS = 86_400_000
_PROMETHEUS_UNITS_MS = (
    ("y", 365 * _DAY_MS),
    ("w", 7 * _DAY_MS),
    ("d", _DAY_MS),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
)
# Prometheus keeps durations as int64 nanoseconds; agree with it on what is too long.
_MAX_PROMETHEUS_MS = (2**63 - 1) // 1_000_000

_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
_GO_UNITS["h"] = 3600.0
_GO_RE = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|μs|ms|s|m|h)")


def parse_prometheus_duration(text: str) -> float:
    """Seconds in a Prometheus duration such as 1h30m, 5m, 30s, 500ms, 1d, 1w, 1y, or 0."""
    if text == "0":
        return 0.0
    match = _PROMETHEUS_RE.fullmatch(text) if text else None
    if match is None:
        raise ValueError(f"not a duration: {text!r}")
    total_ms = sum(
        int(count) * size
        for count, (_, size) in zip(match.groups(), _PROMETHEUS_UNITS_MS, strict=True)
        if count is not None
    )
    if total_ms > _MAX_PROMETHEUS_MS:
        raise ValueError(f"duration out of range: {text!r}")
    return total_ms / 1000


def format_prometheus_duration(seconds: float) -> str:
    """The Prometheus spelling of a duration, to the millisecond: 90 -> 1m30s."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"not a duration: {seconds!r}")
    remaining = round(seconds * 1000)
    if remaining == 0:
        return "0s"
    parts: list[str] = []
    for unit, size in _PROMETHEUS_UNITS_MS:
        # As in Prometheus: 90d reads better than 12w6d, so y and w only when exact.
        if unit in ("y", "w") and remaining % size:
            continue
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string ("10s", "1m30s", "250ms", "0"); ValueError otherwise."""
    if text == "0":
        return 0.0
    if not text or _GO_RE.sub("", text) != "":
        raise ValueError(f"expected a duration such as 10s, 1m30s or 250ms, got {text!r}")
    total = 0.0
    for match in _GO_RE.finditer(text):
        part = match.group()
        unit = next(u for u in sorted(_GO_UNITS, key=len, reverse=True) if part.endswith(u))
        total += float(part[: -len(unit)]) * _GO_UNITS[unit]
    return total
