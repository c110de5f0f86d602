"""HubSpot webhook notifications and CRM v3 objects → CRM events."""

from __future__ import annotations

import copy

from connectors.registry import parser_for
from tests.fixtures.vendors import INGESTED, errors, ignored, parse, payloads, summary

COMPANY = "hubspot.company:18274650011"
DEAL = "hubspot.deal:30219876543"
CONTACT = "hubspot.contact:90311"


def test_a_webhook_body_is_a_batch_of_notifications_one_record_each():
    parser = parser_for("hubspot")
    items = payloads("hubspot", "webhook_batch.json")
    assert [parser.event_id(i) for i in items] == [str(n) for n in range(1860327412, 1860327421) if n != 1860327414]
    assert [parser.key(i) for i in items] == [COMPANY, CONTACT, DEAL, COMPANY, DEAL, DEAL, DEAL, CONTACT]


def test_webhook_notifications_map_to_canonical_kinds():
    events = parse("hubspot", "webhook_batch.json")
    assert [(e.event_id, e.kind, e.occurred_at.isoformat(), e.identifiers) for e in events] == [
        ("hubspot:1860327412", "crm.lead_qualified", "2026-01-14T10:00:00+00:00", [COMPANY]),
        ("hubspot:1860327413", "crm.lead_status_changed", "2026-01-14T11:00:00+00:00", [CONTACT]),
        ("hubspot:1860327415", "crm.opportunity_created", "2026-01-21T10:00:00+00:00", [DEAL]),
        ("hubspot:1860327416", "crm.company_updated", "2026-01-21T10:00:01+00:00", [COMPANY, DEAL]),
        ("hubspot:1860327417", "crm.deal_stage_changed", "2026-01-28T10:00:00+00:00", [DEAL]),
        ("hubspot:1860327418", "crm.deal_won", "2026-02-13T10:00:00+00:00", [DEAL]),
        ("hubspot:1860327419", "crm.owner_changed", "2026-02-14T10:00:00+00:00", [DEAL]),
        ("hubspot:1860327420", "crm.contact_created", "2026-01-14T08:40:00+00:00", [CONTACT]),
    ]
    mql, status, created, association, stage, won, owner, contact = events
    assert {k: mql.attributes[k] for k in ("qualification", "raw_value", "property")} == {
        "qualification": "mql", "raw_value": "marketingqualifiedlead", "property": "lifecyclestage"}
    assert status.attributes["status"] == "IN_PROGRESS"
    assert created.attributes["deal_id"] == "30219876543"
    assert [(lk.a, lk.b, lk.reason) for lk in association.links] == [
        (DEAL, COMPANY, "hubspot deal.associationChange DEAL_TO_COMPANY")]
    assert (stage.attributes["stage"], stage.attributes["raw_stage"]) == ("presentationscheduled",) * 2
    assert won.attributes["deal_id"] == "30219876543" and won.attributes["stage"] == "closedwon"
    assert (owner.attributes["object"], owner.attributes["owner_id"]) == ("deal", "612004")
    assert contact.person.id == CONTACT  # generic object.creation with objectTypeId 0-1


def test_other_lifecycle_stages_and_lost_deals():
    base = payloads("hubspot", "webhook_batch.json")[0]
    customer = {**base, "propertyValue": "customer"}
    [event] = parser_for("hubspot").parse(customer, INGESTED)
    assert (event.kind, event.attributes["lifecycle_stage"]) == ("crm.lifecycle_stage_changed", "customer")
    sql = {**base, "propertyValue": "salesqualifiedlead"}
    [event] = parser_for("hubspot").parse(sql, INGESTED)
    assert (event.kind, event.attributes["qualification"]) == ("crm.lead_qualified", "sql")
    lost = {**payloads("hubspot", "webhook_batch.json")[5], "propertyValue": "closedlost"}
    [event] = parser_for("hubspot").parse(lost, INGESTED)
    assert event.kind == "crm.deal_lost"


