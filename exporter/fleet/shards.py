"""Which shard watches which thing: the same answer in every process, with no coordination.

Shards split the fleet in the style of kube-state-metrics: `--shard=N --total-shards=M`,
each process owning a stable share. A thing the static list or a live-mode source names
belongs to the shard its name hashes to (CRC-32, which every process computes alike,
unlike Python's salted `hash`). Pure logic.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

MAX_TOTAL_SHARDS = 256


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

    def share(self, budget: float) -> float:
        """This shard's part of an account-wide request budget."""
        return budget / self.total


def owner(name: str, total: int) -> int:
    """The shard, from 0, that owns the thing `name` among `total`."""
    return zlib.crc32(name.encode()) % total
