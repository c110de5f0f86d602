"""Shared by the transport tests: topics on the real broker, reading them back, parsers.

Until the vendor parsers exist (``connectors/crm.py`` …), the ``parsers`` fixture
registers minimal stand-ins with the same contract for the five vendors and
removes them afterwards; once the real ones import, they are used instead.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from connectors import base
from connectors.base import ParseError
from pipeline.topic_reads import topic_end_offsets
from pipeline.topics import ensure_topics
from schemas.events import LifecycleEvent, SourceKind
from schemas.topics import all_topic_names

TEST_PARTITIONS = 3


class StandInParser:
    """The parser contract with just enough vendor knowledge for transport tests."""

    def __init__(self, vendor: str, source: SourceKind, id_field: str, key_field: str):
        self.vendor, self.source, self.id_field, self.key_field = vendor, source, id_field, key_field

    def split(self, body: Any) -> list[dict[str, Any]]:
        items = body if isinstance(body, list) else [body]
        for item in items:
            if not isinstance(item, dict):
                raise ParseError("not_an_object", f"{type(item).__name__} is not an object")
        return items

    def event_id(self, payload: dict[str, Any]) -> str:
        value = payload.get(self.id_field)
        return str(value) if value is not None else hashlib.sha1(orjson.dumps(payload)).hexdigest()

    def key(self, payload: dict[str, Any]) -> str:
        return str(payload.get(self.key_field) or self.event_id(payload))

    def parse(self, payload: dict[str, Any], ingested_at: datetime) -> list[LifecycleEvent]:
        return []


STAND_INS = [
    StandInParser("stripe", SourceKind.BILLING, "id", "customer"),
    StandInParser("hubspot", SourceKind.CRM, "eventId", "objectId"),
    StandInParser("salesforce", SourceKind.CRM, "Id", "AccountId"),
    StandInParser("segment", SourceKind.PRODUCT, "messageId", "userId"),
    StandInParser("zendesk", SourceKind.SUPPORT, "id", "ticket_id"),
]


VENDORS = tuple(p.vendor for p in STAND_INS)


def real_parsers_available() -> bool:
    try:
        base._load_builtin_parsers()
    except ImportError:
        pass
    return all(v in base._REGISTRY and not isinstance(base._REGISTRY[v], StandInParser) for v in VENDORS)


@pytest.fixture(scope="module")
def parsers() -> Iterator[str]:
    """'real' or 'stand-in': which parsers are registered for the five vendors."""
    if real_parsers_available():
        yield "real"
        return
    snapshot = dict(base._REGISTRY)
    for p in STAND_INS:
        if p.vendor not in snapshot:
            base.register(p)
    try:
        yield "stand-in"
    finally:
        base._REGISTRY.clear()
        base._REGISTRY.update(snapshot)


@pytest.fixture(scope="module")
def topics(kafka_bootstrap: str) -> str:
    ensure_topics(kafka_bootstrap, all_topic_names(), partitions=TEST_PARTITIONS)
    return kafka_bootstrap


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    """The true next offset of each partition (see ``pipeline.topic_reads.true_end_offsets``)."""
    ends = await asyncio.to_thread(topic_end_offsets, bootstrap, topic)
    return {TopicPartition(tp.topic, tp.partition): offset for tp, offset in ends.items()}


async def read_from(bootstrap: str, start: dict[TopicPartition, int], *, expect: int | None = None,
                    idle: float = 1.0, timeout: float = 30.0) -> list[Any]:
    """Every message after ``start`` offsets; stops at ``expect`` messages or after ``idle`` s of silence."""
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
            got = [m for msgs in batch.values() for m in msgs]
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
