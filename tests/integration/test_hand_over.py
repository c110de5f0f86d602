"""``compat.hand_over`` on a real broker: a partition's batches, handed over back to back while
the earlier ones are still lingering, all reach the broker, in order, and each delivery names
its batch's first offset (what ``pipeline.sends`` tells a table of its last write)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from pipeline.compat import hand_over
from pipeline.topics import ensure_topics

pytestmark = pytest.mark.integration


async def _run(bootstrap: str, topic: str) -> tuple[list[int], list[bytes], float]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=200)   # long: batches stay queued
    await producer.start()
    try:
        deliveries, started = [], time.perf_counter()
        for b in range(3):
            builder = producer.create_batch()
            for i in range(4):
                assert builder.append(key=b"k", value=b"%d-%d" % (b, i), timestamp=None) is not None
            deliveries.append(await hand_over(producer, builder, topic, 1))
        handed = time.perf_counter() - started     # send_batch would wait out each linger here
        offsets = [meta.offset for meta in await asyncio.gather(*deliveries)]
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        values: list[bytes] = []
        while len(values) < 12:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                values += [r.value for r in records]
    finally:
        await consumer.stop()
    return offsets, values, handed


def test_batches_of_a_partition_are_queued_at_once_and_delivered_in_order(isolated_bootstrap: str) -> None:
    topic = f"hand-over-{uuid.uuid4().hex[:8]}"
    ensure_topics(isolated_bootstrap, [topic], 2)
    offsets, values, handed = asyncio.run(_run(isolated_bootstrap, topic))
    assert offsets == [0, 4, 8]
    assert values == [b"%d-%d" % (b, i) for b in range(3) for i in range(4)]
    assert handed < 0.2   # no wait for a 200 ms linger between the three
