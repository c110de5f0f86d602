"""A parsed message can be larger than the raw message it came from (canonical events carry
more than the vendor's calls), and larger than a Kafka message's 1 MB default: the parsed
topics are created to take it (``schemas.topics.LARGE_MESSAGE_BYTES``) and the worker's producer
sends it. One raw message here parses, as the worker's parse stage sends it, to more than a
megabyte; the worker must apply it all."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from kafka import KafkaProducer

from pipeline.core.identity import UsableIdentifiers
from pipeline.drive.runner import WorkerProcess, internal_topics, wait_caught_up
from pipeline.ingest import parse_message, to_parsed
from pipeline.journey import load_journey
from pipeline.kafka_clients import client_kwargs
from pipeline.runtime import create_topics
from pipeline.settings import Settings
from pipeline.topic_reads import table_snapshot
from schemas.base import dumps
from schemas.raw_batch import pack, partition_for
from tests.integration import native as n

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
TRACKS = 2500


def test_a_parsed_message_over_a_megabyte_goes_through(isolated_bootstrap, tmp_path):
    run = uuid.uuid4().hex[:6]
    settings = Settings(bootstrap_servers=isolated_bootstrap, partitions=2, timer_interval=0.25, commit_interval=0.3,
                        app_id=f"big-{run}", topic_namespace=f"big{run}", data_dir=tmp_path,
                        database_url=f"sqlite:///{tmp_path / 'readmodel.db'}", role="stream")
    create_topics(settings)
    records = [n.segment_group("g-0", "grp1", "4242", T0)] + [
        n.segment_track(f"t-{i}", "grp1", "Report Exported", T0 + timedelta(minutes=i)) for i in range(TRACKS)]
    value = pack([r.to_json() for r in records])
    topic = settings.topics.raw[records[0].source]
    usable = UsableIdentifiers(load_journey(settings.journey_path).identity)   # as the parse agent
    parsed = dumps(to_parsed(parse_message(value, topic, f"{topic}/0/0", now=T0 + timedelta(days=30),
                                           accept_test_mode=False), 0, 1, usable=usable))
    assert len(value) < 1_000_000 < len(parsed)  # the case under test

    producer = KafkaProducer(bootstrap_servers=isolated_bootstrap, max_request_size=2 * 1024 * 1024, **client_kwargs())
    producer.send(topic, value=value, key=b"grp1", partition=partition_for(b"grp1", settings.partitions))
    producer.flush()
    producer.close()

    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        wait_caught_up(isolated_bootstrap, settings.app_id, internal_topics(settings), timeout=120)
        assert worker.get("/readyz") == 200, worker.tail()
    finally:
        worker.stop()
    states = {k: orjson.loads(v) for k, v in table_snapshot(isolated_bootstrap, settings.app_id, "accounts").items()}
    assert sum(s["events_seen"] for s in states.values()) == TRACKS + 1, worker.tail()

