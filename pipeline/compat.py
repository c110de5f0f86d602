"""Where Faust (or the broker under it) would let a restart lose what it had
acknowledged, or would leave a worker idle; each is patched here, once, at the narrowest point.

**Only the agents acknowledge.** Faust's stream iterator acknowledges an event it
skips (taken from the queue while flow is suspended, or of an older consumer
generation) even on a ``noack()`` stream, and commits it with the next commit.
At a SIGTERM, account batches still queued for the agent were skipped that way,
committed unprocessed, and lost (the consistency verifier's sigterm failures).
``patch_faust_manual_acks`` lets the consumer record an ack only when it comes
through :func:`acknowledge`, which every agent uses after its work is written; and
a commit never moves past an offset that was not acknowledged (Faust's own check
lets a hole of one message through). After each recovery, a partition without a
commit is read from its beginning: aiokafka seeks only committed ones, and events
skipped as stale at assignment had already moved the others past unread records.

**Commit only what is durable.** Faust commits the offsets of acknowledged
messages on a timer, without waiting for what processing them wrote: table
changelog records sit in Faust's producer buffer and in aiokafka's send queue
for a while. A kill -9 in that window left offsets committed past state that
never reached the broker. ``patch_faust_durable_commit`` makes every commit
first drain the buffer and flush the producer; if the producer cannot (it is
stopping), the commit is skipped and the input is processed again.

**Read to the true end.** Tansu (the embedded broker) answers ListOffsets(latest) with the base offset of
the last *batch* + 1, short of the end after a batched produce. Faust's table
recovery asks exactly that to know where a changelog ends, so on Tansu it
stopped reading a changelog before its last batch and a restarted worker
resumed from state older than its committed offsets: records were lost. Here
Faust's end-offset query reads on from the listed end to the real last record;
on Apache Kafka the read finds nothing more and costs one empty fetch.

**Fetch without idling.** Faust builds its consumer with a fixed ``fetch_max_wait_ms`` of
1,500. Apache Kafka answers a fetch as soon as a record arrives; Tansu holds it the full wait
(measured: 380 ms from send to receipt at 1,500, 18 ms at 50), and every hop of the pipeline
(raw → parsed → account topic → a merge's journal to another partition) waits for one. In a
backfill the stream worker sat idle half the time. ``patch_faust_fetch_wait`` applies the
worker's ``fetch_max_wait_ms`` setting instead.

**Hand a batch over without waiting.** aiokafka's ``send_batch`` first waits until the
partition's previous batch has left for the broker (its linger, then a round trip). A worker
flushes its changelog writes after every batch it processes, mostly to the same partitions as
the flush before, so each flush waited: in ``lifecycle bench`` the stream worker idled 15–18% of
the span instead of 8–9%. :func:`hand_over` queues the batch behind the partition's pending
ones at once (the order per partition is the queue's), as ``send`` does with a message.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import ProducerClosed
from aiokafka.structs import TopicPartition

from pipeline.kafka_clients import client_kwargs

_ACKING = False  # set only while acknowledge() runs (acks are synchronous)
DRAIN_TIMEOUT = 30.0  # seconds a commit waits for the producer buffer to drain


def _once(patch: Callable[[], None]) -> Callable[[], None]:
    """A patch applied at most once per process, however many apps are built."""
    done = False

    @functools.wraps(patch)
    def apply() -> None:
        nonlocal done
        if not done:
            patch()
            done = True
    return apply


async def read_end_offsets(bootstrap: list[str], tps: Iterable[Any], listed: Mapping[Any, int]) -> dict[Any, int]:
    """The next offset of each partition, read rather than asked for (no consumer group)."""
    wanted = list(tps)
    ends = {tp: listed.get(tp, 0) for tp in wanted}
    if not wanted:
        return ends
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=32 * 1024 * 1024,
                                **client_kwargs())
    await consumer.start()
    try:
        keys = {TopicPartition(tp.topic, tp.partition): tp for tp in wanted}
        consumer.assign(list(keys))
        for key, tp in keys.items():
            consumer.seek(key, max(0, ends[tp] - 1))
        while True:
            batch = await consumer.getmany(timeout_ms=300, max_records=100_000)
            if not any(batch.values()):
                return ends
            for key, records in batch.items():
                if records:
                    tp = keys[key]
                    ends[tp] = max(ends[tp], records[-1].offset + 1)
    finally:
        await consumer.stop()


@_once
def patch_faust_end_offsets() -> None:
    """Make Faust's recovery read each changelog to its real end (idempotent)."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    listed_highwaters = AIOKafkaConsumerThread._highwaters

    async def _highwaters(self: Any, partitions: Any) -> Mapping[Any, int]:
        listed = await listed_highwaters(self, partitions)
        if self.consumer.in_transaction:
            return listed
        servers = [f"{url.host}:{url.port or 9092}" for url in self.consumer.app.conf.broker]
        return await read_end_offsets(servers, partitions, listed)

    AIOKafkaConsumerThread._highwaters = _highwaters


