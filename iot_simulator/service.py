"""The request pipeline for AWS calls: route, authenticate, quota, faults, operation, respond."""

from __future__ import annotations

import json
import threading
import traceback
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import botocore.session
from botocore.model import OperationModel, StructureShape

from iot_simulator.config import SimulatorConfig
from iot_simulator.faults import Decision, Faults, Malformed, with_foreign_names
from iot_simulator.operations import OPERATIONS, IotApi
from iot_simulator.protocol import ApiError, HttpRequest, Response, RestJson
from iot_simulator.quotas import Quotas
from iot_simulator.sigv4 import AuthError, CredentialStore
from iot_simulator.sts import QUERY_CODES, Sts, StsError, error_xml

UNKNOWN_OPERATION = "Unknown"
_HTML_BAD_GATEWAY = (
    b"<html><head><title>502 Bad Gateway</title></head>"
    b"<body><center><h1>502 Bad Gateway</h1></center></body></html>"
)
_WRONG_TYPES: Mapping[str, object] = {
    "timestamp": "not-a-timestamp",
    "list": 7,
    "map": 7,
    "structure": "not-an-object",
    "boolean": "yes",
    "integer": "many",
    "long": "many",
    "string": {"not": "a string"},
}


@dataclass(frozen=True)
class Outcome:
    """How to answer: a response after ``delay`` seconds, or reset the connection."""

    response: Response | None
    delay: float = 0.0
    reset: bool = False


class RequestCounters:
    """Requests served per (operation, outcome) and per access key. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_outcome: Counter[tuple[str, str]] = Counter()
        self._by_key: Counter[str] = Counter()

    def add(self, operation: str, outcome: str, access_key: str | None = None) -> None:
        with self._lock:
            self._by_outcome[(operation, outcome)] += 1
            if access_key is not None:
                self._by_key[access_key] += 1

    def by_outcome(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._by_outcome)

    def by_access_key(self) -> dict[str, int]:
        with self._lock:
            return dict(self._by_key)

    def reset(self) -> None:
        with self._lock:
            self._by_outcome.clear()
            self._by_key.clear()


class Service:
    """Turns an HttpRequest for IoT or STS into an Outcome."""

    def __init__(
        self,
        *,
        config: SimulatorConfig,
        api: IotApi,
        faults: Faults,
        quotas: Quotas,
        credentials: CredentialStore,
        counters: RequestCounters,
    ) -> None:
        self._config = config
        self._api = api
        self._faults = faults
        self._quotas = quotas
        self._credentials = credentials
        self._counters = counters
        self._sts = Sts(config, credentials)
        self.protocol = RestJson(
            botocore.session.get_session().get_service_model("iot"), OPERATIONS
        )
        # Unexpected exceptions become InternalFailureException; kept so tests can assert none.
        self.internal_errors: list[str] = []
        self._errors_lock = threading.Lock()

    def handle(self, request: HttpRequest) -> Outcome:
        if request.method == "POST" and request.path == "/":
            return self._handle_sts(request)
        try:
            operation, uri_params = self.protocol.route(request.method, request.path)
        except ApiError as error:
            self._counters.add(UNKNOWN_OPERATION, error.code)
            return Outcome(self.protocol.error(error.code, error.message, error.status))
        name = operation.name
        try:
            auth = self._credentials.authenticate(
                request, region=self._config.region, service="iot"
            )
        except AuthError as error:
            self._counters.add(name, error.code)
            return Outcome(self.protocol.error(error.code, error.message, error.status))
        if not self._quotas.allow(name):
            self._counters.add(name, "ThrottlingException", auth.access_key)
            return Outcome(self.protocol.error("ThrottlingException", "Rate exceeded"))
        decision = self._faults.decide(name)
        return self._answer(operation, uri_params, request, decision, auth.access_key)

    def _answer(
        self,
        operation: OperationModel,
        uri_params: Mapping[str, str],
        request: HttpRequest,
        decision: Decision,
        access_key: str,
    ) -> Outcome:
        name = operation.name
        delay = decision.delay + decision.slow
        if decision.error is not None:
            self._counters.add(name, decision.error, access_key)
            message = f"Simulated {decision.error}"
            return Outcome(self.protocol.error(decision.error, message), delay)
        try:
            query = parse_qs(request.query, keep_blank_values=True) if request.query else {}
            params = self.protocol.parse_input(operation, uri_params, query, request.body)
            output = self._api.call(name, params)
            if decision.foreign_names:
                output = with_foreign_names(name, output, decision.foreign_names)
            body = self.protocol.serialize(operation, output)
        except ApiError as error:
            self._counters.add(name, error.code, access_key)
            return Outcome(self.protocol.error(error.code, error.message, error.status), delay)
        except Exception:  # any bug must still produce an AWS-style answer, never a dead socket
            with self._errors_lock:
                self.internal_errors.append(traceback.format_exc())
            self._counters.add(name, "InternalFailureException", access_key)
            return Outcome(
                self.protocol.error("InternalFailureException", "Internal failure"), delay
            )
        if decision.malformed is not None:
            self._counters.add(name, "malformed", access_key)
            return Outcome(self._malformed(operation, body, decision.malformed), delay)
        self._counters.add(name, "slow" if decision.slow else "ok", access_key)
        return Outcome(self.protocol.ok(body), delay)

    def _malformed(self, operation: OperationModel, body: bytes, kind: Malformed) -> Response:
        if kind == "html":
            return Response(502, (("Content-Type", "text/html"),), _HTML_BAD_GATEWAY)
        if kind == "truncated":
            return self.protocol.ok(body[: max(1, len(body) // 2)])
        shape = operation.output_shape
        members = shape.members if isinstance(shape, StructureShape) else {}
        wrong: dict[str, Any] = {
            m.serialization.get("name", n): _WRONG_TYPES.get(m.type_name, 7)
            for n, m in members.items()
        }
        return self.protocol.ok(json.dumps(wrong).encode())

    def _handle_sts(self, request: HttpRequest) -> Outcome:
        xml = (("Content-Type", "text/xml"),)
        try:
            form = {
                k: v[-1]
                for k, v in parse_qs(request.body.decode("utf-8"), keep_blank_values=True).items()
            }
        except UnicodeDecodeError:
            form = {}
        action = form.get("Action", UNKNOWN_OPERATION)
        try:
            self._credentials.authenticate(request, region=None, service="sts")
        except AuthError as error:
            code = QUERY_CODES.get(error.code, error.code)
            self._counters.add(action, code)
            return Outcome(Response(error.status, xml, error_xml(code, error.message)))
        try:
            body = self._sts.handle(form)
        except StsError as error:
            self._counters.add(action, error.code)
            return Outcome(Response(error.status, xml, error_xml(error.code, error.message)))
        self._counters.add(action, "ok")
        return Outcome(Response(200, xml, body))
