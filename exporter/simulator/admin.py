"""Admin HTTP endpoints under /_simulator/: fleet actions, ground truth, faults, counters, clock."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from exporter.simulator.clock import ManualClock
from exporter.simulator.faults import FaultConfig
from exporter.simulator.model import UnknownThingError
from exporter.simulator.protocol import AwsError, Response, json_error

if TYPE_CHECKING:
    from exporter.simulator.instance import Simulator


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
        }
        handler = routes.get((method, "/".join(parts)))
        if handler is not None:
            return handler()
        if len(parts) in (2, 3) and parts[0] == "things":
            return self._thing(method, parts[1], parts[2] if len(parts) == 3 else None, body)
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
            return _json({"thing_name": name, **fleet.state(name)._asdict()})
        if action is None and method in ("POST", "PUT"):
            data = _body(body)
            fleet.create_thing(
                name,
                thing_type=data.get("thing_type"),
                groups=data.get("groups", ()),
                attributes=data.get("attributes"),
                never_connected=bool(data.get("never_connected", False)),
            )
            return _json({"thing_name": name, **fleet.state(name)._asdict()}, 201)
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

    def _ground_truth(self, query: dict[str, list[str]]) -> Response:
        thing = query.get("thing", [None])[-1]
        events = self._sim.ground_truth(
            since=_number(query, "since"), until=_number(query, "until"), thing_name=thing
        )
        return _json({"events": [dataclasses.asdict(e) for e in events]})

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
