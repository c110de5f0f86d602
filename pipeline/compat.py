"""Where a broker's answer is short of the truth, read the truth.

Tansu (the embedded broker) answers ListOffsets(latest) with the base offset of
the last *batch* + 1, short of the end after a batched produce. Faust's table
recovery asks exactly that to know where a changelog ends, so on Tansu it
stopped reading a changelog before its last batch and a restarted worker
resumed from state older than its committed offsets: records were lost. Here
Faust's end-offset query reads on from the listed end to the real last record;
on Apache Kafka the read finds nothing more and costs one empty fetch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from pipeline.kafka_clients import client_kwargs

_PATCHED = False


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
