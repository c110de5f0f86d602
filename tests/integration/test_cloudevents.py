"""Every record on the transitions, handoffs, SLA-breach and identity topics is a CloudEvent in
Kafka binary mode: the cloudevents SDK's Kafka binding decodes what a real worker wrote."""

from __future__ import annotations

import asyncio
from datetime import datetime

import orjson
import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event

from connectors.replay import replay_file
from connectors.sink import RecordSink
from pipeline.sample import SampleConfig, generate, write_jsonl
from pipeline.topic_reads import read_topic
from schemas import cloudevents as ce
from schemas import topics as T
from schemas.handoffs import Handoff
from schemas.identity import AccountMerged, IdentityDecision, parse_identity_record
from schemas.sla import SlaBreach
from schemas.transitions import StageTransition

pytestmark = pytest.mark.integration

DECODE = {
    T.STAGE_TRANSITIONS: StageTransition.model_validate_json,
    T.HANDOFFS: Handoff.model_validate_json,
    T.SLA_BREACHES: SlaBreach.model_validate_json,
    T.IDENTITY: parse_identity_record,
}


def expected_id(record: object) -> str:
    match record:
        case StageTransition():
            return record.transition_id
        case Handoff():
            return f"{record.handoff_id}:{record.version}"
        case SlaBreach():
            return record.record_id
        case IdentityDecision():
            return record.decision_id
        case AccountMerged():
            return record.merge_id
    raise AssertionError(record)


def test_the_sdk_decodes_every_output_record(start_worker, base_settings, tmp_path) -> None:
    path = tmp_path / "sample.jsonl"
    write_jsonl(generate(SampleConfig(accounts=6, seed=11)), path)
    worker, feed = start_worker("ce")

    async def replay() -> None:
        async with RecordSink(base_settings.bootstrap_servers) as sink:
            await replay_file(sink, path, progress=False)

    asyncio.run(replay())
    feed.caught_up(timeout=120)
    seen_types: set[str] = set()
    for topic, decode in DECODE.items():
        messages = read_topic(base_settings.bootstrap_servers, topic)
        assert messages, topic
        for m in messages:
            event = from_binary_event(KafkaMessage(headers=dict(m.headers), key=m.key, value=m.value))
            record = decode(m.value)
            assert event.get_specversion() == "1.0"
            assert event.get_id() == expected_id(record)
            assert event.get_source() == ce.source_for(feed.settings.app_id)
            assert event.get_type() == ce.ce_type(record) and ce.TYPES[event.get_type()] is type(record)
            assert event.get_subject() == (record.into_account if isinstance(record, AccountMerged)
                                           else record.account_id)
            assert isinstance(event.get_time(), datetime)
            assert event.get_datacontenttype() == "application/json"
            assert event.get_data() == orjson.loads(m.value)  # the value is the same JSON
            seen_types.add(event.get_type())
    assert {f"{ce.TYPE_PREFIX}.stage.transitioned", f"{ce.TYPE_PREFIX}.identity.decided"} <= seen_types
