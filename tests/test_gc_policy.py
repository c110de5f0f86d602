"""The worker's garbage-collection policy (pipeline.gc_policy): CPython never collects on its
own in a worker; the worker's timer does, on time or after many allocations."""

from __future__ import annotations

import gc
import subprocess
import sys

from pipeline.gc_policy import Collector


def test_a_worker_process_freezes_what_exists_and_leaves_collection_to_its_timer():
    code = ("import gc; from pipeline import gc_policy; gc_policy.for_worker(); "
            "print(gc.isenabled(), gc.get_freeze_count() > 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]


def test_the_collector_collects_once_its_interval_passed_or_objects_piled_up():
    now = [100.0]
    collector = Collector(every=60.0, after=10**9, clock=lambda: now[0])
    was = gc.isenabled()
    gc.disable()
    try:
        assert collector.tick() is None            # just started
        now[0] += 59.0
        assert collector.tick() is None
        now[0] += 1.0
        collections = gc.get_stats()[2]["collections"]
        assert collector.tick() is not None        # a minute: a full collection
        assert gc.get_stats()[2]["collections"] == collections + 1
        assert collector.tick() is None            # and the minute starts again
        piled = Collector(every=60.0, after=1_000, clock=lambda: now[0])
        keep = [[i] for i in range(5_000)]         # 5,000 containers allocated, none freed
        assert piled.tick() is not None and keep
    finally:
        if was:
            gc.enable()


def test_the_collector_stays_out_of_a_process_that_collects_on_its_own():
    now = [0.0]
    collector = Collector(every=1.0, after=1, clock=lambda: now[0])
    was = gc.isenabled()
    gc.enable()
    try:
        now[0] += 10.0
        assert collector.tick() is None
    finally:
        if not was:
            gc.disable()
