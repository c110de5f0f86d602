"""The parse agent: raw messages (batches of vendor records) → canonical events, on every worker.

Parsing is stateless, so it runs wherever Faust assigns a raw partition. Each raw message
becomes one message on its raw partition's own parsed topic (``schemas.parsed``); bad records
go to the dead-letter topic from here. The event-time merge and identity (``agents/ingest.py``)
read the parsed topics on one worker.

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
from collections import Counter
from typing import TYPE_CHECKING, Any

import faust
from faust.types import TP

from pipeline import metrics
from pipeline.compat import acknowledge, stale
from pipeline.core.identity import UsableIdentifiers
from pipeline.ingest import ParsedMessage, parse_message, to_parsed
from pipeline.sends import dumps
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
        # which records' bytes the merge may need for a dead letter (see ingest.to_parsed)
        self._usable = UsableIdentifiers(pipeline.journey.identity)
        self._cpu = metrics.StepCpu("parse")

    async def run(self, stream: faust.StreamT) -> None:
        try:
            async for event in stream.noack().events():
                message = event.message
                tp = TP(message.topic, message.partition)
                async with self.lock:
                    if tp not in self._assigned or stale(self.app, event):
                        continue  # its new owner, or this one after recovery, reads it from the commit
                    if message.offset < self._next.get(tp, 0):
                        continue  # delivered twice (a fetch in flight when Faust seeked back)
                    parsed = self._parse(event)
                    for record in parsed.records:
                        if record.dead_letter is not None:
                            await self.pipeline.send_dead_letter(record.dead_letter)
                    highwater = self.app.consumer.highwater(tp)
                    batch = to_parsed(parsed, message.offset, message.offset + 1 if highwater is None else highwater,
                                      after=self._next.get(tp, self._start.get(tp, 0)), usable=self._usable)
                    await self._send(tp, batch)
                    self._next[tp] = message.offset + 1
                    acknowledge(event)
        except BaseException as exc:
            self.pipeline.note_failure(exc)
            raise

    async def tick(self) -> None:
        """A marker for each owned partition read to its end whose position or end moved since
        the last report (a partition that never had a record included: the merge waits for it)."""
        if not self.app.flow_control.is_active():
            return  # recovering: positions are read again from the commit
        async with self.lock:
            for tp in sorted(self._assigned):
                highwater = self.app.consumer.highwater(tp)
                position = self._next.get(tp, self._start.get(tp))
                if highwater is None or position is None or position < highwater:
                    continue
                if self._reported.get(tp) != (position, highwater):
                    await self._send(tp, ParsedBatch(after=position, position=position, highwater=highwater))

    async def on_revoked(self, revoked: set[TP]) -> None:
        mine = {tp for tp in revoked if tp in self._assigned}
        if mine:
            async with self.lock:  # no send of a revoked partition starts after this
                self._assigned -= mine
                await self.app.consumer.commit()

    async def on_assigned(self, assigned: set[TP]) -> None:
        raw = {tp for tp in assigned if (tp.topic, tp.partition) in self._parsed_topic}
        self._assigned = raw
        self._next.clear()
        self._reported.clear()
        self._start = await self.pipeline.committed.get(raw) if raw else {}

    async def _send(self, tp: TP, batch: ParsedBatch) -> None:
        await self.pipeline.sends.send(self._parsed_topic[(tp.topic, tp.partition)], None, dumps(batch), partition=0)
        self._reported[tp] = (batch.position, batch.highwater)

    def _parse(self, event: Any) -> ParsedMessage:
        """One raw message → its records' canonical events, counted; an unusable record yields
        none, and its dead letter (its own bytes)."""
        message = event.message
        with self._cpu:
            parsed = parse_message(event.value, message.topic, f"{message.topic}/{message.partition}/{message.offset}",
                                   now=self.pipeline.wall(), accept_test_mode=self.settings.accept_test_mode,
                                   future_skew=self.pipeline.future_skew)
        # counted per message, each series once: a raw message holds up to 500 records
        ingested = Counter((record.source, record.outcome) for record in parsed.records)
        ignored = Counter(record.ignored for record in parsed.records if record.ignored is not None)
        kinds = Counter(sourced.event.kind for events in parsed.events for sourced in events)
        for labels, n in ingested.items():
            metrics.child(metrics.EVENTS_INGESTED, *labels).inc(n)
        for labels, n in ignored.items():
            metrics.child(metrics.IGNORED, *labels).inc(n)
        for kind, n in kinds.items():
            metrics.child(metrics.CANONICAL_EVENTS, kind).inc(n)
        return parsed
