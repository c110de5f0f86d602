"""Issue 10 item 9: an event time beyond now + the allowed skew is dead-lettered at parse
(``future_event_time``) so it never moves an SLA clock; Segment corrects client clocks."""

from __future__ import annotations

import json
from datetime import timedelta

from connectors.registry import parse_raw
from pipeline.ingest import DEFAULT_FUTURE_SKEW, parse_record
from pipeline.settings import Settings
from schemas import topics as T
from schemas.events import RawRecord, SourceKind
from tests import histories as h

NOW = h.day(3)


def _parse(record: RawRecord, **kw):
    return parse_record(record.model_dump_json().encode(), T.RAW[record.source], "raw/0/7", now=NOW,
                        accept_test_mode=False, **kw)


def test_the_setting_defaults_to_one_hour_like_parse_record() -> None:
    assert Settings().future_skew_seconds == DEFAULT_FUTURE_SKEW.total_seconds() == 3600


def test_an_event_beyond_now_plus_skew_is_dead_lettered_with_its_bytes() -> None:
    record = h.future_dated(4242, NOW + timedelta(days=60))
    parsed = _parse(record)
    assert parsed.outcome == "dead_letter" and not parsed.events
    letter = parsed.dead_letter
    assert letter is not None and (letter.stage, letter.reason) == ("parse", "future_event_time")
    assert letter.vendor == "hubspot" and "beyond now" in letter.detail
    assert json.loads(letter.original)["payload"]["occurredAt"] == record.payload["occurredAt"]


def test_within_the_skew_is_accepted_and_the_skew_is_configurable() -> None:
    soon = h.future_dated(4243, NOW + timedelta(minutes=59))
    assert _parse(soon).outcome == "accepted"
    assert _parse(soon, future_skew=timedelta(minutes=30)).dead_letter.reason == "future_event_time"
    far = h.future_dated(4244, NOW + timedelta(days=60))
    assert _parse(far, future_skew=timedelta(days=90)).outcome == "accepted"


def _segment_track(timestamp: str, sent: str | None, received: str | None) -> RawRecord:
    payload = {"type": "track", "messageId": "ajs-clock-1", "userId": "u-1", "event": "Report Built",
               "properties": {}, "context": {"groupId": "ws-1"}, "timestamp": timestamp}
    if sent:
        payload["sentAt"] = sent
    if received:
        payload["receivedAt"] = received
    return RawRecord(source=SourceKind.PRODUCT, vendor="segment", event_id="ajs-clock-1", received_at=NOW,
                     transport="webhook", payload=payload)


def test_segment_corrects_a_client_clock_running_ahead_with_sent_and_received_at() -> None:
    # The device clock is 3 days ahead: it stamped the call and its sending 3 days in the future.
    record = _segment_track("2025-03-09T15:00:00.000Z", sent="2025-03-09T15:00:05.000Z",
                            received="2025-03-06T15:00:06.000Z")
    [event] = parse_raw(record)
    assert event.occurred_at.isoformat() == "2025-03-06T15:00:01+00:00"  # receivedAt - (sentAt - timestamp)
    assert event.attributes["time_corrected"] is True
    assert parse_record(record.model_dump_json().encode(), T.RAW_PRODUCT, "p/0/1", now=NOW,
                        accept_test_mode=False).outcome == "accepted"


def test_segment_without_receive_times_is_capped_at_our_ingestion_and_a_sane_clock_is_untouched() -> None:
    ahead = _segment_track("2025-05-01T00:00:00.000Z", sent=None, received=None)
    [event] = parse_raw(ahead)
    assert event.occurred_at == NOW and event.attributes["time_corrected"] is True
    sane = _segment_track("2025-03-05T10:00:00.000Z", sent="2025-03-05T10:00:00.120Z",
                          received="2025-03-05T10:00:00.900Z")
    [event] = parse_raw(sane)
    assert event.occurred_at.isoformat() == "2025-03-05T10:00:00+00:00" and "time_corrected" not in event.attributes


def test_a_future_dated_record_fires_no_sla_for_anyone_on_replay() -> None:
    """The deal won on day 1 has its kickoff deadline on day 8; the wall clock is day 3. A record
    dated two months ahead would move the watermark past that deadline; dead-lettered, it cannot."""
    history = h.won_without_kickoff(5001) + [h.future_dated(5002, h.day(60))]
    out, stats = h.replay(history, now=NOW, partitions=1)
    assert [d.reason for d in stats.dead_letters] == ["future_event_time"]
    assert not [b for b in out.breaches if b.sla_id == "customer-kickoff"]
    assert {t.account_id for t in out.transitions} == {"acct:hubspot.company:5001"}
    # The same bytes with the check effectively off: the record is accepted, and the SLA clock
    # still stops at the wall clock (core.partition), so nothing fires early either way.
    control, control_stats = h.replay(history, now=NOW, partitions=1, future_skew=timedelta(days=365))
    assert not control_stats.dead_letters
    assert "acct:hubspot.company:5002" in {t.account_id for t in control.transitions}
    assert not [b for b in control.breaches if b.sla_id == "customer-kickoff"]
