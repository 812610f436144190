"""Admin HTTP endpoints under /_simulator/: fleet actions, ground truth, index, faults, clock."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from iot_simulator.aggregations import DEFAULT_MAX_BUCKETS
from iot_simulator.clock import ManualClock
from iot_simulator.faults import FaultConfig
from iot_simulator.model import UnknownGroupError, UnknownThingError
from iot_simulator.protocol import AwsError, Response, json_error

if TYPE_CHECKING:
    from iot_simulator.instance import Simulator


class AdminError(AwsError):
    """An admin endpoint's refusal."""

    status: int

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(code, message, status)


def _json(data: object, status: int = 200) -> Response:
    body = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return Response(status, (("Content-Type", "application/json"),), body)


def _body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise AdminError("SerializationException", "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise AdminError("SerializationException", "body must be a JSON object")
    return data


def _seconds(value: object, name: str) -> float:
    """A number of seconds from JSON; null means for ever (JSON has no infinity)."""
    if value is None:
        return math.inf
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AdminError("InvalidRequestException", f"{name} must be a number or null")
    return float(value)


def _finite_or_null(value: float) -> float | None:
    return None if math.isinf(value) else value


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return query.get(name, ["false"])[-1].lower() in ("1", "true", "yes")


def _number(query: dict[str, list[str]], name: str) -> float | None:
    values = query.get(name)
    if not values:
        return None
    try:
        return float(values[-1])
    except ValueError:
        raise AdminError("InvalidRequestException", f"{name} must be a number") from None


class Admin:
    """Answers /_simulator/<path>; no auth, quotas or faults apply here."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim

    def __call__(self, method: str, path: str, query: str, body: bytes) -> Response:
        try:
            return self._route(method, path.strip("/"), parse_qs(query), body)
        except AdminError as error:
            return json_error(error.code, error.message, error.status)
        except UnknownThingError as error:
            return json_error("ResourceNotFoundException", f"no thing {error.args[0]}", 404)
        except UnknownGroupError as error:
            return json_error("ResourceNotFoundException", f"no thing group {error.args[0]}", 404)
        except (ValueError, TypeError, KeyError) as error:
            return json_error("InvalidRequestException", str(error), 400)

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> Response:
        parts = [unquote(p) for p in path.split("/")] if path else []
        routes: dict[tuple[str, str], Callable[[], Response]] = {
            ("GET", "health"): lambda: _json({"status": "ok"}),
            ("GET", "config"): self._config,
            ("GET", "things"): self._things,
            ("GET", "ground-truth"): lambda: self._ground_truth(query),
            ("GET", "faults"): lambda: _json(self._sim.faults.current().to_json()),
            ("PUT", "faults"): lambda: self._put_faults(body),
            ("POST", "faults"): lambda: self._post_faults(body),
            ("PATCH", "faults"): lambda: self._post_faults(body),
            ("DELETE", "faults"): self._clear_faults,
            ("GET", "requests"): self._requests,
            ("DELETE", "requests"): self._reset_requests,
            ("GET", "quotas"): lambda: _json(self._sim.quotas.rates()),
            ("PUT", "quotas"): lambda: self._put_quotas(body),
            ("GET", "clock"): lambda: _json({"now": self._sim.clock.now()}),
            ("POST", "clock/advance"): lambda: self._advance(body),
            ("GET", "index"): self._index_settings,
            ("PUT", "index"): lambda: self._put_index(body),
            ("POST", "index/search"): lambda: self._index_search(body),
            ("POST", "index/statistics"): lambda: self._index_statistics(body),
            ("POST", "index/buckets"): lambda: self._index_buckets(body),
            ("GET", "groups"): self._groups,
            ("POST", "mass-outage"): lambda: self._mass_outage(body),
        }
        handler = routes.get((method, "/".join(parts)))
        if handler is not None:
            return handler()
        if len(parts) in (2, 3) and parts[0] == "things":
            return self._thing(method, parts[1], parts[2] if len(parts) == 3 else None, body)
        if len(parts) == 3 and parts[:2] == ["index", "things"] and method == "GET":
            return self._index_document(parts[2], query)
        if len(parts) >= 2 and parts[0] == "groups":
            return self._group(method, parts[1:], query, body)
        raise AdminError("UnknownOperationException", f"no admin endpoint {method} /{path}", 404)

    def _config(self) -> Response:
        data = dataclasses.asdict(self._sim.config)
        if data.get("credentials"):
            data["credentials"] = dict.fromkeys(data["credentials"], "***")
        data["rates"] = self._sim.config.effective_rates()
        data["url"] = self._sim.url
        return _json(data)

    def _things(self) -> Response:
        fleet = self._sim.fleet
        things = []
        for name in fleet.thing_names():
            try:
                state = fleet.state(name)
            except UnknownThingError:
                continue
            things.append({"thing_name": name, **state._asdict()})
        return _json({"things": things})

    def _thing(self, method: str, name: str, action: str | None, body: bytes) -> Response:
        fleet = self._sim.fleet
        if action is None and method == "GET":
            state = fleet.state(name)._asdict()
            return _json({"thing_name": name, **state, "client_id": fleet.client_id(name)})
        if action is None and method in ("POST", "PUT"):
            data = _body(body)
            fleet.create_thing(
                name,
                thing_type=data.get("thing_type"),
                groups=data.get("groups", ()),
                attributes=data.get("attributes"),
                never_connected=bool(data.get("never_connected", False)),
                client_id=data.get("client_id"),
            )
            return _json({"thing_name": name, **fleet.state(name)._asdict()}, 201)
        if action == "client-id" and method == "PUT":
            fleet.set_client_id(name, _body(body).get("client_id"))
            return _json({"thing_name": name, "client_id": fleet.client_id(name)})
        if action is None and method == "DELETE":
            fleet.delete_thing(name)
            return _json({"deleted": name})
        if action == "connect" and method == "POST":
            changed = fleet.connect(name)
            return _json({"changed": changed, **fleet.state(name)._asdict()})
        if action == "disconnect" and method == "POST":
            reason = _body(body).get("reason", "CONNECTION_LOST")
            changed = fleet.disconnect(name, reason=str(reason))
            return _json({"changed": changed, **fleet.state(name)._asdict()})
        raise AdminError(
            "UnknownOperationException", f"no admin endpoint {method} things/{name}/{action}", 404
        )

    # ----- fleet index ----------------------------------------------------------------------

    def _index_settings(self) -> Response:
        index = self._sim.index
        return _json(
            {
                "lag_seconds": index.lag_seconds,
                "disconnect_details_retention_seconds": _finite_or_null(
                    index.disconnect_details_retention_seconds
                ),
            }
        )

    def _put_index(self, body: bytes) -> Response:
        data = _body(body)
        unknown = set(data) - {"lag_seconds", "disconnect_details_retention_seconds"}
        if unknown:
            raise AdminError("InvalidRequestException", f"unknown index settings {sorted(unknown)}")
        lag = data.get("lag_seconds")
        if lag is not None:
            lag = _seconds(lag, "lag_seconds")
        retention = None
        if "disconnect_details_retention_seconds" in data:
            retention = _seconds(
                data["disconnect_details_retention_seconds"], "disconnect_details_retention_seconds"
            )
        self._sim.index.configure(lag_seconds=lag, disconnect_details_retention_seconds=retention)
        return self._index_settings()

    def _index_document(self, name: str, query: dict[str, list[str]]) -> Response:
        document = self._sim.index_truth.document(name, at=_number(query, "at"))
        if document is None:
            raise UnknownThingError(name)
        return _json(document)

    @staticmethod
    def _at(data: dict[str, Any]) -> float | None:
        at = data.get("at")
        return None if at is None else _seconds(at, "at")

    def _index_search(self, body: bytes) -> Response:
        data = _body(body)
        names = self._sim.index_truth.search(str(data.get("query", "*")), at=self._at(data))
        return _json({"things": names})

    def _index_statistics(self, body: bytes) -> Response:
        data = _body(body)
        field = data.get("field")
        statistics = self._sim.index_truth.statistics(
            str(data.get("query", "*")),
            None if field is None else str(field),
            at=self._at(data),
        )
        return _json({"statistics": statistics})

    def _index_buckets(self, body: bytes) -> Response:
        data = _body(body)
        if "field" not in data:
            raise AdminError("InvalidRequestException", "buckets need a field")
        answer = self._sim.index_truth.buckets(
            str(data.get("query", "*")),
            str(data["field"]),
            max_buckets=int(data.get("max_buckets", DEFAULT_MAX_BUCKETS)),
            at=self._at(data),
        )
        return _json(answer)

    # ----- thing groups ---------------------------------------------------------------------

    def _groups(self) -> Response:
        groups = [
            {"name": g.name, "parent": g.parent, "arn": g.arn} for g in self._sim.fleet.groups()
        ]
        return _json({"groups": groups})

    def _group(
        self, method: str, parts: list[str], query: dict[str, list[str]], body: bytes
    ) -> Response:
        fleet = self._sim.fleet
        group = parts[0]
        if len(parts) == 1 and method == "PUT":
            parent = _body(body).get("parent")
            created = fleet.create_group(group, None if parent is None else str(parent))
            return _json({"name": created.name, "parent": created.parent, "arn": created.arn}, 201)
        if len(parts) == 2 and parts[1] == "things" and method == "GET":
            members = fleet.members(group, recursive=_flag(query, "recursive"))
            return _json({"things": members})
        if len(parts) == 3 and parts[1] == "things" and method in ("PUT", "DELETE"):
            thing = parts[2]
            if method == "PUT":
                changed = fleet.add_to_group(thing, group)
            else:
                changed = fleet.remove_from_group(thing, group)
            return _json({"changed": changed, "groups": list(fleet.record(thing).groups)})
        raise AdminError(
            "UnknownOperationException", f"no admin endpoint {method} groups/{'/'.join(parts)}", 404
        )

    # ----- ground truth -------------------------------------------------------------------

    def _ground_truth(self, query: dict[str, list[str]]) -> Response:
        thing = query.get("thing", [None])[-1]
        events = self._sim.ground_truth(
            since=_number(query, "since"), until=_number(query, "until"), thing_name=thing
        )
        return _json({"events": [dataclasses.asdict(e) for e in events]})

    def _mass_outage(self, body: bytes) -> Response:
        data = _body(body)
        unknown = set(data) - {"fraction", "reason"}
        if unknown:
            raise AdminError(
                "InvalidRequestException", f"unknown mass-outage keys {sorted(unknown)}"
            )
        if "fraction" not in data:
            raise AdminError("InvalidRequestException", "a mass outage needs a fraction")
        reason = data.get("reason", "CONNECTION_LOST")
        names = self._sim.mass_outage(data["fraction"], reason=reason)
        return _json({"disconnected": len(names), "reason": reason})

    def _put_faults(self, body: bytes) -> Response:
        self._sim.faults.clear()
        return self._post_faults(body)

    def _post_faults(self, body: bytes) -> Response:
        config = self._sim.faults.set(**_body(body))
        return _json(config.to_json())

    def _clear_faults(self) -> Response:
        self._sim.faults.clear()
        return _json(FaultConfig().to_json())

    def _requests(self) -> Response:
        counts = [
            {"operation": op, "outcome": outcome, "count": n}
            for (op, outcome), n in sorted(self._sim.request_counts().items())
        ]
        return _json({"requests": counts, "access_keys": self._sim.access_key_counts()})

    def _reset_requests(self) -> Response:
        self._sim.reset_request_counts()
        return _json({"requests": [], "access_keys": {}})

    def _put_quotas(self, body: bytes) -> Response:
        rates = {str(k): (None if v is None else float(v)) for k, v in _body(body).items()}
        self._sim.quotas.set_rates(rates)
        return _json(self._sim.quotas.rates())

    def _advance(self, body: bytes) -> Response:
        clock = self._sim.clock
        if not isinstance(clock, ManualClock):
            raise AdminError(
                "InvalidRequestException", "the simulator runs on wall-clock time", 409
            )
        seconds = float(_body(body).get("seconds", 0))
        return _json({"now": clock.advance(seconds)})
