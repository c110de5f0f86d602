"""A table's writes held in memory until the batch they belong to is sent.

Every write to a Faust table is a changelog message (serialized, sent, stored by the broker,
read again at every recovery). The identity step rewrites the same keys many times within one
ingest batch (an account's record grows with each identifier it gains), so
it writes through a ``WriteBack``: reads see the pending values, and ``flush`` hands each key
to the table once, with the last value, under the source position of the batch's last
message. That is exact because a batch is acknowledged whole, after the flush: its writes
are never split by a commit.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

_DELETED: Any = object()


class WriteBack(MutableMapping[str, Any]):
    """A mapping over ``table`` whose writes wait for :meth:`flush` (or are dropped by :meth:`discard`)."""

    def __init__(self, table: MutableMapping[str, Any]) -> None:
        self.table = table
        self.pending: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        value = self.pending.get(key, self)
        if value is self:
            return self.table[key]
        if value is _DELETED:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self.pending.get(key, self)
        if value is self:
            return self.table.get(key, default)
        return default if value is _DELETED else value

    def __contains__(self, key: object) -> bool:
        value = self.pending.get(key, self)  # type: ignore[call-overload]
        if value is self:
            return key in self.table
        return value is not _DELETED

    def __setitem__(self, key: str, value: Any) -> None:
        self.pending[key] = value

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self.pending[key] = _DELETED

    def __iter__(self) -> Iterator[str]:
        for key in self.table:
            if key not in self.pending:
                yield key
        for key, value in self.pending.items():
            if value is not _DELETED:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def flush(self) -> int:
        """Write every pending key to the table once; returns how many were written."""
        pending, self.pending = self.pending, {}
        for key, value in pending.items():
            if value is _DELETED:
                self.table.pop(key, None)
            else:
                self.table[key] = value
        return len(pending)

    def discard(self) -> None:
        """Forget pending writes (their input will be read again after a rebalance)."""
        self.pending.clear()