def test_removed_association_asserts_no_link():
    notification = copy.deepcopy(payloads("hubspot", "webhook_batch.json")[3])
    notification["associationRemoved"] = True
    [event] = parser_for("hubspot").parse(notification, INGESTED)
    assert event.links == [] and event.attributes["association_removed"] is True


def test_closed_won_deal_object_yields_creation_and_win_with_deal_properties():
    created, won = parse("hubspot", "deal_closedwon.json")
    links = [(DEAL, COMPANY, "hubspot deal association deal_to_company")]
    assert summary(created, "stage", "segment", "deal_type", "amount") == {
        "event_id": "hubspot:deal-30219876543#created", "kind": "crm.opportunity_created",
        "occurred_at": "2026-01-21T10:00:00Z", "identifiers": [COMPANY, DEAL, CONTACT], "links": links,
        "person": None,
        # Today's stage is not the one it was created in, so the creation names none.
        "attr.stage": None, "attr.segment": "mid_market", "attr.deal_type": "new_business", "attr.amount": 14400,
    }
    assert summary(won, "segment", "deal_type", "promised_time_to_value", "amount", "currency", "owner_id") == {
        "event_id": "hubspot:deal-30219876543#dealstage:closedwon", "kind": "crm.deal_won",
        "occurred_at": "2026-02-13T10:00:00Z",  # closedate, not the poll time
        "identifiers": [COMPANY, DEAL, CONTACT], "links": links, "person": None,
        "attr.segment": "mid_market", "attr.deal_type": "new_business",
        "attr.promised_time_to_value": "5 business days", "attr.amount": 14400, "attr.currency": "USD",
        "attr.owner_id": "588231",
    }


def test_polling_the_same_deal_again_yields_the_same_event_ids():
    first = [e.event_id for e in parse("hubspot", "deal_closedwon.json")]
    later = copy.deepcopy(payloads("hubspot", "deal_closedwon.json")[0])
    later["updatedAt"] = "2026-03-01T08:00:00Z"
    later["properties"]["amount"] = "15000"
    parser = parser_for("hubspot")
    assert [e.event_id for e in parser.parse(later, INGESTED)] == first
    assert parser.event_id(later) != parser.event_id(payloads("hubspot", "deal_closedwon.json")[0])


def test_a_just_created_deal_object_is_only_an_opportunity_in_its_first_stage():
    fresh = copy.deepcopy(payloads("hubspot", "deal_closedwon.json")[0])
    fresh["properties"].update(dealstage="appointmentscheduled", hs_is_closed="false", hs_is_closed_won="false")
    fresh["updatedAt"] = fresh["createdAt"]
    [event] = parser_for("hubspot").parse(fresh, INGESTED)
    assert (event.kind, event.attributes["stage"]) == ("crm.opportunity_created", "appointmentscheduled")


def test_deal_history_yields_one_event_per_change_in_time_order():
    events = parse("hubspot", "deal_history_lost.json")
    deal, company = "hubspot.deal:30219877000", "hubspot.company:18274650777"
    assert [(e.event_id, e.kind, e.occurred_at.isoformat()) for e in events] == [
        ("hubspot:deal-30219877000#created", "crm.opportunity_created", "2026-02-02T09:00:00+00:00"),
        ("hubspot:deal-30219877000#dealstage:contractsent@1772449200000", "crm.deal_stage_changed",
         "2026-03-02T11:00:00+00:00"),
        ("hubspot:deal-30219877000#dealstage:closedlost@1774024200000", "crm.deal_lost", "2026-03-20T16:30:00+00:00"),
        ("hubspot:deal-30219877000#hubspot_owner_id:588231@1771578000000", "crm.owner_changed",
         "2026-02-20T09:00:00+00:00"),
    ]
    assert all(e.identifiers == [company, deal] for e in events)
    created, _, lost, owner = events
    assert (created.attributes["stage"], created.attributes["segment"]) == ("appointmentscheduled", "enterprise")
    assert created.attributes["amount"] == 52000.5
    assert lost.attributes["reason"] == "Chose a competitor"
    assert (owner.attributes["owner_id"], owner.attributes["previous_owner_id"]) == ("588231", "601100")


