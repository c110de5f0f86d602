"""Reading topics without a consumer group: true end offsets, whole-topic reads, table
snapshots from changelogs. Used by production commands (``identity show``, ``tail``) and by
the drivers in ``pipeline.drive``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TypeVar

from kafka import KafkaConsumer, TopicPartition
from pydantic import BaseModel

from pipeline.kafka_clients import client_kwargs

M = TypeVar("M", bound=BaseModel)

# Read-only consumers (reads, end offsets, lag) fetch big: Tansu can hand back a partial batch
# that a 1 MiB per-partition limit (kafka-python's default) never gets past, so a read of a
# changelog with large values (account states reach hundreds of KiB) stalled part-way and came
# back short. They skip CRC checks too: without the optional crc32c extension kafka-python
# computes them in pure Python, about 1 MB/s, which made reading a changelog take minutes.
READ_FETCH = {"max_partition_fetch_bytes": 32 * 1024 * 1024, "fetch_max_bytes": 64 * 1024 * 1024,
              "check_crcs": False}


def true_end_offsets(consumer: KafkaConsumer, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
    """The next offset of each partition, read rather than asked for.

    Tansu (the embedded broker) answers ListOffsets(latest) with the base offset of
    the last *batch* + 1, short of the end after a batched produce; so read on from
    there to the real last record. On Apache Kafka the read finds nothing more.
    """
    ends = dict(consumer.end_offsets(list(tps)))
    if not tps:
        return ends
    consumer.assign(list(tps))
    for tp in tps:
        consumer.seek(tp, max(0, ends[tp] - 1))
    while True:
        batch = consumer.poll(timeout_ms=200, max_records=100_000)
        if not batch:
            return ends
        for tp, msgs in batch.items():
            if msgs:
                ends[tp] = max(ends[tp], msgs[-1].offset + 1)


def topic_end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **READ_FETCH,
                             **client_kwargs())
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        return true_end_offsets(consumer, tps)
    finally:
        consumer.close()


def topics_end_offsets(bootstrap: str, topics: Sequence[str]) -> dict[TopicPartition, int]:
    """The true end of every partition of several topics, with one consumer (cheap to poll for quiet)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **READ_FETCH,
                             **client_kwargs())
    try:
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        return true_end_offsets(consumer, tps)
    finally:
        consumer.close()


def read_topic(bootstrap: str, topic: str, model: type[M] | None = None, timeout: float = 2.0) -> list:
    """Everything on a topic right now, from the beginning, without a consumer group."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **READ_FETCH,
                             **client_kwargs(),
                             auto_offset_reset="earliest", consumer_timeout_ms=int(timeout * 1000))
    parts = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    if not tps:
        consumer.close()
        return []
    end = true_end_offsets(consumer, tps)
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    out = []
    remaining = {tp for tp in tps if end[tp] > 0}
    deadline = time.monotonic() + max(timeout, 10.0)
    while remaining and time.monotonic() < deadline:
        batch = consumer.poll(timeout_ms=500)
        for tp, msgs in batch.items():
            for m in msgs:
                out.append(model.model_validate_json(m.value) if model else m)
                if m.offset + 1 >= end[tp]:
                    remaining.discard(tp)
    consumer.close()
    return out


def table_snapshot(bootstrap: str, app_id: str, table: str, timeout: float = 2.0) -> dict[str, bytes]:
    """A table's current content, rebuilt from its changelog topic (last value per key wins,
    tombstones delete): what a recovering worker would load, readable without one."""
    state: dict[str, bytes] = {}
    for m in read_topic(bootstrap, f"{app_id}-{table}-changelog", timeout=timeout):
        key = m.key.decode()
        if m.value is None:
            state.pop(key, None)
        else:
            state[key] = m.value
    return state
