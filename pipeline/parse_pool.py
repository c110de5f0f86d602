"""Parsing in a child process, so a worker's parse and its accounts run on two cores.

A stream worker's event loop runs every agent on one thread, and one thread is one core.
Parsing (``pipeline.ingest.parse_to_wire``: a raw message's records → their canonical events,
encoded) is stateless and takes about a third of that thread in ``lifecycle bench``. Here it
runs in a child process while the loop goes on with the merge and the accounts. The parse
agent keeps a few messages in flight and sends their results in raw-offset order, so the
output does not depend on where the parse ran.

``LIFECYCLE_PARSE_PROCESSES=0`` parses on the event loop instead, with the same function. The
child is started with ``spawn`` (the worker has threads, so it must not fork), warmed up
while the worker recovers its tables, and dies with its parent (``PR_SET_PDEATHSIG``). A
child that dies is replaced once, however many parses were in flight; each of those is parsed
on the loop, so nothing is lost or reordered. A child that dies before its first parse is not
replaced: the worker parses on its loop from then on."""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from pipeline import gc_policy, metrics
from pipeline.broker import die_with_parent
from pipeline.core.identity import UsableIdentifiers
from pipeline.ingest import ParsedWire, parse_to_wire
from pipeline.journey import IdentityConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ParseOptions:
    """What parsing depends on besides the message (the same in the worker and its child)."""

    identity: IdentityConfig
    accept_test_mode: bool
    future_skew: timedelta


@dataclass(frozen=True)
class RawMessage:
    """A raw message and where it was read: all a parse needs, picklable."""

    value: bytes
    topic: str
    partition: int
    offset: int
    highwater: int
    after: int | None
    now: datetime


class _Parser:
    """``parse_to_wire`` under fixed options, with the CPU it took."""

    def __init__(self, options: ParseOptions) -> None:
        self.options = options
        self.usable = UsableIdentifiers(options.identity)

    def __call__(self, m: RawMessage) -> ParsedWire:
        started = time.thread_time()
        o = self.options
        wire = parse_to_wire(m.value, m.topic, m.partition, m.offset, m.highwater, m.after, now=m.now,
                             accept_test_mode=o.accept_test_mode, future_skew=o.future_skew, usable=self.usable)
        return replace(wire, cpu=time.thread_time() - started)


_child: _Parser | None = None   # the parser of a child process (set by _start_child)


def _start_child(options: ParseOptions) -> None:
    global _child
    die_with_parent()
    _child = _Parser(options)
    gc.collect()
    gc.freeze()                                  # what the imports made is never scanned again
    gc.set_threshold(*gc_policy.THRESHOLDS)      # and what a parse makes is mostly freed by refcount


def _parse_in_child(message: RawMessage) -> ParsedWire:
    assert _child is not None, "the pool's initializer did not run"
    return _child(message)


def _ready() -> bool:
    return _child is not None


class ParsePool:
    """One child process that parses raw messages, or none (``processes=0``: on the loop)."""

    def __init__(self, options: ParseOptions, processes: int = 1) -> None:
        self.inline = _Parser(options)
        self.processes = processes
        self._executor: ProcessPoolExecutor | None = None
        self._closed = False
        self._served = False   # the current child has returned a parse
        self._configured = metrics.child(metrics.PARSE_PROCESSES, "configured")
        self._running = metrics.child(metrics.PARSE_PROCESSES, "running")

    def start(self) -> None:
        """Start the child and warm it up (imports, the parsers) without waiting for it."""
        if self.processes and self._executor is None and not self._closed:
            self._served = False
            self._executor = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_start_child, initargs=(self.inline.options,))
            self._executor.submit(_ready)   # the pool starts its process at the first submit
            self._configured.set(self.processes)
            self._running.set(self.processes)

    async def parse(self, message: RawMessage) -> ParsedWire:
        executor = self._executor
        if executor is None:
            return self.inline(message)
        try:
            wire = await asyncio.wrap_future(executor.submit(_parse_in_child, message))
        except BrokenProcessPool:
            log.error("the parse process died; parsing %s/%s/%s on the event loop",
                      message.topic, message.partition, message.offset)
            if executor is self._executor:   # the first parse to see it replaces the child, the others don't
                self._replace()
            return self.inline(message)
        if executor is self._executor:
            self._served = True
        return wire

    def _replace(self) -> None:
        """A child that parsed is replaced; one that died before its first parse (it cannot
        start here, or is killed at once) is not, so a broken environment never becomes a
        spawn per message: the worker parses on its loop from then on."""
        if not self._served:
            log.error("the parse process died before its first parse; parsing on the event loop from now on")
            self.close()
            return
        self._shutdown()
        self.start()
        metrics.PARSE_PROCESS_RESTARTS.inc()

    def close(self) -> None:
        """Stop the child for good (the worker is stopping); a parse after this runs on the loop."""
        self._closed = True
        self._shutdown()

    def _shutdown(self) -> None:
        executor, self._executor = self._executor, None
        self._running.set(0)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
