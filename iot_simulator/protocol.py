"""AWS IoT's REST-JSON wire format, derived from botocore's model: routes, input, output, errors."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from botocore.model import (
    ListShape,
    OperationModel,
    ServiceModel,
    Shape,
    StringShape,
    StructureShape,
)

# Errors AWS's front door answers before any operation runs; they are not in the iot model.
FRONT_DOOR_STATUS: Mapping[str, int] = {
    "MissingAuthenticationTokenException": 403,
    "UnrecognizedClientException": 403,
    "InvalidSignatureException": 403,
    "IncompleteSignatureException": 400,
    "ExpiredTokenException": 403,
    "UnknownOperationException": 404,
    "SerializationException": 400,
    "RequestEntityTooLargeException": 413,
    "InvalidRequestException": 400,
    "InternalFailureException": 500,
}


_NUMBER = "Member must be a number"
_BOOLEAN = "Member must be a boolean"
_PY_TYPES: Mapping[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "long": (int,),
    "boolean": (bool,),
    "structure": (dict,),
    "list": (list,),
    "map": (dict,),
    "double": (int, float),
    "float": (int, float),
}


class AwsError(Exception):
    """An AWS-style error answer: its code, a message, and the HTTP status."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


class ApiError(AwsError):
    """An IoT operation's error; with no status, the code's modelled status applies."""


@dataclass(frozen=True)
class Route:
    """One operation's HTTP method and path template, compiled."""

    operation: OperationModel
    method: str
    pattern: re.Pattern[str]
    literal_length: int  # longer literal paths win, as with AWS's router


@dataclass(frozen=True)
class HttpRequest:
    """One request as read off the wire, which is also what a SigV4 signature covers."""

    method: str
    path: str  # raw, still percent-encoded
    query: str  # raw
    headers: Mapping[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True)
