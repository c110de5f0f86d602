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
import logging
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel


log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]
_Changelog = tuple[str, int | None, bytes | None, bytes | None, Headers, Callable[[Any], None] | None]


def dumps(value: BaseModel) -> bytes:
    """A record's JSON, as ``codecs.PydanticCodec`` writes it."""
    return value.__pydantic_serializer__.to_json(value)


class Sends:
    """One per worker: direct sends, and the changelog writes waiting for the next flush."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.changelog: list[_Changelog] = []
        self.failed: BaseException | None = None   # the first write the producer gave up on
        self._flushing = asyncio.Lock()  # flushes never interleave: a key's writes stay in write order

    async def send(self, topic: str, key: str | bytes | None, value: bytes, *, partition: int | None = None,
                   headers: Headers | None = None) -> None:
        """Hand one message to the producer (it is on the broker once the producer flushes)."""
        if isinstance(key, str):
            key = key.encode()
        delivery = await self.app.producer.send(topic, key, value, partition, None, headers)
        delivery.add_done_callback(self._delivered)

    def queue_changelog(self, topic: str, partition: int | None, key: bytes | None, value: bytes | None,
                        headers: Headers, on_sent: Callable[[Any], None] | None = None) -> None:
        """A table write's changelog message, sent at the next :meth:`flush`, in write order."""
        self.changelog.append((topic, partition, key, value, headers, on_sent))

    async def flush(self) -> None:
        """Hand every changelog message queued so far to the producer, in order (a flush that
        another one is running waits for it, so on return everything queued before is handed over)."""
        async with self._flushing:
            while self.changelog:
                batch, self.changelog = self.changelog, []
                producer = self.app.producer
                for i, (topic, partition, key, value, headers, on_sent) in enumerate(batch):
                    try:
                        delivery = await producer.send(topic, key, value, partition, None, headers)
                    except BaseException:
                        # cancelled (a shutdown) or refused: what was not handed over goes back,
                        # first, so a later flush (the writer's own, before its ack) sends it;
                        # dropped here, another writer waiting on the lock would ack without it
                        self.changelog[:0] = batch[i:]
                        raise
                    delivery.add_done_callback(self._delivered)
                    if on_sent is not None:
                        delivery.add_done_callback(on_sent)

    def _delivered(self, delivery: asyncio.Future) -> None:
        if self.failed is None and (delivery.cancelled() or delivery.exception() is not None):
            self.failed = asyncio.CancelledError("write cancelled") if delivery.cancelled() else delivery.exception()
            log.error("a write never reached the broker: %r; no offset is committed from now on", self.failed)
