"""Strict YAML files: reading, loading with line numbers, and the error style config files share."""

import difflib
import json
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn, Self, TypeVar, get_args, get_origin

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError

M = TypeVar("M", bound=BaseModel)

ERROR_TYPE = "config"  # pydantic error type of every message written by our validators
_SHOW_MAX = 60


# --- YAML numbers as written ------------------------------------------------------------------


class _WrittenInt(int):
    """An int YAML 1.1 spelled unusually (010 is 8, 1:30 is 90), with its text."""

    text: str

    def __new__(cls, value: int, text: str) -> Self:
        number = super().__new__(cls, value)
        number.text = text
        return number


class _WrittenFloat(float):
    """A float whose YAML text differs from Python's repr (1.10, .inf), with its text."""

    text: str

    def __new__(cls, value: float, text: str) -> Self:
        number = super().__new__(cls, value)
        number.text = text
        return number


class _Loader(yaml.SafeLoader):
    """SafeLoader that remembers how numbers were written, so text fields can keep it."""


# libyaml's parser when PyYAML has it (its wheels do): ten times faster on a file of 100,000
# things, with the same nodes and values. Its error messages say less ("found character
# that cannot start any token" where the Python parser names the tab), so a file it
# refuses is parsed again by the Python loader for the message.
_FastLoader: type[yaml.SafeLoader] = (
    type("_FastLoader", (yaml.CSafeLoader,), {}) if hasattr(yaml, "CSafeLoader") else _Loader
)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    value: int = loader.construct_yaml_int(node)
    return value if node.value == str(value) else _WrittenInt(value, node.value)


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    value: float = loader.construct_yaml_float(node)
    return value if node.value == repr(value) else _WrittenFloat(value, node.value)


for _loader in (_Loader, _FastLoader):
    _loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
    _loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


def number_text(value: float) -> str:
    text = getattr(value, "text", None)
    return text if isinstance(text, str) else str(value)


def show(value: Any) -> str:
    """A value as the YAML author would recognise it, for error messages."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)  # null, true, false
    if isinstance(value, int | float):
        return number_text(value)
    if isinstance(value, str):
        shown = value if len(value) <= _SHOW_MAX else value[: _SHOW_MAX - 3] + "..."
        return json.dumps(shown, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"{value} (a {type(value).__name__})"


def fail(message: str) -> NoReturn:
    raise PydanticCustomError(ERROR_TYPE, "{message}", {"message": message})


def mapping_or_empty(what: str) -> BeforeValidator:
    """A mapping field that an all-commented-out YAML section (null) leaves empty."""

    def check(value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, dict):
            fail(f"expected a mapping of {what}, got {show(value)}")
        return value

    return BeforeValidator(check)


# --- the strict mapping ---------------------------------------------------------------------


class StrictSection(BaseModel):
    """A mapping in the file: frozen, and strict about its keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, data: Any) -> Any:
        if data is None:  # a section with everything under it commented out
            return {}
        if not isinstance(data, dict | cls):
            fail(f"expected a mapping, got {show(data)}")
        return data


class ListOfModels:
    """A field that holds a YAML list in a container of its own, rather than a tuple of models.

    ITEM_MODEL names the model one item stands for, so an error in item 3 reads as
    `field[3].key` and an unknown key there gets its "did you mean".
    """

    ITEM_MODEL: type[BaseModel]


# --- errors and loading ----------------------------------------------------------------------


class ConfigError(Exception):
    """Everything wrong with a config file, each error as "path: message"."""

    def __init__(self, errors: Iterable[str], path: str = "<config>") -> None:
        self.errors: tuple[str, ...] = tuple(errors)
        self.path = path
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(f"{self.path}: {error}" for error in self.errors)


_MERGE_TAG = "tag:yaml.org,2002:merge"
_LAST_SEGMENT_RE = re.compile(r"(?:\.[^.\[]*|\[[0-9]+\])$")
_UNPLACED = 1 << 62  # errors about keys absent from the file sort last


