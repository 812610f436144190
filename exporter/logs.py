"""Log output: one line per event, logfmt by default or JSON, with structured fields."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any, TextIO

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
FORMATS = ("logfmt", "json")

# Attributes every LogRecord has; anything else was passed through `extra=` and is a field.
_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of a record, in a stable order."""
    fields: dict[str, Any] = {
        "ts": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(
            timespec="milliseconds"
        ),
        "level": record.levelname.lower().replace("warning", "warn"),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    for key, value in vars(record).items():
        if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
            fields[key] = value
    if record.exc_info:
        fields["exception"] = logging.Formatter().formatException(record.exc_info)
    return fields


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in fields_of(record).items())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(fields_of(record), default=str, separators=(",", ":"))


def _logfmt_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text and not any(c in text for c in ' ="\\\n\t'):
        return text
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    )
    return f'"{escaped}"'


def setup_logging(level: str, fmt: str, stream: TextIO | None = None) -> None:
    """Route every logger (ours, APScheduler's, botocore's warnings) through one handler."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    # APScheduler logs every job run at INFO; at our default level that is noise.
    logging.getLogger("apscheduler").setLevel(max(LEVELS[level], logging.WARNING))
    # botocore at DEBUG prints request headers, including signed Authorization lines.
    logging.getLogger("botocore").setLevel(max(LEVELS[level], logging.INFO))
    logging.getLogger("urllib3").setLevel(max(LEVELS[level], logging.INFO))
