"""Event-time alignment across input partitions, decided by the data alone.

Kafka orders within a partition only, and each source has its own raw topic, so
a backfill of four vendors' histories arrives interleaved in fetch-sized chunks.
Fed to the stage engine in arrival order, an account would "start" at
closed-won because its Stripe subscription was read before its CRM history,
and two runs over the same input would disagree.

So the ingest step runs a deterministic k-way merge: each partition is a queue
kept in its own order; the next item out is the oldest *head* among the
partitions, ties broken by partition order. It may only be taken once every
partition either has a head or has been read to its end offset ("caught up",
offset-based idleness as in Quix Streams' ``InternalConsumerBuffer``). The
released sequence is therefore a function of each partition's content, never of
how fetches interleave or how long a source was quiet. Items leave each
partition in offset order, so acknowledgements are always in order and a
committed offset is an exact cut of the merged sequence.

Pure: the caller says which partitions are caught up.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

T = TypeVar("T")
P = TypeVar("P", bound=Hashable)

_EARLIEST = float("-inf")


@dataclass(slots=True)
class Item(Generic[T]):
    """One unit of the merge: an event (with its time) or a time-less item (a dead
    letter's bookkeeping) that leaves as soon as it reaches its queue's head."""

    at: datetime | None
    value: T
    key: float = field(init=False)   # ``at`` as a number, compared on every pop

    def __post_init__(self) -> None:
        self.key = self.at.timestamp() if self.at is not None else _EARLIEST


class SourceMerge(Generic[P, T]):
    def __init__(self, order: Callable[[P], tuple]) -> None:
        self._order = order                      # deterministic tie-break between partitions
        self._queues: dict[P, deque[Item[T]]] = {}

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def partitions(self) -> list[P]:
        return list(self._queues)

    def add_partition(self, partition: P) -> None:
        self._queues.setdefault(partition, deque())

    def drop_partition(self, partition: P) -> None:
        """Revoked: what was queued is re-read by the partition's next owner."""
        self._queues.pop(partition, None)

    def push(self, partition: P, item: Item[T]) -> None:
        self._queues.setdefault(partition, deque()).append(item)

    def pop_ready(self, caught_up: Callable[[P], bool]) -> Iterator[tuple[P, T]]:
        """Yield items in merged order while the next one is decided.

        Stops at the first partition that has nothing queued and is not caught up:
        its next record could be older than anything queued elsewhere."""
        queues = self._queues
        ordered = sorted(queues, key=self._order)
        while True:
            best: P | None = None
            best_key: float | None = None
            for partition in ordered:
                queue = queues[partition]
                if not queue:
                    if caught_up(partition):
                        continue
                    return
                key = queue[0].key
                if best_key is None or key < best_key:
                    best, best_key = partition, key
            if best is None:
                return
            yield best, queues[best].popleft().value
