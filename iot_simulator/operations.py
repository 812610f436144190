"""The IoT operations the simulator serves: validated input in, output dict (or ApiError) out."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator, Mapping
from itertools import islice
from typing import Any, TypeVar

from iot_simulator.aggregations import (
    DEFAULT_MAX_BUCKETS,
    DEFAULT_STATISTICS_FIELD,
    FieldType,
    field_type,
)
from iot_simulator.config import SimulatorConfig
from iot_simulator.index import FleetIndex, search_document
from iot_simulator.model import Fleet, Session, ThingRecord, UnknownThingError
from iot_simulator.protocol import ApiError
from iot_simulator.query import Expr, QueryError, parse

OPERATIONS = (
    "GetThingConnectivityData",
    "SearchIndex",
    "GetStatistics",
    "GetBucketsAggregation",
    "ListThings",
    "ListThingsInThingGroup",
    "ListThingGroups",
    "DescribeThingGroup",
    "DescribeThing",
    "GetIndexingConfiguration",
    "DescribeIndex",
)
THINGS_INDEX = "AWS_Things"
# Page sizes when the caller gives no maxResults: AWS does not document them, so these are
# the simulator's assumptions. SearchIndex's documented ceiling is 100.
DEFAULT_PAGE = 50
SEARCH_DEFAULT_PAGE = 100
SEARCH_MAX_PAGE = 100

T = TypeVar("T")


def encode_token(after: str) -> str:
    """An opaque nextToken: the last name returned, so paging survives creates and deletes."""
    return base64.urlsafe_b64encode(f"v1:{after}".encode()).decode()


def decode_token(token: str | None) -> str | None:
    if token is None:
        return None
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeError, ValueError):
        text = ""
    if not text.startswith("v1:"):
        raise ApiError("InvalidRequestException", "The pagination token is invalid.")
    return text[3:]


def _page(items: Iterator[T], limit: int, key: Callable[[T], str]) -> tuple[list[T], str | None]:
    page = list(islice(items, limit + 1))
    if len(page) > limit:
        page = page[:limit]
        return page, encode_token(key(page[-1]))
    return page, None


def _session_fields(session: Session) -> dict[str, str | int | bool]:
    """A connected thing's MQTT session fields, by their wire names, as every operation has them."""
    return {
        "clientId": session.client_id,
        "keepAliveDuration": session.keep_alive,
        "cleanSession": session.clean_session,
        "sessionExpiry": session.session_expiry,
    }


