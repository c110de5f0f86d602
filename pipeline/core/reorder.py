"""Event-time alignment across sources: release events in event-time order.

Kafka orders within a partition only, and each source has its own raw topic,
so a backfill of four vendors' histories arrives interleaved in fetch-sized
chunks: months of CRM, then months of billing. Fed to the stage engine in that
order, an account would "start" at closed-won because its Stripe subscription
was read before its CRM history.

So the ingest step holds parsed events in a small heap and releases an event
only once every *active* source has shown an event at least as new (the
classic watermark alignment of multi-input stream processors). A source that
has been quiet for ``idle_seconds`` stops holding the others back, so live
traffic is delayed by at most that much; a full buffer releases its oldest.
Pure: the caller supplies the clock.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Generic, TypeVar

T = TypeVar("T")


class ReorderBuffer(Generic[T]):
    def __init__(self, sources: Iterable[str], idle_seconds: float, max_items: int = 100_000,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.idle_seconds = idle_seconds
        self.max_items = max_items
        self._monotonic = monotonic
        started = monotonic()
        self._sources = list(sources)
        self._watermark: dict[str, datetime | None] = {s: None for s in self._sources}
        self._last_seen: dict[str, float] = {s: started for s in self._sources}
        self._heap: list[tuple[datetime, int, T]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, source: str, occurred_at: datetime, item: T) -> None:
        if source not in self._watermark:
            self._sources.append(source)
            self._watermark[source] = None
        self._last_seen[source] = self._monotonic()
        current = self._watermark[source]
        if current is None or occurred_at > current:
            self._watermark[source] = occurred_at
        heapq.heappush(self._heap, (occurred_at, next(self._seq), item))

    def bound(self) -> datetime | None:
        """Events at or before this time may go; None: nothing may (an active source has shown nothing)."""
        now = self._monotonic()
        marks = []
        for s in self._sources:
            if now - self._last_seen[s] >= self.idle_seconds:
                continue  # quiet: does not hold the others back
            mark = self._watermark[s]
            if mark is None:
                return None
            marks.append(mark)
        if not marks:  # every source quiet: release all
            return max((t for t, _, _ in self._heap), default=None)
        return min(marks)

    def pop_ready(self) -> list[T]:
        """Everything releasable now, oldest first."""
        out: list[T] = []
        while len(self._heap) > self.max_items:
            out.append(heapq.heappop(self._heap)[2])
        if not self._heap:
            return out
        limit = self.bound()
        if limit is None:
            return out
        while self._heap and self._heap[0][0] <= limit:
            out.append(heapq.heappop(self._heap)[2])
        return out
