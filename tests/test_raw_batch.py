"""The raw topics' batch format (schemas.raw_batch): what producers write and the ingest reads."""

from __future__ import annotations

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from schemas.raw_batch import MAX_BYTES, MAX_RECORDS, Batcher, batched, pack, partition_for, unpack


def _record(i: int, size: int = 0) -> bytes:
    return orjson.dumps({"source": "crm", "event_id": f"e{i}", "pad": "x" * size})


def test_a_batch_is_its_records_one_per_line_and_one_record_is_a_batch_of_one():
    records = [_record(i) for i in range(3)]
    assert unpack(pack(records)) == records
    assert unpack(records[0]) == [records[0]]
    assert pack(records[:1]) == records[0]  # a producer writing one RawRecord per message is a valid batch


def test_a_record_that_breaks_lines_is_refused():
    with pytest.raises(ValueError):
        pack([b'{"a":\n1}'])


def test_a_pretty_printed_document_stays_one_record_and_garbage_lines_stay_apart():
    pretty = orjson.dumps({"source": "crm", "payload": {"a": 1}}, option=orjson.OPT_INDENT_2)
    assert unpack(pretty) == [pretty]
    assert unpack(b'{"a": 1}\nnot json\n{"b": 2}\n') == [b'{"a": 1}', b"not json", b'{"b": 2}']


