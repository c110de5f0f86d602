"""The SLA clock: an event-time watermark per partition that falls back to the wall clock.

Live and backfilled history must produce the same breaches, so deadlines are
judged against *event time*: a partition's watermark is the newest event time
it has processed, minus the allowed lateness. A partition that has been idle for
``idle_seconds`` (quiet live traffic, or the end of a backfill) follows the wall
clock instead, so a deadline that passes with no event at all still fires. The
worker's clock is the minimum over the partitions it owns: no account is judged
ahead of its own partition's events.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone


class WatermarkClock:
    def __init__(self, idle_seconds: float, lateness_seconds: float = 0.0,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.idle_seconds = idle_seconds
        self.lateness = timedelta(seconds=lateness_seconds)
        self._monotonic = monotonic
        self._wall = wall
        self._event_time: dict[int, datetime] = {}
        self._last_seen: dict[int, float] = {}
        self._assigned: set[int] = set()

    def assign(self, partitions: Iterable[int]) -> None:
        """Partitions this worker now owns; newly owned ones start idle-timed from now."""
        now = self._monotonic()
        self._assigned = set(partitions)
        for p in self._assigned:
            self._last_seen.setdefault(p, now)

    def observe(self, partition: int, event_time: datetime) -> None:
        self._assigned.add(partition)
        self._last_seen[partition] = self._monotonic()
        current = self._event_time.get(partition)
        if current is None or event_time > current:
            self._event_time[partition] = event_time

    def partition_now(self, partition: int) -> datetime | None:
        wall = self._wall()
        last_seen = self._last_seen.get(partition)
        if last_seen is None or self._monotonic() - last_seen >= self.idle_seconds:
            return wall - self.lateness
        event_time = self._event_time.get(partition)
        return None if event_time is None else min(event_time - self.lateness, wall)

    def now(self) -> datetime | None:
        """The worker's clock, or None while some owned partition has no reading yet."""
        readings = [self.partition_now(p) for p in self._assigned]
        if not readings or any(r is None for r in readings):
            return None
        return min(r for r in readings if r is not None)
