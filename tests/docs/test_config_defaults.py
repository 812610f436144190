"""docs/configuration.md's reference table gives the defaults the code has.

Every row whose default is a literal (`60s`, `16`, `false`, `[]`, `all`) is checked against
the config model's own default, reached by the row's dotted key. Rows whose default is
prose (boto3's chain, 3 x poll.interval, the queue's own) say what no literal could.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import BaseModel

from exporter.config import Config
from exporter.config.durations import parse_prometheus_duration
from tests.support.paths import REPO_ROOT

TABLE_ROW = re.compile(r"^\| `([a-z_.\[\]*]+)` \| [^|]+ \| ([^|]+) \|", re.MULTILINE)
LITERAL = re.compile(r"`([^`]*)`")


def reference_table() -> str:
    """The table of config keys: from its first row, `aws.region`, to the first line after
    it that is no table row."""
    lines = (REPO_ROOT / "docs" / "configuration.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| `aws.region` |"))
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    return "\n".join(lines[start:end])


def documented_defaults() -> list[tuple[str, str]]:
    rows = []
    for key, default in TABLE_ROW.findall(reference_table()):
        literal = LITERAL.fullmatch(default.strip())
        if literal and "[" not in key and "*" not in key:
            rows.append((key, literal.group(1)))
    return rows


def code_default(key: str) -> Any:
    model: type[BaseModel] = Config
    *sections, name = key.split(".")
    for section in sections:
        annotation = model.model_fields[section].annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        model = next(c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel))
    field = model.model_fields[name]
    return field.get_default(call_default_factory=True)


def same(documented: str, default: Any) -> bool:
    if isinstance(default, bool):
        return documented == ("true" if default else "false")
    if isinstance(default, int | float):
        try:
            return float(documented) == float(default)
        except ValueError:
            return parse_prometheus_duration(documented) == float(default)
    if isinstance(default, tuple | list | dict):
        return documented in ("[]", "{}") and not default
    return documented == str(default)


ROWS = documented_defaults()


def test_the_table_has_literal_defaults_to_check() -> None:
    assert len(ROWS) >= 20  # a table whose format changed would check nothing


@pytest.mark.parametrize(("key", "documented"), ROWS, ids=[key for key, _ in ROWS])
def test_a_documented_default_is_the_codes(key: str, documented: str) -> None:
    default = code_default(key)
    assert same(documented, default), f"{key}: the docs say {documented!r}, the code {default!r}"