def test_meeting_and_email_objects_are_activities_typed_by_purpose():
    [kickoff] = parse("hubspot", "meeting_kickoff.json")
    assert summary(kickoff, "activity_type", "subject", "owner_id", "medium") == {
        "event_id": "hubspot:meeting-61022334455", "kind": "crm.activity_logged",
        "occurred_at": "2026-02-17T14:00:00Z", "identifiers": [COMPANY, DEAL, CONTACT], "links": [],
        "person": None, "attr.activity_type": "kickoff", "attr.subject": "Northwind x Example: onboarding",
        "attr.owner_id": "612004", "attr.medium": "meeting",
    }
    [welcome] = parse("hubspot", "email_welcome.json")
    assert (welcome.attributes["activity_type"], welcome.attributes["medium"]) == ("welcome", "email")
    assert welcome.identifiers == [COMPANY]
    untitled = copy.deepcopy(payloads("hubspot", "meeting_kickoff.json")[0])
    untitled["properties"].update(hs_activity_type=None, hs_meeting_title="Weekly sync")
    [meeting] = parser_for("hubspot").parse(untitled, INGESTED)
    assert meeting.attributes["activity_type"] == "meeting"
    qbr = copy.deepcopy(untitled)
    qbr["properties"]["hs_meeting_title"] = "Q3 Business Review"
    assert parser_for("hubspot").parse(qbr, INGESTED)[0].attributes["activity_type"] == "qbr"


def test_contact_page_yields_contacts_with_company_link_and_qualification_at_its_date():
    events = parse("hubspot", "contacts_page.json")
    dana_created, dana_sql, sam_created, sam_lead = events
    links = [(CONTACT, COMPANY, "hubspot contact association contact_to_company")]
    assert summary(dana_created) == {
        "event_id": "hubspot:contact-90311#created", "kind": "crm.contact_created",
        "occurred_at": "2026-01-14T08:00:00Z",
        "identifiers": [COMPANY, "domain:northwind-analytics.com", CONTACT], "links": links,
        "person": (CONTACT, "dana.reyes@northwind-analytics.com"),
    }
    assert (dana_sql.kind, dana_sql.attributes["qualification"]) == ("crm.lead_qualified", "sql")
    assert dana_sql.occurred_at.isoformat() == "2026-01-20T09:30:00+00:00"
    assert sam_created.identifiers == ["domain:gmail.com", "hubspot.contact:90455"]
    assert sam_lead.kind == "crm.lifecycle_stage_changed"
    assert parser_for("hubspot").key(payloads("hubspot", "contacts_page.json")[1]) == "hubspot.contact:90455"


def test_company_object_is_a_company_update_with_domain():
    [event] = parse("hubspot", "company.json")
    assert summary(event, "name", "domain", "segment") == {
        "event_id": "hubspot:company-18274650011-2026-01-12T15:00:00Z", "kind": "crm.company_updated",
        "occurred_at": "2026-01-12T15:00:00Z", "identifiers": [COMPANY, "domain:northwind-analytics.com"],
        "links": [], "person": None, "attr.name": "Northwind Analytics",
        "attr.domain": "northwind-analytics.com", "attr.segment": "mid_market",
    }


def test_deletions_unmapped_properties_and_associations_are_ignored_not_refused():
    got = ignored("hubspot", "webhook_unsupported.json")
    assert [t for t, _ in got][:3] == ["contact.privacyDeletion", "contact.propertyChange", "deal.associationChange"]
    assert "'firstname'" in got[1][1]
    assert "DEAL_TO_LINE_ITEM" in got[2][1]
    assert len(got) == 4


def test_missing_ids_and_times_are_refused_and_seconds_for_milliseconds_is_a_bad_timestamp():
    assert [r for r, _ in errors("hubspot", "webhook_missing_fields.json")] == [
        "missing_field", "missing_field", "bad_timestamp"]
