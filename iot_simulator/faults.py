"""Fault injection: latency, modelled errors, outages, slow and malformed responses."""

from __future__ import annotations

import dataclasses
import random
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

Outage = Literal["refuse", "reset"]
Malformed = Literal["truncated", "wrong_types", "html"]
OUTAGES: tuple[Outage, ...] = ("refuse", "reset")
MALFORMED: tuple[Malformed, ...] = ("truncated", "wrong_types", "html")


@dataclass(frozen=True, kw_only=True)
class FaultConfig:
    """The faults in force. Rates are probabilities per request, in [0, 1].

    - ``latency``/``jitter``: seconds added to every response (jitter uniform in [0, jitter]).
    - ``error_rates``: error code -> probability, e.g. {"ThrottlingException": 0.1}; the
      status comes from botocore's model.
    - ``outage``: "refuse" closes the listening socket (connection refused);
      "reset" resets every connection when its request arrives. ``outage_seconds``, if
      set, ends the outage by itself after that long (handy from the CLI: while refusing,
      the admin endpoints cannot be reached either).
    - ``slow_rate``/``slow_seconds``: that share of responses waits ``slow_seconds`` first,
      to outlast a client's read timeout.
    - ``malformed_rate``/``malformed``: that share of responses has a broken body.
    - ``foreign_names``: names no AWS account could hold (a quote, a backslash, a newline),
      added to every page of ListThings, ListThingsInThingGroup and SearchIndex, as a
      faulty proxy or a future API might return them; a client must refuse them.
    - ``operations``: if set, faults hit only these operations.
    """

    latency: float = 0.0
    jitter: float = 0.0
    error_rates: Mapping[str, float] = field(default_factory=dict)
    outage: Outage | None = None
    outage_seconds: float | None = None
    slow_rate: float = 0.0
    slow_seconds: float = 0.0
    malformed_rate: float = 0.0
    malformed: Malformed = "truncated"
    foreign_names: tuple[str, ...] = ()
    operations: frozenset[str] | None = None

    def __post_init__(self) -> None:
        problems = []
        for name in ("latency", "jitter", "slow_seconds", "outage_seconds"):
            if (getattr(self, name) or 0) < 0:
                problems.append(f"{name} must be >= 0")
        rates = {"slow_rate": self.slow_rate, "malformed_rate": self.malformed_rate}
        rates.update({f"error_rates[{k}]": v for k, v in self.error_rates.items()})
        problems.extend(f"{k} must be within [0, 1]" for k, v in rates.items() if not 0 <= v <= 1)
        if sum(self.error_rates.values()) > 1:
            problems.append("error rates must add up to at most 1")
        if self.outage is not None and self.outage not in OUTAGES:
            problems.append(f"outage must be one of {OUTAGES}")
        if self.malformed not in MALFORMED:
            problems.append(f"malformed must be one of {MALFORMED}")
        if not all(isinstance(name, str) and name for name in self.foreign_names):
            problems.append("foreign_names must be non-empty strings")
        if problems:
            raise ValueError("; ".join(problems))

    def to_json(self) -> dict[str, object]:
        data = dataclasses.asdict(self)
        data["error_rates"] = dict(self.error_rates)
        data["operations"] = sorted(self.operations) if self.operations is not None else None
        data["foreign_names"] = list(self.foreign_names)
        return data


@dataclass(frozen=True)
class Decision:
    """What to do to one request."""

    delay: float = 0.0
    error: str | None = None
    slow: float = 0.0
    malformed: Malformed | None = None
    foreign_names: tuple[str, ...] = ()


NO_FAULT = Decision()
# The answers that list things, by operation: how each carries one thing.
LISTINGS = ("ListThings", "ListThingsInThingGroup", "SearchIndex")


def decide(config: FaultConfig, operation: str, rng: random.Random) -> Decision:
    """Draw the faults for one request of ``operation`` (pure but for ``rng``)."""
    if config.operations is not None and operation not in config.operations:
        return NO_FAULT
    delay = config.latency + (rng.uniform(0.0, config.jitter) if config.jitter else 0.0)
    error = None
    if config.error_rates:
        pick = rng.random()
        for code, rate in config.error_rates.items():
            if pick < rate:
                error = code
                break
            pick -= rate
    slow = config.slow_seconds if config.slow_rate and rng.random() < config.slow_rate else 0.0
    malformed = (
        config.malformed if config.malformed_rate and rng.random() < config.malformed_rate else None
    )
    foreign = config.foreign_names if operation in LISTINGS else ()
    return Decision(delay=delay, error=error, slow=slow, malformed=malformed, foreign_names=foreign)


def with_foreign_names(
    operation: str, output: dict[str, object], names: Iterable[str]
) -> dict[str, object]:
    """A listing's answer with `names` added, each shaped as the operation lists a thing
    (a connected thing in SearchIndex, so a client that forgot its checks would show it)."""
    entries: list[object]
    if operation == "ListThingsInThingGroup":
        entries = list(names)
    elif operation == "ListThings":
        entries = [{"thingName": name, "attributes": {}, "version": 1} for name in names]
    else:
        entries = [{"thingName": name, "connectivity": {"connected": True}} for name in names]
    things = output.get("things")
    return {**output, "things": [*(things if isinstance(things, list) else []), *entries]}


def _coerce(changes: Mapping[str, object]) -> dict[str, object]:
    known = {f.name for f in dataclasses.fields(FaultConfig)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValueError(f"unknown fault settings {unknown}; known: {sorted(known)}")
    out = dict(changes)
    operations = out.get("operations")
    if operations is not None and not isinstance(operations, frozenset):
        out["operations"] = frozenset(operations)  # type: ignore[call-overload]
    if "error_rates" in out:
        out["error_rates"] = dict(out["error_rates"])  # type: ignore[call-overload]
    names = out.get("foreign_names")
    if isinstance(names, list | tuple):
        out["foreign_names"] = tuple(names)
    return out


class Faults:
    """The simulator's current faults; change them at any time from any thread."""

    def __init__(self, seed: int = 0, initial: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._config = initial or FaultConfig()
        self._active = self._config != _NONE
        # Separate from the fleet's generators, so faults never change the fleet's history.
        self._rng = random.Random(f"{seed}:faults")
        self._listeners: list[Callable[[FaultConfig], None]] = []

    def current(self) -> FaultConfig:
        with self._lock:
            return self._config

    def set(self, **changes: object) -> FaultConfig:
        """Change the given settings, keep the others (see FaultConfig for each)."""
        with self._lock:
            config = dataclasses.replace(self._config, **_coerce(changes))  # type: ignore[arg-type]
            self._config, self._active = config, config != _NONE
        self._notify(config)
        return config

    def replace(self, config: FaultConfig) -> None:
        with self._lock:
            self._config, self._active = config, config != _NONE
        self._notify(config)

    def clear(self) -> None:
        """No faults at all."""
        self.replace(FaultConfig())

    def decide(self, operation: str) -> Decision:
        if not self._active:  # the common case, checked without the lock
            return NO_FAULT
        with self._lock:
            return decide(self._config, operation, self._rng)

    def on_change(self, listener: Callable[[FaultConfig], None]) -> None:
        self._listeners.append(listener)

    def _notify(self, config: FaultConfig) -> None:
        for listener in list(self._listeners):
            listener(config)


def parse_assignments(items: Iterable[str], what: str) -> dict[str, float]:
    """Parse ``NAME=NUMBER`` strings (from the CLI or admin API)."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            out[name] = float(value)
        except ValueError:
            raise ValueError(f"{what} must look like NAME=NUMBER, got {item!r}") from None
    return out


_NONE = FaultConfig()