@_once
def patch_faust_fetch_wait() -> None:
    """Faust's worker consumer waits at most the app's ``fetch_max_wait_ms`` per fetch (idempotent)."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    create = AIOKafkaConsumerThread._create_worker_consumer

    def _create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        wait = getattr(self.app, "fetch_max_wait_ms", None)
        if wait is not None:
            consumer._fetch_max_wait_ms = wait  # read when the consumer starts its fetcher
        return consumer

    AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer


async def hand_over(kafka: Any, builder: Any, topic: str, partition: int) -> asyncio.Future:
    """``AIOKafkaProducer.send_batch`` without its wait for the partition's earlier batches to
    drain (see the module's docstring); the future is the batch's delivery."""
    accumulator = kafka._message_accumulator
    if accumulator._closed:
        raise ProducerClosed()
    if accumulator._exception is not None:
        raise accumulator._exception
    await kafka.client._wait_on_metadata(topic)   # as send_batch: the partition must be known
    batch = accumulator._append_batch(builder, TopicPartition(topic, kafka._partition(topic, partition, None, None,
                                                                                       None, None)))
    return asyncio.shield(batch.future)


async def drain_producer(producer: Any, timeout: float = DRAIN_TIMEOUT) -> bool:
    """Wait until everything handed to Faust's producer *before this call* is on the broker.
    False when it cannot be (the producer is stopping or stuck).

    Waiting for an empty buffer instead would starve under load: the agents keep it filled,
    commits then waited out their timeout and were skipped, and a rebalance callback that
    commits blocked past the group's rebalance timeout."""
    sends = getattr(producer.app, "sends", None)
    if sends is not None:  # changelog writes collected by pipeline.sends, in write order
        await sends.flush()
    buffer = producer.buffer
    target = getattr(buffer, "_lc_put", 0)
    deadline = time.monotonic() + timeout
    while getattr(buffer, "_lc_sent", 0) < target:
        if buffer.should_stop or producer.should_stop or time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.002)
    await producer.flush()
    return True


@_once
def patch_faust_durable_commit() -> None:
    """Make every offset commit wait until the writes made before it are durable (idempotent)."""
    from faust.transport.consumer import Consumer
    from faust.transport.producer import ProducerBuffer

    put = ProducerBuffer.put
    send_pending = ProducerBuffer._send_pending
    commit_offsets = Consumer._commit_offsets

    def _put(self: Any, fut: Any) -> None:
        self._lc_put = getattr(self, "_lc_put", 0) + 1  # messages handed in, in order
        put(self, fut)

    async def _send_pending(self: Any, fut: Any) -> None:
        # FIFO: the n-th message handed in is the n-th handed to aiokafka.
        try:
            await send_pending(self, fut)
        finally:
            self._lc_sent = getattr(self, "_lc_sent", 0) + 1

    async def _commit_offsets(self: Any, offsets: Mapping[Any, int], start_new_transaction: bool = True) -> bool:
        # The offsets are fixed before the drain: writes of later acks may still be buffered.
        if not await drain_producer(self.app.producer):
            self.log.warning("commit skipped: the producer could not flush (its input will be processed again)")
            return False
        failed = getattr(getattr(self.app, "sends", None), "failed", None)
        if failed is not None:
            # a write before these offsets never reached the broker: committing them would pass
            # over it for good; stop, and the restarted worker processes them again
            self.log.error("commit refused: a write failed (%r); stopping the worker", failed)
            await self.app.crash(failed if isinstance(failed, Exception) else RuntimeError(repr(failed)))
            return False
        return await commit_offsets(self, offsets, start_new_transaction=start_new_transaction)

    ProducerBuffer.put = _put
    ProducerBuffer._send_pending = _send_pending
    Consumer._commit_offsets = _commit_offsets


def acknowledge(event: Any) -> None:
    """Acknowledge an event whose work is written: the only ack the consumer records."""
    global _ACKING
    _ACKING = True
    try:
        event.ack()
    finally:
        _ACKING = False


def stale(app: Any, event: Any) -> bool:
    """Delivered before the current assignment's recovery finished (flow suspended, or an older
    consumer generation): Faust seeks back to the commit, so it is read again; leave it alone.
    Also once the app is stopping: its last commit (``LifecyclePipeline.commit_before_stop``)
    is made, and what comes after it is read again by the restarted worker."""
    return (app.should_stop or not app.flow_control.is_active()
            or event.message.generation_id != app.consumer_generation_id)


@_once
def patch_faust_manual_acks() -> None:
    """Acks outside :func:`acknowledge` are not recorded, and commits never skip an unacked offset (idempotent)."""
    from faust.transport.consumer import Consumer

    ack = Consumer.ack
    new_offset = Consumer._new_offset

    def _ack(self: Any, message: Any) -> bool:
        if not _ACKING:
            return False  # Faust's own ack of a skipped event: it is read again after the seek
        return ack(self, message)

    def _new_offset(self: Any, tp: Any) -> int | None:
        acked = self._acked[tp]
        committed = self._committed_offset[tp]
        if acked and committed is not None and not self._gap[tp] and min(acked) > committed:
            noted = self.__dict__.setdefault("_lc_holes", {})
            if noted.get(tp) != committed:  # once per hole, not at every commit
                noted[tp] = committed
                # Normal for a moment after a rebalance (a commit that failed mid-rebalance took its
                # acks with it; the records are read and acknowledged again); lasting, it is a stall.
                self.log.warning("%s: holding the commit at offset %d until offsets %d..%d are acknowledged",
                                 tp, committed, committed, min(acked) - 1)
            return None
        return new_offset(self, tp)

    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    seek_to_committed = AIOKafkaConsumerThread.seek_to_committed

    async def _seek_to_committed(self: Any) -> Mapping[Any, int]:
        # aiokafka seeks only partitions with a commit; the rest stay wherever the fetcher got to,
        # which after events skipped as stale (fetched before the assignment's generation was
        # known) is past records never processed. Those start at the beginning instead.
        committed = await seek_to_committed(self)
        changelogs = self.app.tables.changelog_topics
        fresh = [tp for tp, offset in committed.items() if not offset and tp.topic not in changelogs]
        if fresh:
            await self.call_thread(self._ensure_consumer().seek_to_beginning, *fresh)
        return committed

    Consumer.ack = _ack
    Consumer._new_offset = _new_offset
    AIOKafkaConsumerThread.seek_to_committed = _seek_to_committed
