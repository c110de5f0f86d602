"""The shared sink writes raw records and dead letters to the real broker, keyed and counted."""

from __future__ import annotations

import pytest

from connectors.sink import MAX_ORIGINAL_BYTES, RecordSink
from pipeline.metrics import CONNECTOR_RECORDS, DEAD_LETTERS
from pipeline.topics import ensure_topics
from schemas.base import utcnow
from schemas.events import DeadLetter, RawRecord, SourceKind
from schemas.topics import DEAD_LETTER, RAW, all_topic_names
from tests.connectors.transport_helpers import end_offsets, event_id, header, parsers, read_from, topics  # noqa: F401

pytestmark = pytest.mark.integration


def _count(vendor: str, transport: str, outcome: str) -> float:
    return CONNECTOR_RECORDS.labels(vendor, transport, outcome)._value.get()


async def test_raw_records_keyed_with_event_id_header(topics, parsers):
    topic = RAW[SourceKind.BILLING]
    start = await end_offsets(topics, topic)
    before = _count("stripe", "file", "produced")
    records = [RawRecord(source=SourceKind.BILLING, vendor="stripe", event_id=f"evt_sink_{i}", received_at=utcnow(),
                         transport="file", payload={"id": f"evt_sink_{i}", "object": "event", "customer": "cus_7",
                                                    "type": "invoice.paid", "data": {"object": {"customer": "cus_7"}}})
               for i in range(20)]
    async with RecordSink(topics) as sink:
        assert sink.connected
        await sink.send_all(records)
        expected_key = sink.key_of(records[0])
    got = await read_from(topics, start, expect=20)
    assert sorted(event_id(m) for m in got) == sorted(r.event_id for r in records)
    # same key → same partition → the vendor's order is kept
    assert {m.key.decode() for m in got} == {expected_key}
    assert len({m.partition for m in got}) == 1
    assert [RawRecord.from_json(m.value).event_id for m in sorted(got, key=lambda m: m.offset)] == \
        [r.event_id for r in records]
    assert RawRecord.from_json(got[0].value).payload == records[0].payload
    assert _count("stripe", "file", "produced") - before == 20


async def test_dead_letter_keeps_original_and_reason(topics, parsers):
    start = await end_offsets(topics, DEAD_LETTER)
    dl_before = DEAD_LETTERS.labels("connector", "not_json")._value.get()
    async with RecordSink(topics) as sink:
        await sink.dead_letter(reason="not_json", detail="line 3: unexpected character", original=b"{not json\xff",
                               vendor="stripe", transport="file")
        big = b"x" * (MAX_ORIGINAL_BYTES + 10)
        await sink.dead_letter(reason="invalid", detail="huge", original=big, vendor="segment", transport="webhook")
    got = await read_from(topics, start, expect=2)
    letters = [DeadLetter.from_json(m.value) for m in got]
    first = next(d for d in letters if d.reason == "not_json")
    assert first.stage == "connector" and first.vendor == "stripe" and first.source == "billing"
    assert "line 3" in first.detail
    assert first.original.startswith("{not json")
    assert first.original_base64 is not None  # not UTF-8: the exact bytes are kept too
    cut = next(d for d in letters if d.reason == "invalid")
    assert len(cut.original) == MAX_ORIGINAL_BYTES and "cut" in cut.detail
    assert DEAD_LETTERS.labels("connector", "not_json")._value.get() - dl_before == 1


async def test_topics_existing_already_is_fine(topics, parsers):
    # the caller creates topics; doing it twice and producing after must not fail
    assert ensure_topics(topics, all_topic_names(), partitions=3) == []
    async with RecordSink(topics) as sink:
        rec = RawRecord(source=SourceKind.SUPPORT, vendor="zendesk", event_id="zd-1", received_at=utcnow(),
                        transport="poll", payload={"id": "zd-1", "ticket_id": 5})
        meta = await sink.send_and_wait(rec)
        assert meta.topic == RAW[SourceKind.SUPPORT]


async def test_unknown_vendor_key_falls_back_to_event_id(topics, parsers):
    rec = RawRecord(source=SourceKind.PRODUCT, vendor="nobody", event_id="e-1", received_at=utcnow(),
                    transport="file", payload={})
    assert RecordSink.key_of(rec) == "e-1"


async def test_not_started_sink_refuses_clearly():
    sink = RecordSink("127.0.0.1:1")
    assert not sink.connected
    with pytest.raises(Exception, match="not started"):
        await sink.flush()