def test_batches_close_at_max_records_or_max_bytes_and_keep_order_per_partition():
    messages = [("t", i % 2, b"k%d" % i, _record(i)) for i in range(MAX_RECORDS * 2 + 10)]
    out = list(batched(messages))
    assert all(b.count <= MAX_RECORDS for b in out)
    for partition in (0, 1):
        lines = [r for b in out if b.partition == partition for r in unpack(b.value())]
        assert lines == [m[3] for m in messages if m[1] == partition]
    big = [("t", 0, b"k", _record(i, size=MAX_BYTES // 3)) for i in range(5)]
    sizes = [len(b.value()) for b in batched(big)]
    assert all(size <= MAX_BYTES for size in sizes) and len(sizes) == 3


def test_a_linger_closes_only_a_batch_still_open():
    batcher = Batcher()
    batch, closed = batcher.add("t", 0, b"k", _record(1))
    assert closed is None
    assert batcher.close(batch) is batch
    assert batcher.close(batch) is None  # already sent: the second linger finds nothing


def test_partition_is_kafkas_default_partitioner_as_aiokafka_computes_it():
    partitioner = DefaultPartitioner()
    for key in (b"hubspot.company:1", b"cus_9", b"e-77", b"x"):
        assert partition_for(key, 5) == partitioner(key, [0, 1, 2, 3, 4], [0, 1, 2, 3, 4])


def test_a_bad_record_in_a_batch_is_dead_lettered_alone_with_its_own_bytes_and_index():
    from pipeline.ingest import parse_message
    from schemas import topics as T
    from tests import histories as h

    good = [r.to_json() for r in h.contact_first(900700, 500700)[:2]]
    message = pack([good[0], b'{"source": "crm", "not": "a raw record"}', good[1]])
    parsed = parse_message(message, T.RAW_CRM, "lifecycle.raw.crm/0/41", now=h.day(400), accept_test_mode=False)
    assert [r.outcome for r in parsed.records] == ["accepted", "dead_letter", "accepted"]
    letter = parsed.records[1].dead_letter
    assert letter is not None and letter.reason == "invalid_envelope"
    assert letter.original == '{"source": "crm", "not": "a raw record"}' and letter.source_topic == T.RAW_CRM
    # its place in the batch is part of its id: the same bytes one record later are another letter
    moved = parse_message(pack([good[0], good[1], b'{"source": "crm", "not": "a raw record"}']), T.RAW_CRM,
                          "lifecycle.raw.crm/0/41", now=h.day(400), accept_test_mode=False).records[2].dead_letter
    assert moved is not None and moved.dead_letter_id != letter.dead_letter_id
    # the good records' events, each list in event time, one list per record (one merge item each)
    assert len(parsed.events) == 3 and parsed.events[1] == [] and parsed.events[0] and parsed.events[2]
    assert {s.origin for s in parsed.events[2]} == {"lifecycle.raw.crm/0/41:2"}


def test_the_parse_stage_hands_the_merge_exactly_what_parsing_in_place_gives():
    """What the parse agent sends (``schemas.parsed``) and the merge reads back without pydantic:
    the accepted records' events in event time, each with its record's bytes and origin as
    ``parse_message`` named them, and each event's account message the same JSON as the model's."""
    from pipeline.ingest import Arrived, parse_message, to_parsed
    from schemas.base import dumps
    from schemas import topics as T
    from schemas.accounts import AccountMessage
    from schemas.events import LifecycleEvent
    from tests import histories as h

    good = [r.to_json() for r in h.contact_first(900700, 500700)[:2]]
    where = "lifecycle.raw.crm/2/41"
    for records in ([good[0], b'{"source": "crm", "not": "a raw record"}', good[1]], [good[1]]):
        parsed = parse_message(pack(records), T.RAW_CRM, where, now=h.day(400), accept_test_mode=False)
        sent = Arrived.of(dumps(to_parsed(parsed, 41, highwater=50)))
        assert (sent.offset, sent.position, sent.highwater, sent.records) == (41, 42, 50, len(records))
        taken = sent.sourced(where)
        expected = [events for events in parsed.events if events]  # the dead record carries nothing
        assert [[(LifecycleEvent.model_validate(s.event.body), s.original, s.origin) for s in events]
                for events in taken] == [[(s.event, s.original, s.origin) for s in events] for events in expected]
        assert [{s.origin for s in events} for events in taken] == (
            [{f"{where}:0"}, {f"{where}:2"}] if len(records) == 3 else [{where}])
        for got, want in zip(taken[0], expected[0]):
            assert (got.event.event_id, got.event.occurred_at, got.event.identifiers) == (
                want.event.event_id, want.event.occurred_at, want.event.identifiers)
            assert [tuple(link) for link in got.event.links] == [(k.a, k.b, k.reason) for k in want.event.links]
            want.event.account_id = "acct:x"
            assert AccountMessage.model_validate_json(got.event.message("acct:x", "ingest", 7)) == AccountMessage(
                type="event", account_id="acct:x", origin="ingest", seq=7, event=want.event)


def test_the_merge_refuses_a_value_that_is_not_a_parsed_message():
    from pipeline.ingest import Arrived

    for bad in (b"not json", b'{"offset": 1}', b"[1, 2]"):
        with pytest.raises((ValueError, KeyError, TypeError)):
            Arrived.of(bad)


def test_a_records_bytes_travel_to_the_merge_only_where_identity_resolution_will_dead_letter_it():
    """The merge needs a record's bytes only for the dead letter of an event without a usable
    identifier, which the identity settings alone decide: the parse stage carries them for such
    records and for no other, and the dead letter at resolution has them, as parsed in place."""
    from datetime import datetime, timezone

    from pipeline.core.identity import IdentityResolver, UnresolvableEvent, UsableIdentifiers
    from pipeline.core.journey import IdentityConfig
    from pipeline.ingest import Arrived, Parsed, ParsedMessage, Sourced, resolve_event, to_parsed, unresolvable_letter
    from schemas.base import dumps
    from schemas.events import LifecycleEvent

    at = datetime(2026, 3, 2, tzinfo=timezone.utc)

    def sourced(i: int, identifiers: list[str]) -> Sourced:
        event = LifecycleEvent(event_id=f"segment:m{i}", source="product", vendor="segment", kind="product.track",
                               occurred_at=at, ingested_at=at, identifiers=identifiers)
        return Sourced(event, _record(i), f"lifecycle.raw.product/0/7:{i}")

    config = IdentityConfig()
    kept = sourced(0, ["segment.group:g1", "domain:gmail.com"])   # a usable id beside a free-mail domain
    refused = sourced(1, ["domain:gmail.com"])                     # nothing resolution may use
    parsed = ParsedMessage([Parsed("accepted", "product", [kept.event]), Parsed("accepted", "product", [refused.event])],
                           [[kept], [refused]])
    usable = UsableIdentifiers(config)
    batch = to_parsed(parsed, 7, 8, usable=usable)
    assert [r.original for r in batch.parsed] == [None, _record(1).decode()]
    assert len(dumps(batch)) < len(dumps(to_parsed(parsed, 7, 8)))   # no usable: every record's bytes

    # what the merge reads back resolves as the events do in place, and the refused one's letter
    # holds its record's bytes
    [[got_kept], [got_refused]] = Arrived.of(dumps(batch)).sourced("lifecycle.raw.product/0/7")
    resolver = IdentityResolver(config, {}, {})
    assert resolve_event(resolver, got_kept.event).account_id is not None
    outcome = resolve_event(resolver, got_refused.event)
    assert outcome.account_id is None and outcome.unresolvable
    with pytest.raises(UnresolvableEvent):
        IdentityResolver(config, {}, {}).resolve(refused.event)
    topic = "lifecycle.raw.product"
    letter = unresolvable_letter(got_refused, outcome.unresolvable, topic=topic, now=at)
    assert letter == unresolvable_letter(refused, outcome.unresolvable, topic=topic, now=at)
    assert letter.original == _record(1).decode() and letter.reason == "no_usable_identifier"

    # a merge under stricter settings than its parser's (domain fallback off): the parser found
    # the event resolvable and sent no bytes, so the canonical event stands in for them, and
    # the letter says so
    strict = IdentityConfig(email_domain_fallback=False)
    company = sourced(2, ["domain:acme.com"])
    assert usable.resolvable(company.event.identifiers) and not UsableIdentifiers(strict).resolvable(
        company.event.identifiers)
    assert to_parsed(ParsedMessage([Parsed("accepted", "product", [company.event])], [[company]]), 7, 8,
                     usable=usable).parsed[0].original is None
    outcome = resolve_event(IdentityResolver(strict, {}, {}), company.event)
    letter = unresolvable_letter(Sourced(company.event, None, company.origin), outcome.unresolvable, topic=topic, now=at)
    assert orjson.loads(letter.original)["event_id"] == "segment:m2" and "canonical event" in letter.detail
