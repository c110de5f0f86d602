"""What every built-in parser promises, checked over every fixture; and the shared parsing helpers."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from connectors.base import Ignored, ParseError, SourceParser
from connectors.registry import parser_for, vendors
from connectors.parsing import (
    activity_type,
    crm_identifier,
    deal_type,
    email_domain,
    parse_time,
    strip_emails,
    web_domain,
)
from schemas.events import LifecycleEvent
from schemas.kinds import KINDS
from tests.fixtures.vendors import HERE, INGESTED, body

BUILTIN = ["hubspot", "salesforce", "segment", "stripe", "zendesk"]
FIXTURES = sorted((p.parent.name, p.name) for p in HERE.glob("*/*.json"))
NAMESPACES = {"hubspot.company", "hubspot.contact", "hubspot.deal", "salesforce.account", "salesforce.lead",
              "salesforce.contact", "salesforce.opportunity", "stripe.customer", "segment.group", "segment.user",
              "segment.anonymous", "zendesk.organization", "zendesk.user", "zendesk.ticket", "domain"}


def test_the_five_vendors_are_registered_as_source_parsers():
    assert set(BUILTIN) <= set(vendors())
    for vendor in BUILTIN:
        parser = parser_for(vendor)
        assert isinstance(parser, SourceParser)
        assert parser.vendor == vendor


@pytest.mark.parametrize("vendor, name", FIXTURES)
def test_every_fixture_payload_parses_to_the_contract_or_is_refused_with_a_known_reason(vendor, name):
    parser = parser_for(vendor)
    for payload in parser.split(body(vendor, name)):
        assert isinstance(parser.event_id(payload), str) and parser.event_id(payload)
        assert isinstance(parser.key(payload), str) and parser.key(payload)
        try:
            events = parser.parse(payload, INGESTED)
        except Ignored as exc:
            assert exc.type, f"{vendor}/{name}: an ignored payload names its type"
            continue
        except ParseError as exc:
            assert exc.reason in {"not_an_object", "missing_field", "bad_timestamp", "unsupported_type", "invalid",
                                  "enrichment_failed"}
            continue
        assert events, f"{vendor}/{name}: a parsed payload must yield events"
        for event in events:
            assert event.kind in KINDS
            assert event.vendor == vendor and event.source == parser.source
            assert event.event_id.startswith(f"{vendor}:")
            assert event.ingested_at == INGESTED
            assert all(i.split(":", 1)[0] in NAMESPACES for i in event.identifiers), event.identifiers
            assert "@" not in str(event.attributes), "emails belong on person, never in attributes"
            assert LifecycleEvent.from_json(event.to_json()) == event
        ids = [e.event_id for e in events]
        assert len(ids) == len(set(ids)), "events from one payload need distinct ids"


@pytest.mark.parametrize("vendor", BUILTIN)
def test_split_event_id_and_key_never_raise_anything_but_parse_error(vendor):
    parser = parser_for(vendor)
    for junk in ({}, {"id": None, "data": None, "ticket": None}, {"payload": {"ChangeEventHeader": {}}},
                 {"properties": {}}, {"child_events": "x"}, {"ticket": {"organization": "x"}}):
        assert parser.split(junk) == [junk]
        assert isinstance(parser.event_id(junk), str)
        assert isinstance(parser.key(junk), str)
        with pytest.raises(ParseError):
            parser.parse(junk, INGESTED)
    for not_object in ("text", 42, None, [1, 2]):
        with pytest.raises(ParseError) as exc:
            parser.split(not_object)
        assert exc.value.reason == "not_an_object"
    with pytest.raises(ParseError) as exc:
        parser.parse(["not", "an", "object"], INGESTED)  # type: ignore[arg-type]
    assert exc.value.reason == "not_an_object"


@pytest.mark.parametrize("value, epoch, expected", [
    ("2026-01-05T09:00:00Z", "s", "2026-01-05T09:00:00+00:00"),
    ("2026-01-05T09:00:00.000+0000", "s", "2026-01-05T09:00:00+00:00"),
    ("2026-01-05T10:00:00+01:00", "s", "2026-01-05T09:00:00+00:00"),
    (1767603600, "s", "2026-01-05T09:00:00+00:00"),
    ("1767603600000", "ms", "2026-01-05T09:00:00+00:00"),
])
def test_parse_time_accepts_iso_with_offset_and_epochs(value, epoch, expected):
    assert parse_time(value, "t", epoch).isoformat() == expected


@pytest.mark.parametrize("value, epoch", [
    ("2026-01-05T09:00:00", "s"), ("05/01/2026", "s"), (True, "s"), (1767603600, "ms"), (1767603600000, "s"), ({}, "s"),
])
def test_parse_time_refuses_naive_unparseable_and_wrong_unit(value, epoch):
    with pytest.raises(ParseError) as exc:
        parse_time(value, "t", epoch)
    assert exc.value.reason == "bad_timestamp"


def test_domains_crm_ids_and_vocabulary():
    assert email_domain("Dana.Reyes@Northwind-Analytics.COM") == "northwind-analytics.com"
    assert email_domain("not an email") is None
    assert web_domain("https://www.Acme.io/pricing?x=1") == "acme.io"
    assert web_domain("acme.io:8443") == "acme.io"
    assert web_domain("n/a") is None
    assert crm_identifier(18274650011) == "hubspot.company:18274650011"
    assert crm_identifier("001Dn00000AbCdEIA3") == "salesforce.account:001Dn00000AbCdEIA3"
    assert crm_identifier("salesforce.account:001Dn00000AbCdE") == "salesforce.account:001Dn00000AbCdE"
    assert crm_identifier("ACME-42") is None
    assert [deal_type(v) for v in ("newbusiness", "existingbusiness", "renewal", "New Customer",
                                   "Existing Customer - Upgrade", "other")] == [
        "new_business", "expansion", "renewal", "new_business", "expansion", None]
    assert activity_type("Kick-off: Acme") == "kickoff"
    assert activity_type(None, "Quarterly Business Review") == "qbr"
    assert activity_type("Call", "Intro", medium="meeting") == "call"
    assert activity_type("G2 review request") == "review"
    assert strip_emails({"email": "a@b.co", "n": ["x@y.io", 1], "t": "mail a@b.co now"}) == {
        "n": [1], "t": "mail [email] now"}
    # an email key goes even when its value is not an address; nested, too
    assert strip_emails({"Email": None, "plan": {"email": "", "seats": 3}}) == {"plan": {"seats": 3}}
    clean = {"plan": {"seats": 3, "tags": ["a", "b"]}, "amount": 1.5}
    assert strip_emails(clean) == clean


def test_ingested_time_is_kept_and_event_time_is_the_vendors():
    later = datetime(2030, 1, 1, tzinfo=timezone.utc)
    [event] = parser_for("stripe").parse(body("stripe", "customer_created.json"), later)
    assert event.ingested_at == later and event.occurred_at.year == 2026
