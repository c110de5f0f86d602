"""The agents' Kafka writes, handed to Faust's producer without Faust's per-message machinery.

Through ``Topic.send`` or a table write, every message becomes a ``FutureMessage`` in Faust's
producer buffer, drained by a task, serialized through codec lookups and reported to the
sensors, on top of the producer's own ``send``. The worker writes about one message per input
record (outputs, identity facts, account batches and every table's changelog); sending them
here, together with the other write reductions of the same change, took the stream worker
from about 520 to about 430 µs of CPU per record in ``lifecycle bench``.

``Sends`` writes outputs with ``await send(...)`` straight to the producer, and collects
changelog writes (table ``__setitem__`` is synchronous) to send them in order at the next
``flush``. Commits stay exact: ``compat.drain_producer`` flushes what is collected here
before it flushes the producer, and an offset is committed only after that drain.

A write the producer gives up on (its delivery future fails) is recorded in ``failed``, and no
offset is committed after it (``compat.patch_faust_durable_commit`` stops the worker): the
producer's ``flush`` waits for deliveries but does not raise, so without this a commit could
pass over a write that never reached the broker.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

from pipeline.compat import hand_over


log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]
_Changelog = tuple[str, int, bytes | None, bytes | None, Headers, Callable[[Any], None] | None]


class Sends:
    """One per worker: direct sends, and the changelog writes waiting for the next flush."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.changelog: list[_Changelog] = []
        self.failed: BaseException | None = None   # the first write the producer gave up on
        self._flushing = asyncio.Lock()  # flushes never interleave: a key's writes stay in write order

    @property
    def kafka(self) -> Any:
        """The aiokafka producer under Faust's: its own ``send`` skips Faust's per-message layer
        (a signal, header checks), and its record batches take a flush's writes in one go."""
        return self.app.producer._ensure_producer()

    async def send(self, topic: str, key: str | bytes | None, value: bytes, *, partition: int | None = None,
                   headers: Headers | None = None) -> asyncio.Future:
        """Hand one message to the producer (it is on the broker once the producer flushes);
        returns its delivery (its ``RecordMetadata`` once written)."""
        if isinstance(key, str):
            key = key.encode()
        delivery = await self.kafka.send(topic, value, key=key, partition=partition, headers=headers)
        delivery.add_done_callback(self._delivered)
        return delivery

    def queue_changelog(self, topic: str, partition: int, key: bytes | None, value: bytes | None,
                        headers: Headers, on_sent: Callable[[Any], None] | None = None) -> None:
        """A table write's changelog message, sent at the next :meth:`flush`, in write order."""
        self.changelog.append((topic, partition, key, value, headers, on_sent))

    async def flush(self) -> None:
        """Hand every changelog message queued so far to the producer, in order (a flush that
        another one is running waits for it, so on return everything queued before is handed over).

        Each partition's messages go as record batches built here (``_Batch``), not one
        ``send`` each: a flush carries hundreds to thousands of writes, and aiokafka's per-message
        path (a future, the accumulator, the partitioner) cost about 3 times the batch's append."""
        async with self._flushing:
            while self.changelog:
                queued, self.changelog = self.changelog, []
                kafka = self.kafka
                batches = _batches(kafka, queued)
                for n, batch in enumerate(batches):
                    try:
                        delivery = await hand_over(kafka, batch.builder, batch.topic, batch.partition)
                    except BaseException:
                        # cancelled (a shutdown) or refused: what was not handed over goes back,
                        # first and in write order, so a later flush (the writer's own, before its
                        # ack) sends it; dropped here, another writer waiting on the lock would ack
                        # without it
                        self.changelog[:0] = [queued[i] for i in sorted(i for b in batches[n:] for i in b.indexes)]
                        raise
                    delivery.add_done_callback(self._delivered)
                    for on_sent, last in batch.reports.items():
                        delivery.add_done_callback(functools.partial(_report, on_sent, last))

    def _delivered(self, delivery: asyncio.Future) -> None:
        if self.failed is None and (delivery.cancelled() or delivery.exception() is not None):
            self.failed = asyncio.CancelledError("write cancelled") if delivery.cancelled() else delivery.exception()
            log.error("a write never reached the broker: %r; no offset is committed from now on", self.failed)


class _Batch:
    """One partition's changelog messages of a flush, as one aiokafka record batch (``indexes``:
    their places in the flush, ``reports``: each table's callback with its last message's
    offset in the batch)."""

    __slots__ = ("topic", "partition", "builder", "indexes", "reports")

    def __init__(self, kafka: Any, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self.builder = kafka.create_batch()
        self.indexes: list[int] = []
        self.reports: dict[Callable[[Any], None], int] = {}


def _batches(kafka: Any, queued: list[_Changelog]) -> list[_Batch]:
    """The flush's messages per partition, in write order; a partition's batch that reaches the
    producer's batch size is followed by another (handed over after it: ``send_batch`` queues
    a partition's batches in order)."""
    out: list[_Batch] = []
    open_: dict[tuple[str, int], _Batch] = {}
    for i, (topic, partition, key, value, headers, on_sent) in enumerate(queued):
        batch = open_.get((topic, partition))
        if batch is None or batch.builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
            batch = open_[(topic, partition)] = _Batch(kafka, topic, partition)
            out.append(batch)
            batch.builder.append(key=key, value=value, timestamp=None, headers=headers)  # a first always fits
        batch.indexes.append(i)
        if on_sent is not None:
            batch.reports[on_sent] = len(batch.indexes) - 1
    return out


def _report(on_sent: Callable[[Any], None], last: int, delivery: asyncio.Future) -> None:
    """A table's changelog callback (Faust keeps the offset it has written up to) with its last
    message of a delivered batch: the batch's base offset plus that message's place in it."""
    if delivery.cancelled() or delivery.exception() is not None:
        return  # recorded by _delivered; nothing was written
    sent: asyncio.Future = asyncio.get_running_loop().create_future()
    meta = delivery.result()
    sent.set_result(meta._replace(offset=meta.offset + last))
    on_sent(sent)
