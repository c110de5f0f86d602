"""The read-model sink agent: output topics → SQL, in batches, idempotently.

Shaped like Quix Streams' batching sink: records are gathered and flushed in one
transaction before their offsets are acknowledged, so a crash replays at most the
unflushed batch, and the deterministic ids make the replay a no-op. Acks are
manual: Faust's ``take`` acknowledges a batch when the agent is cancelled, even
if its flush never finished (a SIGTERM then lost rows).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust
from pydantic import BaseModel, ValidationError

from pipeline import metrics
from pipeline.compat import acknowledge
from schemas.handoffs import Handoff
from schemas.identity import AccountMerged, parse_identity_record
from schemas.sla import SlaBreach
from schemas.topics import Topics
from schemas.transitions import StageTransition

log = logging.getLogger(__name__)


def sink_topics(topics: Topics) -> tuple[str, ...]:
    """What the read-model sink consumes."""
    return topics.stage_transitions, topics.handoffs, topics.sla_breaches, topics.identity


BATCH = 1000
WITHIN = 0.5


class ReadModelSink:
    def __init__(self, database_url: str | None, topics: Topics) -> None:
        from pipeline.readmodel.engine import make_engine, migrate
        from pipeline.readmodel.writer import ReadModelWriter

        self.topics = topics
        self._models: dict[str, type[BaseModel]] = {
            topics.stage_transitions: StageTransition,
            topics.handoffs: Handoff,
            topics.sla_breaches: SlaBreach,
        }
        self.engine = make_engine(database_url)
        migrate(self.engine)
        self.writer = ReadModelWriter(self.engine)
        self._pending: list[Any] = []          # events gathered, not yet written (unacknowledged)
        self._since = time.monotonic()
        self._lock = asyncio.Lock()

    def decode(self, topic: str, value: bytes) -> tuple[list[Any], list[tuple[str, str]]]:
        """One message → records to apply, merges to mark."""
        if topic == self.topics.identity:
            record = parse_identity_record(value)
            if isinstance(record, AccountMerged):
                return [], [(record.from_account, record.into_account)]
            return [], []
        return [self._models[topic].model_validate_json(value)], []

    def flush(self, records: list[Any], merges: list[tuple[str, str]]) -> None:
        """One transaction: the records, then identity's merges."""
        self.writer.apply(records, merges)

    async def run(self, stream: faust.StreamT) -> None:
        """The agent: gather events; a full batch is flushed at once, the rest by ``flush_due``."""
        async for event in stream.noack().events():
            self._pending.append(event)
            if len(self._pending) >= BATCH:
                await self.flush_pending()

    async def flush_due(self) -> None:
        """The timer: flush what waited ``WITHIN`` seconds."""
        if self._pending and time.monotonic() - self._since >= WITHIN:
            await self.flush_pending()

    async def flush_pending(self) -> None:
        """Write the gathered batch in one transaction, then acknowledge it."""
        async with self._lock:
            batch, self._pending, self._since = self._pending, [], time.monotonic()
            if not batch:
                return
            records: list[Any] = []
            merges: list[tuple[str, str]] = []
            for event in batch:
                try:
                    r, m = self.decode(event.message.topic, event.value)
                except (ValidationError, ValueError, KeyError) as exc:  # our own topics: a bug, not input
                    log.error("read-model sink cannot decode %s/%s@%s: %s", event.message.topic,
                              event.message.partition, event.message.offset, exc)
                    metrics.READ_MODEL_ROWS.labels("unknown", "undecodable").inc()
                    continue
                records += r
                merges += m
            await asyncio.to_thread(self.flush, records, merges)
            for event in batch:
                acknowledge(event)