class Document:
    """A parsed YAML document, its duplicate keys, and where each path starts.

    The lines are found only when asked for (to place an error): a file of 100,000 things
    has 100,000 list items whose lines a valid file never needs.
    """

    def __init__(
        self, data: Any, root: yaml.Node | None, duplicates: list[tuple[int, str]]
    ) -> None:
        self.data = data
        self.duplicates = duplicates
        self._root = root
        self._lines: dict[str, int] | None = None

    @property
    def lines(self) -> dict[str, int]:
        if self._lines is None:
            self._lines = {}
            if self._root is not None:
                _walk(self._root, "", self._lines, set(), [])
        return self._lines


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        context = f" ({exc.context})" if exc.context else ""
        return (
            f"line {mark.line + 1}, column {mark.column + 1}: invalid YAML: {exc.problem}{context}"
        )
    return "invalid YAML: " + " ".join(str(exc).split())


def _walk(
    node: yaml.Node,
    path: str,
    lines: dict[str, int] | None,
    seen: set[int],
    duplicates: list[tuple[int, str]],
) -> None:
    """Find the keys given twice in one mapping; with `lines`, record where each path starts."""
    if id(node) in seen:  # aliases share nodes and may even loop
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            if lines is None and isinstance(item, yaml.ScalarNode):
                continue  # nothing below a scalar can be a duplicate key
            child = f"{path}[{index}]"
            if lines is not None:
                lines[child] = item.start_mark.line + 1
            _walk(item, child, lines, seen, duplicates)
    elif isinstance(node, yaml.MappingNode):
        first_line: dict[tuple[str, Any], int] = {}
        for key, value in node.value:
            child = f"{path}.{key.value}" if path else str(key.value)
            line = key.start_mark.line + 1
            # PyYAML lets the last of duplicate keys win, so errors point at that one.
            if lines is not None:
                lines[child] = line
            identity = (key.tag, key.value)
            if isinstance(key, yaml.ScalarNode) and key.tag != _MERGE_TAG:
                if identity in first_line:
                    message = f"duplicate key at line {line} (first at line {first_line[identity]})"
                    duplicates.append((line, f"{child}: {message}"))
                else:
                    first_line[identity] = line
            _walk(value, child, lines, seen, duplicates)


# What YAML 1.1 accepts in a stream; anything else (NUL, ESC, a form feed, a DOS Ctrl-Z)
# would stop the parser with an error that gives a byte position rather than a line.
_NOT_YAML_RE = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_CHARACTER_NAMES = {"\x00": "NUL", "\x1a": "Ctrl-Z", "\x1b": "ESC", "\x0c": "form feed"}


def _forbidden_character(text: str) -> str | None:
    """Where the first character YAML forbids is, and which it is, as an error line."""
    match = _NOT_YAML_RE.search(text)
    if match is None:
        return None
    line = text.count("\n", 0, match.start()) + 1
    column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
    char = match.group()
    name = _CHARACTER_NAMES.get(char, "control character" if ord(char) < 0xA0 else "character")
    return (
        f"line {line}, column {column}: invalid YAML: {name} U+{ord(char):04X} is not allowed"
        " in a YAML file; delete it (in a double-quoted string, write it as an escape"
        f" such as \\x{ord(char):02x})"
        if ord(char) <= 0xFF
        else f"line {line}, column {column}: invalid YAML: {name} U+{ord(char):04X}"
        " is not allowed in a YAML file; delete it"
    )


def load_yaml(text: str, path: str) -> Document:
    problem = _forbidden_character(text)
    if problem is not None:
        raise ConfigError([problem], path)
    try:
        return _load_with(_FastLoader, text)
    except yaml.YAMLError as fast_error:
        problem = _yaml_problem(fast_error)
        try:
            _load_with(_Loader, text)
        except yaml.YAMLError as exc:
            problem = _yaml_problem(exc)
        except RecursionError:
            problem = _TOO_DEEP
        raise ConfigError([problem], path) from fast_error
    except RecursionError as exc:
        raise ConfigError([_TOO_DEEP], path) from exc