class IotApi:
    """Implements each operation over the fleet. Thread-safe as the fleet is."""

    def __init__(self, fleet: Fleet, config: SimulatorConfig, index: FleetIndex) -> None:
        self._fleet = fleet
        self._config = config
        self._index = index
        self._handlers: Mapping[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
            "GetThingConnectivityData": self.get_thing_connectivity_data,
            "SearchIndex": self.search_index,
            "GetStatistics": self.get_statistics,
            "GetBucketsAggregation": self.get_buckets_aggregation,
            "ListThings": self.list_things,
            "ListThingsInThingGroup": self.list_things_in_thing_group,
            "ListThingGroups": self.list_thing_groups,
            "DescribeThingGroup": self.describe_thing_group,
            "DescribeThing": self.describe_thing,
            "GetIndexingConfiguration": self.get_indexing_configuration,
            "DescribeIndex": self.describe_index,
        }

    def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        return self._handlers[operation](params)

    def _record(self, name: str) -> ThingRecord:
        try:
            return self._fleet.record(name)
        except UnknownThingError:
            raise ApiError("ResourceNotFoundException", f"Thing {name} cannot be found.") from None

    def get_thing_connectivity_data(self, params: Mapping[str, Any]) -> dict[str, Any]:
        if not self._config.connectivity_indexing:
            raise ApiError(
                "IndexNotReadyException",
                "Thing connectivity indexing is off: set thingConnectivityIndexingMode to STATUS.",
            )
        record = self._record(params["thingName"])
        state, session = record.connectivity, record.session
        out: dict[str, Any] = {"thingName": record.name, "connected": state.connected}
        if state.timestamp_ms is not None:
            out["timestamp"] = state.timestamp_ms / 1000.0
            if not state.connected:
                out["disconnectReason"] = state.reason
        if session is not None:
            out.update(_session_fields(session))
            if params.get("includeSocketInformation"):
                out["sourceIp"] = session.source_ip
                out["sourcePort"] = session.source_port
                out["targetIp"] = "203.0.113.10"
                out["targetPort"] = 8883
        return out

    def _query(self, text: str) -> Expr:
        try:
            return parse(text)
        except QueryError as error:
            raise ApiError("InvalidQueryException", f"Invalid query: {error}") from None

    @staticmethod
    def _check_index(params: Mapping[str, Any]) -> None:
        index = params.get("indexName", THINGS_INDEX)
        if index != THINGS_INDEX:
            raise ApiError("ResourceNotFoundException", f"Index {index} does not exist.")

    def search_index(self, params: Mapping[str, Any]) -> dict[str, Any]:
        self._check_index(params)
        limit = params.get("maxResults", SEARCH_DEFAULT_PAGE)
        if limit > SEARCH_MAX_PAGE:
            raise ApiError(
                "InvalidRequestException",
                f"maxResults must be at most {SEARCH_MAX_PAGE}, got {limit}",
            )
        expr = self._query(params["queryString"])
        # The page stops at limit + 1 matches, so its cost is that of the page, however deep.
        found = self._index.matching(expr, after=decode_token(params.get("nextToken")))
        page, token = _page(found, limit, lambda s: s.name)
        connectivity = self._index.connectivity
        things = [search_document(s, connectivity=connectivity) for s in page]
        return {"things": things, "nextToken": token}

    def _aggregation_field(self, field: str) -> FieldType:
        kind = field_type(field, connectivity=self._index.connectivity)
        if kind is None:
            raise ApiError(
                "InvalidAggregationException",
                f"Field {field} cannot be aggregated: it is not a field of the index.",
            )
        return kind

    def get_statistics(self, params: Mapping[str, Any]) -> dict[str, Any]:
        self._check_index(params)
        expr = self._query(params["queryString"])
        field = params.get("aggregationField", DEFAULT_STATISTICS_FIELD)
        kind = self._aggregation_field(field)
        return {"statistics": self._index.statistics(expr, field, kind)}

    def get_buckets_aggregation(self, params: Mapping[str, Any]) -> dict[str, Any]:
        self._check_index(params)
        expr = self._query(params["queryString"])
        field = params["aggregationField"]
        self._aggregation_field(field)
        # termsAggregation is the only bucket type; AWS defaults maxBuckets to 10.
        terms = params["bucketsAggregationType"].get("termsAggregation") or {}
        max_buckets = terms.get("maxBuckets", DEFAULT_MAX_BUCKETS)
        total, buckets = self._index.buckets(expr, field, max_buckets)
        return {"totalCount": total, "buckets": buckets}

    def list_things(self, params: Mapping[str, Any]) -> dict[str, Any]:
        attribute, wanted = params.get("attributeName"), params.get("attributeValue")
        prefix = bool(params.get("usePrefixAttributeValue"))
        thing_type = params.get("thingTypeName")

        def where(record: ThingRecord) -> bool:
            if thing_type is not None and record.type_name != thing_type:
                return False
            if attribute is None:
                return True
            value = record.attributes.get(attribute)
            if value is None:
                return False
            if wanted is None:
                return True
            return value.startswith(wanted) if prefix else value == wanted

        records = self._fleet.records(after=decode_token(params.get("nextToken")), where=where)
        page, token = _page(records, params.get("maxResults", DEFAULT_PAGE), lambda r: r.name)
        things = [
            {
                "thingName": r.name,
                "thingTypeName": r.type_name,
                "thingArn": r.arn,
                "attributes": dict(r.attributes),
                "version": r.version,
            }
            for r in page
        ]
        return {"things": things, "nextToken": token}

    def list_things_in_thing_group(self, params: Mapping[str, Any]) -> dict[str, Any]:
        group = params["thingGroupName"]
        if self._fleet.group(group) is None:
            raise ApiError("ResourceNotFoundException", f"Thing group {group} cannot be found.")
        wanted = {group}
        if params.get("recursive"):
            wanted.update(self._fleet.descendants(group))
        records = self._fleet.records(
            after=decode_token(params.get("nextToken")),
            where=lambda r: not wanted.isdisjoint(r.groups),
        )
        page, token = _page(records, params.get("maxResults", DEFAULT_PAGE), lambda r: r.name)
        return {"things": [r.name for r in page], "nextToken": token}

    def list_thing_groups(self, params: Mapping[str, Any]) -> dict[str, Any]:
        parent, prefix = params.get("parentGroup"), params.get("namePrefixFilter")
        groups = self._fleet.groups()
        if parent is not None:
            if self._fleet.group(parent) is None:
                raise ApiError(
                    "ResourceNotFoundException", f"Thing group {parent} cannot be found."
                )
            if params.get("recursive"):
                below = set(self._fleet.descendants(parent))
                groups = [g for g in groups if g.name in below]
            else:
                groups = [g for g in groups if g.parent == parent]
        if prefix is not None:
            groups = [g for g in groups if g.name.startswith(prefix)]
        after = decode_token(params.get("nextToken"))
        if after is not None:
            groups = [g for g in groups if g.name > after]
        page, token = _page(iter(groups), params.get("maxResults", DEFAULT_PAGE), lambda g: g.name)
        return {
            "thingGroups": [{"groupName": g.name, "groupArn": g.arn} for g in page],
            "nextToken": token,
        }

    def describe_thing_group(self, params: Mapping[str, Any]) -> dict[str, Any]:
        name = params["thingGroupName"]
        group = self._fleet.group(name)
        if group is None:
            raise ApiError("ResourceNotFoundException", f"Thing group {name} cannot be found.")
        metadata: dict[str, Any] = {"creationDate": group.created}
        if group.parent is not None:
            # A top-level group has neither key (moto's answer too: test_sim_vs_moto).
            metadata["parentGroupName"] = group.parent
            metadata["rootToParentThingGroups"] = [
                {"groupName": g.name, "groupArn": g.arn} for g in self._fleet.ancestors(name)
            ]
        return {
            "thingGroupName": group.name,
            "thingGroupId": group.group_id,
            "thingGroupArn": group.arn,
            "version": 1,
            "thingGroupProperties": {},
            "thingGroupMetadata": metadata,
        }

    def describe_thing(self, params: Mapping[str, Any]) -> dict[str, Any]:
        record = self._record(params["thingName"])
        return {
            "defaultClientId": record.name,
            "thingName": record.name,
            "thingId": record.thing_id,
            "thingArn": record.arn,
            "thingTypeName": record.type_name,
            "attributes": dict(record.attributes),
            "version": record.version,
        }

    def get_indexing_configuration(self, params: Mapping[str, Any]) -> dict[str, Any]:
        mode = "STATUS" if self._config.connectivity_indexing else "OFF"
        return {
            "thingIndexingConfiguration": {
                "thingIndexingMode": "REGISTRY",
                "thingConnectivityIndexingMode": mode,
            },
            "thingGroupIndexingConfiguration": {"thingGroupIndexingMode": "OFF"},
        }

    def describe_index(self, params: Mapping[str, Any]) -> dict[str, Any]:
        if params["indexName"] != THINGS_INDEX:
            raise ApiError(
                "ResourceNotFoundException", f"Index {params['indexName']} does not exist."
            )
        schema = (
            "REGISTRY_AND_CONNECTIVITY_STATUS" if self._config.connectivity_indexing else "REGISTRY"
        )
        return {"indexName": THINGS_INDEX, "indexStatus": "ACTIVE", "schema": schema}
