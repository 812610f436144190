"""A second opinion on the registry and group calls: the simulator's answers have moto's shape.

moto cannot stand in for connectivity (it lacks GetThingConnectivityData), but it
implements the registry. Building the same registry in both and comparing what boto3
parses from each catches a field the simulator leaves out or invents.
"""

from __future__ import annotations

from typing import Any

import boto3
from moto import mock_aws

from iot_simulator import Simulator, SimulatorConfig

REGION = "eu-west-1"
# name -> (thing type, attributes)
THINGS: dict[str, tuple[str, dict[str, str]]] = {
    "pump-7": ("pump", {"site": "plant-a", "floor": "3"}),
    "sensor-0001": ("sensor", {"site": "plant-b"}),
}


def client(endpoint_url: str | None = None) -> Any:
    return boto3.client(
        "iot",
        region_name=REGION,
        endpoint_url=endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def answers(iot: Any) -> dict[str, Any]:
    """What a few registry calls return, without the transport metadata."""

    def clean(response: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in response.items() if k != "ResponseMetadata"}

    return {
        "list_things": clean(iot.list_things()),
        "list_things_by_type": clean(iot.list_things(thingTypeName="pump")),
        "list_things_by_attribute": clean(
            iot.list_things(attributeName="site", attributeValue="plant-b")
        ),
        "describe_thing": clean(iot.describe_thing(thingName="pump-7")),
    }


def moto_answers() -> dict[str, Any]:
    with mock_aws():
        iot = client()
        for thing_type in ("pump", "sensor"):
            iot.create_thing_type(thingTypeName=thing_type)
        for name, (thing_type, attributes) in THINGS.items():
            iot.create_thing(
                thingName=name,
                thingTypeName=thing_type,
                attributePayload={"attributes": attributes},
            )
        return answers(iot)


def simulator_answers() -> dict[str, Any]:
    with Simulator(SimulatorConfig(things=0, seed=1, quotas=False)) as sim:
        for name, (thing_type, attributes) in THINGS.items():
            sim.fleet.create_thing(name, thing_type=thing_type, attributes=attributes)
        return answers(client(sim.url))


def test_registry_answers_have_the_same_shape_as_motos() -> None:
    ours, theirs = simulator_answers(), moto_answers()
    # Same things found by every filter.
    for call in ("list_things", "list_things_by_type", "list_things_by_attribute"):
        assert sorted(t["thingName"] for t in ours[call]["things"]) == sorted(
            t["thingName"] for t in theirs[call]["things"]
        ), call
    # Same fields per listed thing, and the same values for the ones both can know.
    ours_things = {t["thingName"]: t for t in ours["list_things"]["things"]}
    for thing in theirs["list_things"]["things"]:
        mine = ours_things[thing["thingName"]]
        assert set(mine) == set(thing), thing["thingName"]
        assert mine["attributes"] == thing["attributes"]
        assert mine["thingTypeName"] == thing["thingTypeName"]
        assert mine["thingArn"].split(":thing/")[1] == thing["thingArn"].split(":thing/")[1]
    # DescribeThing: every field moto returns, we return too (ids and versions differ).
    assert set(theirs["describe_thing"]) <= set(ours["describe_thing"])
    assert ours["describe_thing"]["attributes"] == theirs["describe_thing"]["attributes"]


# Thing groups: (parent, members added directly).
GROUPS: dict[str, tuple[str | None, list[str]]] = {
    "plant": (None, []),
    "plant-line-1": ("plant", ["pump-7"]),
    "plant-line-1-cell-a": ("plant-line-1", ["sensor-0001", "pump-7"]),
}


def group_answers(iot: Any) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for group in GROUPS:
        described = iot.describe_thing_group(thingGroupName=group)
        described.pop("ResponseMetadata")
        answers[f"describe:{group}"] = described
        listed = iot.list_things_in_thing_group(thingGroupName=group)["things"]
        answers[f"members:{group}"] = sorted(listed)
    try:
        iot.describe_thing_group(thingGroupName="missing")
    except iot.exceptions.ResourceNotFoundException:
        answers["missing"] = "ResourceNotFoundException"
    return answers


def moto_group_answers() -> dict[str, Any]:
    with mock_aws():
        iot = client()
        for name in THINGS:
            iot.create_thing(thingName=name)
        for group, (parent, members) in GROUPS.items():
            if parent is None:
                iot.create_thing_group(thingGroupName=group)
            else:
                iot.create_thing_group(thingGroupName=group, parentGroupName=parent)
            for thing in members:
                iot.add_thing_to_thing_group(thingGroupName=group, thingName=thing)
        return group_answers(iot)


def simulator_group_answers() -> dict[str, Any]:
    with Simulator(SimulatorConfig(things=0, seed=1, quotas=False, top_groups=0)) as sim:
        for name in THINGS:
            sim.fleet.create_thing(name)
        for group, (parent, members) in GROUPS.items():
            sim.fleet.create_group(group, parent)
            for thing in members:
                sim.fleet.add_to_group(thing, group)
        return group_answers(client(sim.url))


def test_group_answers_have_the_same_shape_as_motos() -> None:
    ours, theirs = simulator_group_answers(), moto_group_answers()
    assert ours.keys() == theirs.keys()
    for key, mine in ours.items():
        other = theirs[key]
        if not key.startswith("describe:"):
            assert mine == other, key
            continue
        # Ids and creation dates differ; every field and metadata key must not.
        assert set(mine) == set(other), key
        assert set(mine["thingGroupMetadata"]) == set(other["thingGroupMetadata"]), key
        for field in ("thingGroupName", "version", "thingGroupProperties"):
            assert mine[field] == other[field], (key, field)
        metadata = mine["thingGroupMetadata"]
        assert metadata.get("parentGroupName") == other["thingGroupMetadata"].get("parentGroupName")
        assert [g["groupName"] for g in metadata.get("rootToParentThingGroups", [])] == [
            g["groupName"] for g in other["thingGroupMetadata"].get("rootToParentThingGroups", [])
        ]