_TOO_DEEP = "the YAML nests too deeply to be a config file"


def _load_with(loader_class: type[yaml.SafeLoader], text: str) -> Document:
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Document(None, None, [])
        # Walk the nodes before constructing: constructing applies merge keys (<<) in
        # place, which would make a merged-then-overridden key look like a duplicate.
        duplicates: list[tuple[int, str]] = []
        _walk(node, "", None, set(), duplicates)
        # The lines are found later, if at all, from the same nodes: merged keys then show
        # beside the mapping's own, which only ever moves an error to the merged line.
        return Document(loader.construct_document(node), node, duplicates)
    finally:
        loader.dispose()


def line_of(path: str, lines: dict[str, int]) -> int:
    """The line of path, or of its nearest ancestor in the file (a missing key has none)."""
    while path:
        if path in lines:
            return lines[path]
        parent = _LAST_SEGMENT_RE.sub("", path)
        path = "" if parent == path else parent  # a top-level key has no parent
    return _UNPLACED


def validate_document(
    model: type[M], document: Document, path: str, context: Mapping[str, Any] | None = None
) -> M:
    """The model from a loaded document; ConfigError lists every problem, in file order."""
    problems = list(document.duplicates)
    result: M | None = None
    try:
        result = model.model_validate(document.data, context=context)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            key, text = _describe(model, error)
            problems.append((line_of(key, document.lines), f"{key}: {text}"))
    if result is None or problems:
        # A stable sort keeps pydantic's order among errors on the same line.
        raise ConfigError([message for _, message in sorted(problems, key=lambda p: p[0])], path)
    return result


def _describe(root: type[BaseModel], error: ErrorDetails) -> tuple[str, str]:
    """The path and the wording of one pydantic error."""
    path, owner = _locate(root, error["loc"])
    kind = error["type"]
    if kind == ERROR_TYPE:
        return path, error["msg"]
    if kind in ("extra_forbidden", "invalid_key"):
        fields = owner.model_fields.items() if owner else ()
        known = [field.alias or name for name, field in fields]
        close = difflib.get_close_matches(str(error["loc"][-1]), known, n=1)
        return path, f'unknown key (did you mean "{close[0]}"?)' if close else "unknown key"
    if kind == "missing":
        return path, "required key is missing"
    # Every field has a validator with its own wording; this is a safety net.
    return path, f"invalid value {show(error['input'])}"


def _locate(
    root: type[BaseModel], loc: tuple[int | str, ...]
) -> tuple[str, type[BaseModel] | None]:
    """The path of a pydantic location as load_yaml spells it, and the model owning its last key."""
    path = ""
    shape: Any = root
    owner: type[BaseModel] | None = None
    for part in loc:
        if part == "[key]":  # pydantic's marker for an error in a dict key, not its value
            continue
        if isinstance(part, int) and get_origin(shape) in (tuple, list):
            path += f"[{part}]"
            shape = get_args(shape)[0]
            continue
        if isinstance(part, int) and hasattr(shape, "ITEM_MODEL"):
            # A list field kept in a container of its own (see ListOfModels).
            path += f"[{part}]"
            shape = shape.ITEM_MODEL
            continue
        path += f".{part}" if path else str(part)
        owner = _model_in(shape)
        field = _field(owner, str(part)) if owner else None
        shape = field.annotation if field else None
    return path, owner


def _model_in(shape: Any) -> type[BaseModel] | None:
    """The model a field holds, directly or as `Model | None`."""
    for candidate in (shape, *get_args(shape)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _field(model: type[BaseModel], key: str) -> FieldInfo | None:
    fields = model.model_fields
    return fields.get(key) or next((f for f in fields.values() if f.alias == key), None)


def read_config_text(path: str | os.PathLike[str]) -> tuple[str, str]:
    """A config file's text and its name for messages; ConfigError if it cannot be read."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as file:
            return file.read(), name
    except OSError as exc:
        raise ConfigError([f"cannot read the file: {exc.strerror or exc}"], name) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"not UTF-8 text (byte {exc.start}: {exc.reason})"], name) from exc
