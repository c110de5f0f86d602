"""When CPython's cyclic garbage collector runs in the pipeline's long-lived processes.

A worker or a replay keeps hundreds of thousands of small objects alive (account states,
journals, identity maps, Faust's buffers), and every collection CPython starts on its own
scans all the container objects allocated since the last one, most of them still alive. A
replay collects far less often than the default (``relaxed_gc``). A worker never collects on
its own: nothing on its hot path makes cycles that must be freed early, so ``Collector``
collects on the worker's timer, once a minute or sooner after many allocations. In
``lifecycle bench`` that took the stream worker from 592 and 561 to 501 and 516 µs of CPU per
record (two runs each, alternated), for 10 MiB more peak RSS.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

THRESHOLDS = (100_000, 50, 100)
COLLECT_EVERY = 60.0         # seconds between a worker's own collections
COLLECT_AFTER = 5_000_000    # or sooner: container objects allocated, net of those freed


@contextmanager
def relaxed_gc() -> Iterator[None]:
    """Collect less often while replaying; the thresholds are restored afterwards."""
    before = gc.get_threshold()
    gc.set_threshold(*THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def for_worker() -> None:
    """A worker process, for its whole life: what exists at start (modules, the app) is frozen
    out of every collection, and CPython collects only when ``Collector`` says so."""
    gc.collect()
    gc.freeze()
    gc.disable()


class Collector:
    """The worker's own collections (call :meth:`tick` from a timer): a full collection once
    ``every`` seconds have passed or ``after`` objects have piled up since the last, whichever
    comes first. Does nothing while CPython collects on its own (a process that is not a
    worker, such as a test running an app in place)."""

    def __init__(self, every: float = COLLECT_EVERY, after: int = COLLECT_AFTER,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self.after = after
        self.clock = clock
        self.last = clock()

    def tick(self) -> float | None:
        """Collect if due; the seconds the collection took, else None."""
        if gc.isenabled() or (self.clock() - self.last < self.every and gc.get_count()[0] < self.after):
            return None
        started = time.perf_counter()
        gc.collect()
        self.last = self.clock()
        return time.perf_counter() - started
