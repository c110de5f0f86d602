"""Two places where Faust (or the broker under it) would let a restart lose what it had
acknowledged; each is patched here, once, at the narrowest point.

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
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from pipeline.kafka_clients import client_kwargs

_PATCHED = False
_DURABLE_PATCHED = False
DRAIN_TIMEOUT = 30.0  # seconds a commit waits for the producer buffer to drain


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


def patch_faust_end_offsets() -> None:
    """Make Faust's recovery read each changelog to its real end (idempotent)."""
    global _PATCHED
    if _PATCHED:
        return
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    listed_highwaters = AIOKafkaConsumerThread._highwaters

    async def _highwaters(self: Any, partitions: Any) -> Mapping[Any, int]:
        listed = await listed_highwaters(self, partitions)
        if self.consumer.in_transaction:
            return listed
        servers = [f"{url.host}:{url.port or 9092}" for url in self.consumer.app.conf.broker]
        return await read_end_offsets(servers, partitions, listed)

    AIOKafkaConsumerThread._highwaters = _highwaters
    _PATCHED = True


async def drain_producer(producer: Any, timeout: float = DRAIN_TIMEOUT) -> bool:
    """Wait until everything handed to Faust's producer *before this call* is on the broker.
    False when it cannot be (the producer is stopping or stuck).

    Waiting for an empty buffer instead would starve under load: the agents keep it filled,
    commits then waited out their timeout and were skipped, and a rebalance callback that
    commits blocked past the group's rebalance timeout."""
    buffer = producer.buffer
    target = getattr(buffer, "_lc_put", 0)
    deadline = time.monotonic() + timeout
    while getattr(buffer, "_lc_sent", 0) < target:
        if buffer.should_stop or producer.should_stop or time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.002)
    await producer.flush()
    return True


def patch_faust_durable_commit() -> None:
    """Make every offset commit wait until the writes made before it are durable (idempotent)."""
    global _DURABLE_PATCHED
    if _DURABLE_PATCHED:
        return
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
        return await commit_offsets(self, offsets, start_new_transaction=start_new_transaction)

    ProducerBuffer.put = _put
    ProducerBuffer._send_pending = _send_pending
    Consumer._commit_offsets = _commit_offsets
    _DURABLE_PATCHED = True
