"""Thing groups through boto3: DescribeThingGroup, and members joining and leaving at run time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from mypy_boto3_iot import IoTClient

from iot_simulator import ManualClock, Simulator, UnknownGroupError

ClientFactory = Callable[..., IoTClient]
START = 1_700_000_000.0


def listed(iot: IoTClient, group: str, *, recursive: bool = False) -> list[str]:
    names: list[str] = []
    more: dict[str, str] = {}
    while True:
        page = iot.list_things_in_thing_group(
            thingGroupName=group, recursive=recursive, maxResults=4, **more
        )
        names.extend(page["things"])
        if "nextToken" not in page:
            return names
        more = {"nextToken": page["nextToken"]}


def indexed_members(iot: IoTClient, group: str) -> list[str]:
    things = iot.search_index(queryString=f"thingGroupNames:{group}")["things"]
    return [t["thingName"] for t in things]


def group_buckets(iot: IoTClient) -> dict[str, int]:
    answer = iot.get_buckets_aggregation(
        queryString="*",
        aggregationField="thingGroupNames",
        bucketsAggregationType={"termsAggregation": {"maxBuckets": 100}},
    )
    return {b["keyValue"]: b["count"] for b in answer["buckets"]}


def test_describe_thing_group(sim: Simulator, clock: ManualClock, iot: IoTClient) -> None:
    top: dict[str, Any] = dict(iot.describe_thing_group(thingGroupName="group-2"))
    assert top["thingGroupName"] == "group-2"
    assert top["thingGroupArn"] == "arn:aws:iot:eu-west-1:123456789012:thinggroup/group-2"
    assert len(top["thingGroupId"]) == 36
    assert top["version"] == 1
    assert top["thingGroupProperties"] == {}
    metadata = top["thingGroupMetadata"]
    assert metadata["creationDate"] == dt.datetime.fromtimestamp(START, dt.UTC)
    assert "rootToParentThingGroups" not in metadata
    assert "parentGroupName" not in metadata
    clock.advance(60)
    sim.fleet.create_group("group-2-1-a", parent="group-2-1")
    deep = iot.describe_thing_group(thingGroupName="group-2-1-a")
    assert deep["thingGroupMetadata"]["parentGroupName"] == "group-2-1"
    assert [g["groupName"] for g in deep["thingGroupMetadata"]["rootToParentThingGroups"]] == [
        "group-2",
        "group-2-1",
    ]
    assert deep["thingGroupMetadata"]["creationDate"].timestamp() == START + 60
    assert deep["thingGroupId"] != top["thingGroupId"]


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("no-such-group", "ResourceNotFoundException"),
        ("bad name", "InvalidRequestException"),
        ("x" * 129, "InvalidRequestException"),
    ],
)
def test_describe_thing_group_errors(iot: IoTClient, name: str, error: str) -> None:
    with pytest.raises(getattr(iot.exceptions, error)):
        iot.describe_thing_group(thingGroupName=name)


def test_members_are_the_ground_truth_of_listing(sim: Simulator, iot: IoTClient) -> None:
    for group in sim.fleet.groups():
        assert listed(iot, group.name) == sim.fleet.members(group.name)
        assert listed(iot, group.name, recursive=True) == sim.fleet.members(
            group.name, recursive=True
        )
    with pytest.raises(UnknownGroupError):
        sim.fleet.members("nope")


def test_joining_and_leaving_show_in_listing_at_once_and_in_the_index_after_the_lag(
    sim: Simulator, clock: ManualClock, iot: IoTClient
) -> None:
    sim.set_index_lag(10)
    before = sim.fleet.members("group-1-1")
    assert "thing-00002" not in before
    before_buckets = group_buckets(iot)
    assert sim.fleet.add_to_group("thing-00002", "group-1-1")
    assert sim.fleet.remove_from_group("thing-00001", "group-1-1")
    now = sorted({*before, "thing-00002"} - {"thing-00001"})
    assert sim.fleet.members("group-1-1") == now
    assert listed(iot, "group-1-1") == now
    assert "thing-00002" in listed(iot, "group-1", recursive=True)
    # The index still shows the memberships of ten seconds ago.
    assert indexed_members(iot, "group-1-1") == before
    assert group_buckets(iot) == before_buckets
    clock.advance(10)
    assert indexed_members(iot, "group-1-1") == now
    after_buckets = group_buckets(iot)
    assert after_buckets["group-1-1"] == before_buckets["group-1-1"]  # one in, one out
    assert after_buckets["group-1-2"] == before_buckets["group-1-2"]  # thing-00002 stays
    assert sum(after_buckets.values()) == sum(before_buckets.values())
    assert group_buckets(iot) == {
        b["keyValue"]: b["count"]
        for b in sim.index_truth.buckets("*", "thingGroupNames", max_buckets=100)["buckets"]
    }


def test_a_thing_in_no_group(sim: Simulator, iot: IoTClient) -> None:
    for group in sim.fleet.record("thing-00004").groups:
        sim.fleet.remove_from_group("thing-00004", group)
    doc: dict[str, Any] = dict(iot.search_index(queryString="thingName:thing-00004")["things"][0])
    assert "thingGroupNames" not in doc
    stats = iot.get_statistics(queryString="*", aggregationField="thingGroupNames")
    assert stats["statistics"]["count"] == 29
