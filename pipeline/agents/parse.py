"""The parse agent: raw messages (batches of vendor records) → canonical events, on every worker.

Parsing is stateless, so it runs wherever Faust assigns a raw partition. Each raw message
becomes one message on its raw partition's own parsed topic (``schemas.parsed``); bad records
go to the dead-letter topic from here. The event-time merge and identity (``agents/ingest.py``)
read the parsed topics on one worker.

The parse itself runs in the worker's parse process (``pipeline.parse_pool``), up to ``depth``
raw messages ahead of the sends, so it overlaps the merge and the accounts on the event loop.
Sends still leave in raw-offset order: ``_finish`` sends only from the head of the queue, once
that message is parsed. A revocation or an assignment drops the parses not sent (they are not
acknowledged, so they are read again from the commit), and a marker waits for its partition's
parses to be sent.

At-least-once, made exact downstream: an offset is acknowledged once its messages are handed
to the producer, and a commit waits for the producer (``pipeline.compat``). A restarted or
reassigned parser sends again from the raw commit; the merge keeps what it has by raw
offset. Each message also names the parser's position before it (``after``), so the merge
tells a message that never arrived (a send refused while a later one went through) from raw
offsets that hold no record (a transactional producer's markers). Sends for a partition stop
before it is revoked (``lock``), so a parsed topic never holds an old owner's message after
its new owner's.

The merge never reads the raw topics, so it learns that a raw partition is read to its end
only from the parser: every parsed message carries the parser's position and the raw
partition's high-water mark, and an idle partition's parser sends a marker whenever either
moved (not on every tick: idle topics stay quiet).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

import faust
from faust.types import TP

from pipeline import metrics
from pipeline.compat import acknowledge, stale
from pipeline.ingest import ParsedWire
from pipeline.parse_pool import ParseOptions, ParsePool, RawMessage
from schemas.base import dumps
from schemas.parsed import ParsedBatch

if TYPE_CHECKING:
    from pipeline.app import LifecyclePipeline

log = logging.getLogger(__name__)


class Parse:
    """The raw partitions this worker owns, and what it last reported of each."""

    def __init__(self, pipeline: LifecyclePipeline) -> None:
        self.pipeline = pipeline
        self.app = pipeline.app
        self.settings = pipeline.settings
        self.lock = asyncio.Lock()   # a send in progress finishes before its partition is revoked
        self._parsed_topic = {raw: parsed for parsed, raw in pipeline.parsed_topics.items()}
        self._assigned: set[TP] = set()
        self._start: dict[TP, int] = {}                  # committed offsets when assigned
        self._next: dict[TP, int] = {}                   # the next raw offset to parse
        self._reported: dict[TP, tuple[int, int]] = {}   # the last (position, highwater) sent
        self.pool = ParsePool(ParseOptions(pipeline.journey.identity, self.settings.accept_test_mode,
                                           pipeline.future_skew), processes=self.settings.parse_processes)
        self._cpu = metrics.STEP_CPU.labels("parse")   # the parse's own CPU, wherever it ran
        self.depth = 2 * max(1, self.pool.processes)     # raw messages parsing or parsed, not yet sent
        self._pending: deque[tuple[TP, Any, asyncio.Future[ParsedWire]]] = deque()
        self._failed: BaseException | None = None
        self._finishing: set[asyncio.Task[None]] = set()   # referenced until done (asyncio keeps weak refs)

    async def run(self, stream: faust.StreamT) -> None:
        try:
            async for event in stream.noack().events():
                if self._failed is not None:
                    raise self._failed
                message = event.message
                tp = TP(message.topic, message.partition)
                async with self.lock:
                    if tp not in self._assigned or stale(self.app, event):
                        continue  # its new owner, or this one after recovery, reads it from the commit
                    if message.offset < self._next.get(tp, 0):
                        continue  # delivered twice (a fetch in flight when Faust seeked back)
                    self._submit(tp, event)
                while len(self._pending) >= self.depth:   # the parse process stays busy, within bounds
                    await self._finish(until=self.depth - 1)
        except BaseException as exc:
            self.pipeline.note_failure(exc)
            raise

    def _submit(self, tp: TP, event: Any) -> None:
        """Start parsing a raw message (in the parse process); it is sent, in raw-offset order,
        by ``_finish`` once it and every message before it are parsed."""
        message = event.message
        highwater = self.app.consumer.highwater(tp)
        raw = RawMessage(event.value, message.topic, message.partition, message.offset,
                         message.offset + 1 if highwater is None else highwater,
                         self._next.get(tp, self._start.get(tp, 0)), self.pipeline.wall())
        wire = asyncio.ensure_future(self.pool.parse(raw))
        wire.add_done_callback(self._parsed)
        self._pending.append((tp, event, wire))
        self._next[tp] = message.offset + 1

    def _parsed(self, _: asyncio.Future[ParsedWire]) -> None:
        if self._pending:   # not dropped by a revocation meanwhile
            task = asyncio.ensure_future(self._finish_ready())
            self._finishing.add(task)
            task.add_done_callback(self._finishing.discard)

    async def _finish_ready(self) -> None:
        try:
            await self._finish()
        except asyncio.CancelledError:
            pass   # the worker is stopping
        except Exception as exc:
            self.pipeline.note_failure(exc)
            self._failed = exc   # the agent raises it at its next message

    async def _finish(self, until: int | None = None) -> None:
        """Send what is parsed at the head of the queue, in order: with ``until``, wait for parses
        until at most that many remain; without, send only those already done."""
        async with self.lock:
            while self._pending and (until is not None and len(self._pending) > until
                                     or self._pending[0][2].done()):
                tp, event, future = self._pending[0]
                wire = await future
                self._pending.popleft()
                self._handle(wire)
                for letter in wire.dead_letters:
                    await self.pipeline.send_dead_letter(letter)
                await self._send(tp, wire.value, wire.position, wire.highwater)
                acknowledge(event)

    def _handle(self, wire: ParsedWire) -> None:
        """A parsed message's counts, each series once: a raw message holds up to 500 records."""
        self._cpu.inc(wire.cpu)
        for labels, n in wire.ingested.items():
            metrics.child(metrics.EVENTS_INGESTED, *labels).inc(n)
        for labels, n in wire.ignored.items():
            metrics.child(metrics.IGNORED, *labels).inc(n)
        for kind, n in wire.kinds.items():
            metrics.child(metrics.CANONICAL_EVENTS, kind).inc(n)

    async def tick(self) -> None:
        """A marker for each owned partition read to its end whose position or end moved since
        the last report (a partition that never had a record included: the merge waits for it)."""
        if not self.app.flow_control.is_active():
            return  # recovering: positions are read again from the commit
        async with self.lock:
            parsing = {tp for tp, _, _ in self._pending}
            for tp in sorted(self._assigned - parsing):   # a marker never overtakes a parsed message
                highwater = self.app.consumer.highwater(tp)
                position = self._next.get(tp, self._start.get(tp))
                if highwater is None or position is None or position < highwater:
                    continue
                if self._reported.get(tp) != (position, highwater):
                    marker = ParsedBatch(after=position, position=position, highwater=highwater)
                    await self._send(tp, dumps(marker), position, highwater)

    async def on_revoked(self, revoked: set[TP]) -> None:
        mine = {tp for tp in revoked if tp in self._assigned}
        if mine:
            async with self.lock:  # no send of a revoked partition starts after this
                self._assigned -= mine
                # parses not sent yet are not acknowledged: read again from the commit
                self._pending = deque(p for p in self._pending if p[0] not in mine)
                await self.app.consumer.commit()

    async def on_assigned(self, assigned: set[TP]) -> None:
        raw = {tp for tp in assigned if (tp.topic, tp.partition) in self._parsed_topic}
        async with self.lock:
            self._pending.clear()   # not acknowledged: every assigned partition is read again from its commit
            self._assigned = raw
            self._next.clear()
            self._reported.clear()
            self._start = await self.pipeline.committed.get(raw) if raw else {}

    async def _send(self, tp: TP, value: bytes, position: int, highwater: int) -> None:
        await self.pipeline.sends.send(self._parsed_topic[(tp.topic, tp.partition)], None, value, partition=0)
        self._reported[tp] = (position, highwater)
