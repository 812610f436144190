"""A second opinion on the registry calls: the simulator's answers have moto's shape.

moto cannot stand in for connectivity (it lacks GetThingConnectivityData), but it
implements the registry. Building the same registry in both and comparing what boto3
parses from each catches a field the simulator leaves out or invents.
"""

from __future__ import annotations

from typing import Any

import boto3
from moto import mock_aws

from exporter.simulator import Simulator, SimulatorConfig

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
