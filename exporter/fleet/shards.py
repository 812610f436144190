"""Which shard watches which thing: the same answer in every process, with no coordination.

Shards split the fleet in the style of kube-state-metrics: `--shard=N --total-shards=M`,
each process owning a stable share. A thing the static list or a registry listing names
belongs to the shard its name hashes to (CRC-32, which every process computes alike,
unlike Python's salted `hash`). A thing read from the fleet index belongs to the shard
whose range of `thingId` prefixes holds its ID (a UUID, so the ranges split the fleet
evenly), which lets each shard read only its own pages. Pure logic.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

MAX_TOTAL_SHARDS = 256
# Where a StatefulSet's pod finds its shard when no --shard is given: the pod-index label
# Kubernetes 1.28+ sets (through the downward API), else the ordinal that ends its name.
SHARD_ENV = "IOT_EXPORTER_SHARD"
POD_NAME_ENV = "IOT_EXPORTER_POD_NAME"
_ORDINAL = re.compile(r"-(\d+)\Z")  # the StatefulSet ordinal ends the pod name
# thingId prefixes of two hex digits: 256 ranges, so any number of shards up to
# MAX_TOTAL_SHARDS gets a share within one prefix of even.
ID_PREFIXES = 256


class ShardError(ValueError):
    """--shard and --total-shards that name no shard."""


@dataclass(frozen=True, slots=True)
class Shard:
    """This process's shard: its ordinal (from 0) among `total`."""

    ordinal: int = 0
    total: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.total <= MAX_TOTAL_SHARDS:
            raise ShardError(
                f"--total-shards must be between 1 and {MAX_TOTAL_SHARDS}, got {self.total}"
            )
        if not 0 <= self.ordinal < self.total:
            raise ShardError(
                f"--shard must be between 0 and {self.total - 1} (--total-shards={self.total}"
                f" counts from 0), got {self.ordinal}"
            )

    @property
    def whole(self) -> bool:
        """One process owns every thing (the default)."""
        return self.total == 1

    def owns(self, name: str) -> bool:
        """Whether this shard watches the thing of that name (static list, live mode)."""
        return self.total == 1 or owner(name, self.total) == self.ordinal

    def id_prefixes(self) -> tuple[str, ...]:
        """The thingId prefixes this shard owns, as few as they can be written: a whole
        first hex digit where the range covers it, two digits elsewhere. () when whole."""
        if self.whole:
            return ()
        start = self.ordinal * ID_PREFIXES // self.total
        end = (self.ordinal + 1) * ID_PREFIXES // self.total
        prefixes: list[str] = []
        prefix = start
        while prefix < end:
            if prefix % 16 == 0 and prefix + 16 <= end:
                prefixes.append(f"{prefix // 16:x}")
                prefix += 16
            else:
                prefixes.append(f"{prefix:02x}")
                prefix += 1
        return tuple(prefixes)

    def share(self, budget: float) -> float:
        """This shard's part of an account-wide request budget."""
        return budget / self.total


def owner(name: str, total: int) -> int:
    """The shard, from 0, that owns the thing `name` among `total`."""
    return zlib.crc32(name.encode()) % total


def shard_from(flag: int | None, total: int, environ: Mapping[str, str]) -> Shard:
    """This process's shard: --shard if given, else the pod's index, else its name's ordinal.

    ShardError says what is missing or wrong; more than one shard without any of the three
    is an error, since every process would otherwise take shard 0.
    """
    if flag is not None:
        return Shard(flag, total)
    Shard(0, total)  # a --total-shards out of range says so before anything else
    index = environ.get(SHARD_ENV, "").strip()
    if index:
        if not (index.isascii() and index.isdigit()):
            raise ShardError(f"{SHARD_ENV}: expected a whole number, 0 or more, got {index!r}")
        return Shard(int(index), total)
    pod = environ.get(POD_NAME_ENV, "").strip()
    if pod:
        match = _ORDINAL.search(pod)
        if match is None:
            raise ShardError(
                f"{POD_NAME_ENV}: {pod!r} does not end in -N, as a StatefulSet pod's name does"
            )
        return Shard(int(match.group(1)), total)
    if total > 1:
        raise ShardError(
            f"--total-shards={total} needs this process's shard: --shard, or {SHARD_ENV} (the"
            f" pod's index), or {POD_NAME_ENV} (a StatefulSet pod's name)"
        )
    return Shard(0, total)
