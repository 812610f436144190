"""GetStatistics and GetBucketsAggregation through boto3: answers, the oracle, modelled errors."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from mypy_boto3_iot import IoTClient
from mypy_boto3_iot.type_defs import BucketsAggregationTypeTypeDef, TermsAggregationTypeDef

from iot_simulator import ManualClock, Simulator, SimulatorConfig

ClientFactory = Callable[..., IoTClient]
CONNECTED = "connectivity.connected"
REASON = "connectivity.disconnectReason"


def statistics(iot: IoTClient, query: str, field: str | None = None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"queryString": query}
    if field is not None:
        kwargs["aggregationField"] = field
    return dict(iot.get_statistics(**kwargs)["statistics"])


def buckets(
    iot: IoTClient, query: str, field: str, max_buckets: int | None = None
) -> dict[str, Any]:
    terms: TermsAggregationTypeDef = {} if max_buckets is None else {"maxBuckets": max_buckets}
    answer = iot.get_buckets_aggregation(
        queryString=query,
        aggregationField=field,
        bucketsAggregationType={"termsAggregation": terms},
    )
    return {"totalCount": answer["totalCount"], "buckets": answer["buckets"]}


def test_a_bare_star_counts_every_indexed_thing(sim: Simulator, iot: IoTClient) -> None:
    sim.fleet.create_thing("late-comer")
    sim.fleet.delete_thing("thing-00003")
    # Without a field AWS aggregates registry.version, which every thing has.
    stats = statistics(iot, "*")
    assert stats["count"] == len(sim.fleet.thing_names()) == 30
    assert stats["sum"] == 30.0
    assert (stats["minimum"], stats["maximum"], stats["average"]) == (1.0, 1.0, 1.0)
    assert stats["variance"] == 0.0
    names = [t["thingName"] for t in iot.search_index(queryString="*")["things"]]
    assert names == sim.fleet.thing_names()


def test_connected_sum_is_the_number_of_connected_things(sim: Simulator, iot: IoTClient) -> None:
    connected = [n for n in sim.fleet.thing_names() if sim.fleet.state(n).connected]
    assert 0 < len(connected) < 30
    stats = statistics(iot, "*", CONNECTED)
    assert stats["count"] == 30
    assert stats["sum"] == len(connected)
    assert stats["average"] == pytest.approx(len(connected) / 30)
    assert (stats["minimum"], stats["maximum"]) == (0.0, 1.0)
    assert stats["sumOfSquares"] == len(connected)
    assert stats == sim.index_truth.statistics("*", CONNECTED)
    # The query narrows the things; count is those having the field.
    group = statistics(iot, "thingGroupNames:group-2-1", CONNECTED)
    members = sim.fleet.members("group-2-1")
    assert group["count"] == len(members)
    assert group["sum"] == sum(sim.fleet.state(n).connected for n in members)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("*", None),
        ("*", CONNECTED),
        ("connectivity.connected:false", "connectivity.timestamp"),
        ("connectivity.connected:true", "connectivity.keepAliveDuration"),
        ("thingTypeName:sensor", "connectivity.cleanSession"),
        ("*", "thingGroupNames"),  # a String field: the count alone
        ("*", REASON),
        ("attributes.model:m1", "attributes.firmware"),
        ("thingName:nobody", CONNECTED),  # nothing matches
    ],
)
def test_statistics_agree_with_the_oracle(
    sim: Simulator, clock: ManualClock, iot: IoTClient, query: str, field: str | None
) -> None:
    clock.advance(900)
    assert statistics(iot, query, field) == sim.index_truth.statistics(query, field)


def test_string_fields_yield_the_count_alone(sim: Simulator, iot: IoTClient) -> None:
    disconnected = [
        n
        for n in sim.fleet.thing_names()
        if not sim.fleet.state(n).connected and sim.fleet.state(n).reason
    ]
    assert statistics(iot, "*", REASON) == {"count": len(disconnected)}
    assert statistics(iot, "*", "attributes.site") == {"count": 30}


def test_no_match_gives_a_zero_count(iot: IoTClient) -> None:
    assert statistics(iot, "thingName:nobody", CONNECTED) == {
        "count": 0,
        "sum": 0.0,
        "sumOfSquares": 0.0,
    }


def test_buckets_of_each_field_the_exporter_uses(sim: Simulator, iot: IoTClient) -> None:
    sim.fleet.add_to_group("thing-00001", "group-2-2")  # in two groups: counts in both
    names = sim.fleet.thing_names()
    states = {n: sim.fleet.state(n) for n in names}
    reasons: Counter[str | None] = Counter(
        s.reason for s in states.values() if not s.connected and s.reason
    )
    expected: dict[str, Counter[str | None]] = {
        REASON: reasons,
        CONNECTED: Counter("true" if s.connected else "false" for s in states.values()),
        "thingTypeName": Counter(sim.fleet.record(n).type_name for n in names),
        "attributes.model": Counter(sim.fleet.record(n).attributes["model"] for n in names),
        "thingGroupNames": Counter(g for n in names for g in sim.fleet.record(n).groups),
    }
    for field, counts in expected.items():
        answer = buckets(iot, "*", field, max_buckets=100)
        assert answer["totalCount"] == 30, field  # every thing the query matched
        got = {b["keyValue"]: b["count"] for b in answer["buckets"]}
        assert got == dict(counts), field
        assert answer == sim.index_truth.buckets("*", field, max_buckets=100)
    groups = buckets(iot, "*", "thingGroupNames", max_buckets=100)["buckets"]
    assert sum(b["count"] for b in groups) == 31


def test_buckets_rank_by_count_then_value_and_stop_at_max(sim: Simulator, iot: IoTClient) -> None:
    answer = buckets(iot, "*", "thingName", max_buckets=5)
    assert answer["totalCount"] == 30
    assert [b["keyValue"] for b in answer["buckets"]] == sim.fleet.thing_names()[:5]
    by_group = buckets(iot, "*", "thingGroupNames", max_buckets=2)["buckets"]
    counts = [b["count"] for b in by_group]
    assert counts == sorted(counts, reverse=True)
    assert len(by_group) == 2


def test_max_buckets_defaults_to_ten(sim: Simulator, iot: IoTClient) -> None:
    kinds: list[BucketsAggregationTypeTypeDef] = [{}, {"termsAggregation": {}}]
    for kind in kinds:
        answer = iot.get_buckets_aggregation(
            queryString="*", aggregationField="thingName", bucketsAggregationType=kind
        )
        assert len(answer["buckets"]) == 10


def test_buckets_over_a_query_count_matching_things_only(sim: Simulator, iot: IoTClient) -> None:
    query = "thingGroupNames:(group-1-1 OR group-2-2) AND connectivity.connected:false"
    answer = buckets(iot, query, REASON, max_buckets=50)
    offline = sim.index_truth.search(query)
    assert answer["totalCount"] == len(offline)
    assert sum(b["count"] for b in answer["buckets"]) <= len(offline)
    assert answer == sim.index_truth.buckets(query, REASON, max_buckets=50)


@pytest.mark.parametrize(
    ("call", "kwargs", "error"),
    [
        ("get_statistics", {"queryString": "nosuch:x"}, "InvalidQueryException"),
        ("get_statistics", {"queryString": "(thingName:x"}, "InvalidQueryException"),
        (
            "get_statistics",
            {"queryString": " ".join(f"thingName:t{i}" for i in range(13))},
            "InvalidQueryException",
        ),
        (
            "get_statistics",
            {"queryString": "*", "aggregationField": "shadow.reported.x"},
            "InvalidAggregationException",
        ),
        (
            "get_statistics",
            {"queryString": "*", "indexName": "AWS_ThingGroups"},
            "ResourceNotFoundException",
        ),
        (
            "get_buckets_aggregation",
            {
                "queryString": "thingName:",
                "aggregationField": "thingName",
                "bucketsAggregationType": {},
            },
            "InvalidQueryException",
        ),
        (
            "get_buckets_aggregation",
            {"queryString": "*", "aggregationField": "nope", "bucketsAggregationType": {}},
            "InvalidAggregationException",
        ),
        (
            "get_buckets_aggregation",
            {"queryString": "*", "aggregationField": "attributes.", "bucketsAggregationType": {}},
            "InvalidAggregationException",
        ),
        (
            "get_buckets_aggregation",
            {
                "queryString": "*",
                "aggregationField": "thingName",
                "bucketsAggregationType": {},
                "indexName": "AWS_Other",
            },
            "ResourceNotFoundException",
        ),
    ],
)
def test_modelled_errors(
    sim: Simulator, iot: IoTClient, call: str, kwargs: dict[str, Any], error: str
) -> None:
    with pytest.raises(getattr(iot.exceptions, error)):
        getattr(iot, call)(**kwargs)


@pytest.mark.parametrize("max_buckets", [0, 10_001])
def test_max_buckets_bounds(sim: Simulator, make_client: ClientFactory, max_buckets: int) -> None:
    # boto3 refuses these itself; without its check the server answers as AWS does.
    loose: IoTClient = make_client(sim, parameter_validation=False)
    with pytest.raises(loose.exceptions.InvalidRequestException, match="maxBuckets"):
        loose.get_buckets_aggregation(
            queryString="*",
            aggregationField="thingName",
            bucketsAggregationType={"termsAggregation": {"maxBuckets": max_buckets}},
        )


def test_missing_required_members(sim: Simulator, make_client: ClientFactory) -> None:
    loose: IoTClient = make_client(sim, parameter_validation=False)
    with pytest.raises(loose.exceptions.InvalidRequestException, match="aggregationField"):
        loose.get_buckets_aggregation(queryString="*", bucketsAggregationType={})  # type: ignore[call-arg]
    with pytest.raises(loose.exceptions.InvalidRequestException, match="queryString"):
        loose.get_statistics()  # type: ignore[call-arg]


def test_connectivity_fields_cannot_be_aggregated_without_connectivity_indexing(
    make_client: ClientFactory,
) -> None:
    with Simulator(SimulatorConfig(things=4, connectivity_indexing=False, quotas=False)) as sim:
        iot: IoTClient = make_client(sim)
        assert statistics(iot, "*")["count"] == 4
        with pytest.raises(iot.exceptions.InvalidAggregationException):
            statistics(iot, "*", CONNECTED)
        assert buckets(iot, "*", "thingTypeName")["totalCount"] == 4


def test_field_grouping_and_the_term_limit_in_search_index(sim: Simulator, iot: IoTClient) -> None:
    groups = ["group-1-1", "group-2-2"]
    query = "thingGroupNames:(" + " OR ".join(groups) + ")"
    found = [t["thingName"] for t in iot.search_index(queryString=query)["things"]]
    expected = sorted({n for g in groups for n in sim.fleet.members(g)})
    assert found == expected
    assert found == sim.index_truth.search(query)
    twelve = "thingGroupNames:(" + " OR ".join(f"g{i}" for i in range(11)) + " OR group-1-1)"
    assert len(iot.search_index(queryString=twelve)["things"]) == len(
        sim.fleet.members("group-1-1")
    )
    thirteen = twelve.replace(")", " OR g99)")
    with pytest.raises(iot.exceptions.InvalidQueryException, match="13 terms"):
        iot.search_index(queryString=thirteen)
