"""What /metrics serves: one rendering, plain and gzip-compressed, kept as parts."""

from __future__ import annotations

import gzip
from dataclasses import dataclass

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Payload:
    """One rendering of /metrics, plain and gzip-compressed, kept as parts.

    Parts let a scrape put the exporter's own freshly rendered families in front of the
    cached fleet bytes without copying 30 MB per scrape at 100,000 things: the server
    writes the parts one after another.
    """

    plain_parts: tuple[bytes, ...]
    gzip_parts: tuple[bytes, ...]

    @classmethod
    def of(cls, plain: bytes) -> Payload:
        return cls((plain,), (compress(plain),))

    def preceded_by(self, head: bytes) -> Payload:
        """This payload with `head` (a few live families) in front, compressing only `head`.

        Concatenated gzip members are one valid gzip stream (RFC 1952), which Prometheus's
        Go reader and every common client decompress as a whole.
        """
        return Payload((head, *self.plain_parts), (compress(head), *self.gzip_parts))

    @property
    def plain(self) -> bytes:
        return b"".join(self.plain_parts)

    @property
    def gzipped(self) -> bytes:
        return b"".join(self.gzip_parts)


def compress(data: bytes) -> bytes:
    """gzip at level 1: on exposition text it compresses as well as level 6, four times as fast.

    mtime=0 keeps the bytes identical for identical input (cacheable, testable).
    """
    return gzip.compress(data, compresslevel=1, mtime=0)
