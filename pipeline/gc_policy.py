"""How often CPython's cyclic garbage collector runs in the pipeline's long-lived processes.

A worker or a replay keeps hundreds of thousands of small objects alive (account states,
journals, identity maps, Faust's buffers), and CPython's default gen-0 threshold (700
allocations) rescans them so often that it costs about a third of a replay's time. Nothing
on the hot path makes cycles that must be freed early, so both collect far less often.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

THRESHOLDS = (100_000, 50, 100)


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
    out of every collection, and collections are rarer."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
