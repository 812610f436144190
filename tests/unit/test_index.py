"""The fleet-index pager's pure parts: queries within AWS's term limit, entries read safely."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from exporter.fleet.connectivity import Outcome
from exporter.fleet.shards import Shard
from exporter.sources.index import (
    MAX_QUERY_TERMS,
    SHARDED_NAME_TERMS,
    any_of,
    fixed_queries,
    narrowed_to,
    observation_of,
    query_terms,
)
from iot_simulator.query import count_terms
from iot_simulator.query import parse as parse_query

NOW = 1_700_000_000.0


def test_any_of_splits_at_the_term_limit_and_quotes_every_value() -> None:
    names = [f"t-{i}" for i in range(2 * MAX_QUERY_TERMS + 1)]
    queries = any_of("thingName", names)
    assert len(queries) == 3
    assert [q.count(" OR ") + 1 for q in queries] == [MAX_QUERY_TERMS, MAX_QUERY_TERMS, 1]
    assert queries[2] == f'thingName:"t-{2 * MAX_QUERY_TERMS}"'
    assert any_of("thingGroupNames", ["gate:2"]) == ['thingGroupNames:"gate:2"']
    assert any_of("thingName", []) == []


@pytest.mark.parametrize(
    ("entry", "outcome", "connected", "timestamp", "reason"),
    [
        (
            {"connectivity": {"connected": True, "timestamp": (NOW - 5) * 1000}},
            Outcome.OK,
            True,
            NOW - 5,
            None,
        ),
        (
            {
                "connectivity": {
                    "connected": False,
                    "timestamp": int(NOW * 1000),
                    "disconnectReason": "AUTH_ERROR",
                }
            },
            Outcome.OK,
            False,
            NOW,
            "AUTH_ERROR",
        ),
        # Disconnected for about an hour: the index has dropped timestamp and reason.
        ({"connectivity": {"connected": False}}, Outcome.OK, False, None, None),
        # No connectivity at all: never connected, or another client ID.
        ({}, Outcome.OK, False, None, None),
        ({"connectivity": "yes"}, Outcome.ERROR, False, None, None),
        ({"connectivity": {"connected": "true"}}, Outcome.ERROR, False, None, None),
        (
            {"connectivity": {"connected": True, "timestamp": "soon"}},
            Outcome.ERROR,
            False,
            None,
            None,
        ),
        (
            {"connectivity": {"connected": True, "timestamp": math.inf}},
            Outcome.ERROR,
            False,
            None,
            None,
        ),
        ({"connectivity": {"connected": True, "timestamp": -5}}, Outcome.ERROR, False, None, None),
        (
            {
                "connectivity": {
                    "connected": False,
                    "timestamp": NOW * 1000,
                    "disconnectReason": "x y",
                }
            },
            Outcome.OK,
            False,
            NOW,
            None,
        ),
    ],
)
def test_observation_of_an_index_entry(
    entry: dict[str, Any],
    outcome: Outcome,
    connected: bool,
    timestamp: float | None,
    reason: str | None,
) -> None:
    observation = observation_of(entry, "t", NOW)
    assert observation.outcome is outcome
    if outcome is Outcome.ERROR:
        assert observation.error_code == "InvalidResponse"
        return
    assert observation.connected is connected
    assert observation.timestamp == (pytest.approx(timestamp) if timestamp is not None else None)
    assert observation.reason == reason


@pytest.mark.parametrize(
    ("query", "terms"),
    [
        ("*", 1),
        ('thingTypeName:"sensor"', 1),
        ('attributes.site:"a b" AND thingTypeName:"x"', 2),
        ('thingGroupNames:"a" OR thingGroupNames:"b" OR thingGroupNames:"c"', 3),
        ("thingName:(tv* AND -plasma)", 3),  # AWS counts 2: an upper bound is enough
        ("NOT connectivity.connected:true", 1),
    ],
)
def test_query_terms_never_undercounts(query: str, terms: int) -> None:
    assert query_terms(query) == terms


@pytest.mark.parametrize("total", [2, 3, 7])
@pytest.mark.parametrize(
    "query",
    [
        "*",
        'thingTypeName:"sensor"',
        " OR ".join(f'thingGroupNames:"g{i}"' for i in range(SHARDED_NAME_TERMS)),
        "attributes.site:a AND thingTypeName:b AND connectivity.connected:true",
    ],
)
def test_a_shards_queries_stay_within_twelve_terms_and_cover_its_prefixes(
    query: str, total: int
) -> None:
    for k in range(total):
        prefixes = Shard(k, total).id_prefixes()
        narrowed = narrowed_to(fixed_queries([query]), prefixes)(None)  # type: ignore[arg-type]
        seen = []
        for text in narrowed:
            assert count_terms(parse_query(text)) <= MAX_QUERY_TERMS, text
            seen.extend(re.findall(r"thingId:([0-9a-f]+)\*", text))
        assert seen == list(prefixes)
