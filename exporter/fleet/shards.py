"""Which shard watches which thing: the same answer in every process, with no coordination.

Shards split the fleet in the style of kube-state-metrics: `--shard=N --total-shards=M`,
each process owning a stable share. A thing the static list or a registry listing names
belongs to the shard its name hashes to (CRC-32, which every process computes alike,
unlike Python's salted `hash`). A thing read from the fleet index belongs to the shard
whose range of `thingId` prefixes holds its ID (a UUID, so the ranges split the fleet
evenly), which lets each shard read only its own pages. Pure logic.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

MAX_TOTAL_SHARDS = 256
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