class Response:
    """A complete HTTP response."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def json_error(code: str, message: str, status: int) -> Response:
    """An AWS REST-JSON error: x-amzn-ErrorType header, ``{"message": ...}`` body."""
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    return Response(
        status=status,
        headers=(("x-amzn-ErrorType", code), ("Content-Type", "application/json")),
        body=body,
    )


def _compile(uri: str) -> tuple[re.Pattern[str], int]:
    path = uri.split("?", 1)[0]
    regex, literal = [], 0
    for part in re.split(r"(\{[^}]+\})", path):
        if part.startswith("{"):
            name = part[1:-1]
            if name.endswith("+"):
                regex.append(f"(?P<{name[:-1]}>.+)")
            else:
                regex.append(f"(?P<{name}>[^/]+)")
        else:
            regex.append(re.escape(part))
            literal += len(part)
    return re.compile("".join(regex)), literal


class RestJson:
    """Routing and (de)serialisation for the operations the simulator implements."""

    def __init__(self, model: ServiceModel, operations: Iterable[str]) -> None:
        self.model = model
        self._routes: list[Route] = []
        for name in operations:
            op = model.operation_model(name)
            pattern, literal = _compile(op.http["requestUri"])
            self._routes.append(Route(op, op.http["method"], pattern, literal))
        self._routes.sort(key=lambda r: -r.literal_length)
        self._status: dict[str, int] = dict(FRONT_DOOR_STATUS)
        for shape_name in model.shape_names:
            shape = model.shape_for(shape_name)
            if shape.metadata.get("exception"):
                self._status[shape_name] = int(shape.metadata["error"]["httpStatusCode"])
        self._patterns: dict[str, re.Pattern[str] | None] = {}

    # ----- requests -----------------------------------------------------------------------

    def route(self, method: str, path: str) -> tuple[OperationModel, dict[str, str]]:
        """Find the operation for ``method path``; raise ApiError if none."""
        path_matched = False
        for route in self._routes:
            match = route.pattern.fullmatch(path)
            if match is None:
                continue
            path_matched = True
            if route.method == method:
                return route.operation, {k: unquote(v) for k, v in match.groupdict().items()}
        if path_matched:
            raise ApiError("UnknownOperationException", f"No operation for {method} {path}", 405)
        raise ApiError("UnknownOperationException", f"No operation for {method} {path}")

    def parse_input(
        self,
        operation: OperationModel,
        uri_params: Mapping[str, str],
        query: Mapping[str, list[str]],
        body: bytes,
    ) -> dict[str, Any]:
        """Build the operation's input from path, query string and JSON body, then validate."""
        shape = operation.input_shape
        if shape is None:
            return {}
        body_doc = self._body_document(shape, body)
        errors: list[str] = []
        values: dict[str, Any] = {}
        for name, member in shape.members.items():
            raw = self._member_value(
                name,
                member=member,
                uri_params=uri_params,
                query=query,
                body_doc=body_doc,
                errors=errors,
            )
            if raw is not None:
                values[name] = raw
        errors.extend(
            f"Value null at '{name}' failed to satisfy constraint: Member must not be null"
            for name in shape.required_members
            if name not in values
        )
        if not errors:
            self._validate(shape, values, "", errors)
        if errors:
            noun = "error" if len(errors) == 1 else "errors"
            raise ApiError(
                "InvalidRequestException",
                f"{len(errors)} validation {noun} detected: " + "; ".join(errors),
            )
        return values

    @staticmethod
    def _body_document(shape: StructureShape, body: bytes) -> Mapping[str, Any]:
        in_body = any(not m.serialization.get("location") for m in shape.members.values())
        if not in_body or not body.strip():
            return {}
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise ApiError("SerializationException", "The request body is not valid JSON") from None
        if not isinstance(parsed, dict):
            raise ApiError("SerializationException", "The request body must be a JSON object")
        return parsed

    def _member_value(
        self,
        name: str,
        *,
        member: Shape,
        uri_params: Mapping[str, str],
        query: Mapping[str, list[str]],
        body_doc: Mapping[str, Any],
        errors: list[str],
    ) -> Any:
        location = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if location == "uri":
            return uri_params.get(wire)
        if location == "querystring":
            found = query.get(wire)
            if not found:
                return None
            if member.type_name == "list":
                return found
            return self._from_text(member, found[-1], name, errors)
        if location is None:
            return body_doc.get(wire)
        return None

    def _from_text(self, shape: Shape, text: str, name: str, errors: list[str]) -> Any:
        if shape.type_name in ("integer", "long"):
            try:
                return int(text)
            except ValueError:
                errors.append(f"Value '{text}' at '{name}' failed to satisfy constraint: {_NUMBER}")
                return None
        if shape.type_name == "boolean":
            if text in ("true", "false"):
                return text == "true"
            errors.append(f"Value '{text}' at '{name}' failed to satisfy constraint: {_BOOLEAN}")
            return None
        return text

    def _pattern(self, shape: Shape) -> re.Pattern[str] | None:
        text = shape.metadata.get("pattern")
        if text is None:
            return None
        if text not in self._patterns:
            try:
                self._patterns[text] = re.compile(text)
            except re.error:
                self._patterns[text] = None
        return self._patterns[text]

    def _validate(self, shape: Shape, value: Any, path: str, errors: list[str]) -> None:
        kind = shape.type_name
        where = path or shape.name
        expected = _PY_TYPES.get(kind)
        wrong_int = kind in ("integer", "long") and isinstance(value, bool)
        if expected is not None and (not isinstance(value, expected) or wrong_int):
            errors.append(
                f"Value at '{where}' failed to satisfy constraint: Member must be of type {kind}"
            )
        elif kind == "string":
            self._validate_string(shape, value, where, errors)
        elif kind in ("integer", "long"):
            self._validate_number(shape, value, where, errors)
        elif isinstance(shape, StructureShape):
            for name, member in shape.members.items():
                if value.get(name) is not None:
                    self._validate(member, value[name], f"{path}.{name}" if path else name, errors)
        elif isinstance(shape, ListShape):
            for i, item in enumerate(value):
                self._validate(shape.member, item, f"{where}.{i + 1}.member", errors)

    def _validate_string(self, shape: Shape, value: str, where: str, errors: list[str]) -> None:
        meta = shape.metadata
        prefix = f"Value '{value[:200]}' at '{where}' failed to satisfy constraint: Member must"
        if "min" in meta and len(value) < meta["min"]:
            errors.append(f"{prefix} have length greater than or equal to {meta['min']}")
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{prefix} have length less than or equal to {meta['max']}")
        pattern = self._pattern(shape)
        if pattern is not None and not pattern.fullmatch(value):
            errors.append(f"{prefix} satisfy regular expression pattern: {meta['pattern']}")
        enum = shape.enum if isinstance(shape, StringShape) else []
        if enum and value not in enum:
            errors.append(f"{prefix} satisfy enum value set: {list(enum)}")

    @staticmethod
    def _validate_number(shape: Shape, value: int, where: str, errors: list[str]) -> None:
        meta = shape.metadata
        prefix = f"Value '{value}' at '{where}' failed to satisfy constraint: Member must"
        if "min" in meta and value < meta["min"]:
            errors.append(f"{prefix} have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            errors.append(f"{prefix} have value less than or equal to {meta['max']}")

    # ----- responses ----------------------------------------------------------------------

    def serialize(self, operation: OperationModel, data: Mapping[str, Any]) -> bytes:
        """Render the output; a key the model does not know is a simulator bug (KeyError)."""
        shape = operation.output_shape
        if shape is None:
            return b"{}"
        return json.dumps(self._to_wire(shape, data), separators=(",", ":")).encode()

    def _to_wire(self, shape: Shape, value: Any) -> Any:
        kind = shape.type_name
        if kind == "structure":
            members = shape.members  # type: ignore[attr-defined]
            out = {}
            for key, item in value.items():
                if item is None:
                    continue
                member = members.get(key)
                if member is None:
                    raise KeyError(f"{shape.name} has no member {key!r}")
                out[member.serialization.get("name", key)] = self._to_wire(member, item)
            return out
        if kind == "list":
            member = shape.member  # type: ignore[attr-defined]
            return [self._to_wire(member, item) for item in value]
        if kind == "map":
            value_shape = shape.value  # type: ignore[attr-defined]
            return {k: self._to_wire(value_shape, v) for k, v in value.items()}
        if kind == "timestamp":
            # rest-json's default timestampFormat is unixTimestamp: epoch seconds as a number.
            return round(float(value), 3)
        return value

    def status_of(self, code: str) -> int:
        return self._status.get(code, 400)

    def error(self, code: str, message: str, status: int | None = None) -> Response:
        """json_error with the code's modelled status unless ``status`` is given."""
        return json_error(code, message, status or self.status_of(code))

    def ok(self, body: bytes) -> Response:
        return Response(200, (("Content-Type", "application/json"),), body)
