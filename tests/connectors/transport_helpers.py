"""Shared by the transport tests: topics on the real broker, reading them back, parsers.

The parsers are the real ones, from ``connectors.registry``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from connectors.registry import vendors
from pipeline.topic_reads import topic_end_offsets
from pipeline.topics import ensure_topics
from schemas.events import RawRecord
from schemas.raw_batch import unpack
from schemas.topics import all_topic_names

TEST_PARTITIONS = 3


VENDORS = tuple(vendors())


@pytest.fixture(scope="module")
def parsers() -> Iterator[str]:
    """Which parsers the transport tests run with: always the real ones (``connectors.registry``)."""
    yield "real"


@pytest.fixture(scope="module")
def topics(kafka_bootstrap: str) -> str:
    ensure_topics(kafka_bootstrap, all_topic_names(), partitions=TEST_PARTITIONS)
    return kafka_bootstrap


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    """The true next offset of each partition (see ``pipeline.topic_reads.true_end_offsets``)."""
    ends = await asyncio.to_thread(topic_end_offsets, bootstrap, topic)
    return {TopicPartition(tp.topic, tp.partition): offset for tp, offset in ends.items()}


@dataclass(frozen=True)
class RawLine:
    """One record of a raw-topic batch message (``schemas.raw_batch``), where it was."""

    topic: str
    partition: int
    offset: int
    index: int
    key: bytes | None
    value: bytes
    headers: Any


def _records(message: Any) -> list[Any]:
    """A raw-topic message is a batch: its records, one each, with the batch's headers and, as
    headers too, the record's own ``event_id``, ``vendor`` and ``transport`` (a batch may mix
    them); any other message as it is."""
    if ".raw." not in message.topic:
        return [message]
    out = []
    for i, line in enumerate(unpack(message.value)):
        fields = orjson.loads(line)
        own = [(name, str(fields.get(name, "")).encode()) for name in ("event_id", "vendor", "transport")]
        out.append(RawLine(message.topic, message.partition, message.offset, i, message.key, line,
                           [*(message.headers or ()), *own]))
    return out


def event_id(record: Any) -> str:
    return RawRecord.from_json(record.value).event_id


async def read_from(bootstrap: str, start: dict[TopicPartition, int], *, expect: int | None = None,
                    idle: float = 1.0, timeout: float = 30.0) -> list[Any]:
    """Every record after ``start`` offsets (a raw topic's batches as their records, in order);
    stops at ``expect`` records or after ``idle`` s of silence."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    out: list[Any] = []
    try:
        consumer.assign(list(start))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        quiet_since = loop.time()
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=200, max_records=10_000)
            got = [r for msgs in batch.values() for m in msgs for r in _records(m)]
            out.extend(got)
            if got:
                quiet_since = loop.time()
            if expect is not None and len(out) >= expect:
                # wait a moment more: a duplicate would show up right behind
                if loop.time() - quiet_since >= min(idle, 0.3):
                    break
            elif expect is None and loop.time() - quiet_since >= idle:
                break
        return out
    finally:
        await consumer.stop()


def values(messages: list[Any]) -> list[dict[str, Any]]:
    return [orjson.loads(m.value) for m in messages]


def header(message: Any, name: str) -> str | None:
    for k, v in message.headers or ():
        if k == name:
            return v.decode()
    return None
