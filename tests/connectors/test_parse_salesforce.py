"""Salesforce Change Data Capture events and sObject records → CRM events."""

from __future__ import annotations

import copy

import pytest

from connectors.base import ParseError
from connectors.registry import parser_for
from tests.fixtures.vendors import INGESTED, errors, ignored, parse, payloads, summary

LEAD = "salesforce.lead:00QDn00000Lq7dCMAR"
ACCOUNT = "salesforce.account:001Dn00000AbCdEIA3"
OPP = "salesforce.opportunity:006Dn00000Hk2wXIAR"


def test_lead_create_is_a_contact_with_person_and_email_domain():
    [event] = parse("salesforce", "cdc_lead_create.json")
    assert summary(event, "lifecycle_stage", "owner_id") == {
        "event_id": "salesforce:18734201#created", "kind": "crm.contact_created",
        "occurred_at": "2026-01-13T09:00:00Z", "identifiers": ["domain:globex-logistics.com", LEAD], "links": [],
        "person": (LEAD, "priya.n@globex-logistics.com"),
        "attr.lifecycle_stage": "Open - Not Contacted", "attr.owner_id": "005Dn000003hT9aIAE",
    }
    assert event.person.name == "Priya Natarajan"


def test_lead_status_marketing_qualified_is_mql():
    [event] = parse("salesforce", "cdc_lead_mql.json")
    assert summary(event, "qualification", "raw_value", "property") == {
        "event_id": "salesforce:18734377#status:marketingqualified", "kind": "crm.lead_qualified",
        "occurred_at": "2026-01-20T10:00:00Z", "identifiers": [LEAD], "links": [], "person": (LEAD, None),
        "attr.qualification": "mql", "attr.raw_value": "Marketing Qualified", "attr.property": "Status",
    }


@pytest.mark.parametrize("status, expected", [
    ("MQL", "crm.lead_qualified"), ("Sales Qualified", "crm.lead_qualified"), ("SQL - Accepted", "crm.lead_qualified"),
    ("Working - Contacted", "crm.lead_status_changed"), ("Unqualified", "crm.lead_status_changed"),
])
def test_lead_status_vocabulary(status, expected):
    payload = copy.deepcopy(payloads("salesforce", "cdc_lead_mql.json")[0])
    payload["payload"]["Status"] = status
    [event] = parser_for("salesforce").parse(payload, INGESTED)
    assert event.kind == expected


def test_lead_conversion_is_sql_and_links_lead_contact_opportunity_to_the_account():
    status, converted = parse("salesforce", "cdc_lead_converted.json")
    assert status.kind == "crm.lead_status_changed" and status.attributes["status"] == "Closed - Converted"
    assert summary(converted, "qualification", "property") == {
        "event_id": "salesforce:18734500#converted", "kind": "crm.lead_qualified",
        "occurred_at": "2026-01-27T10:00:00Z", "identifiers": [ACCOUNT, LEAD],
        "links": [(LEAD, ACCOUNT, "salesforce Lead.ConvertedAccountId"),
                  ("salesforce.contact:003Dn00000Qr5tUIAR", ACCOUNT, "salesforce Lead.ConvertedContactId"),
                  (OPP, ACCOUNT, "salesforce Lead.ConvertedOpportunityId")],
        "person": (LEAD, None), "attr.qualification": "sql", "attr.property": "IsConverted",
    }
    assert parser_for("salesforce").key(payloads("salesforce", "cdc_lead_converted.json")[0]) == ACCOUNT


def test_opportunity_create_carries_deal_fields_and_the_account_link():
    [event] = parse("salesforce", "cdc_opportunity_create.json")
    assert summary(event, "stage", "raw_stage", "deal_type", "segment", "amount", "promised_time_to_value") == {
        "event_id": "salesforce:18734501#created", "kind": "crm.opportunity_created",
        "occurred_at": "2026-01-27T10:00:00Z", "identifiers": [ACCOUNT, OPP],
        "links": [(OPP, ACCOUNT, "salesforce Opportunity.AccountId")], "person": None,
        "attr.stage": "prospecting", "attr.raw_stage": "Prospecting", "attr.deal_type": "new_business",
        "attr.segment": "enterprise", "attr.amount": 96000, "attr.promised_time_to_value": "30 days",
    }


def test_is_won_update_is_a_win_identified_by_transaction_key_without_replay_id():
    [event] = parse("salesforce", "cdc_opportunity_won.json")
    assert (event.event_id, event.kind, event.occurred_at.isoformat(), event.identifiers) == (
        "salesforce:0004a1e2-95b3-3c1d-7e2f-bd1fc7d4a0f0:1#stage:closedwon", "crm.deal_won",
        "2026-03-13T10:00:00+00:00", [OPP])
    assert event.attributes["deal_id"] == "006Dn00000Hk2wXIAR"


def test_closed_lost_and_plain_stage_moves():
    won = payloads("salesforce", "cdc_opportunity_won.json")[0]
    lost = copy.deepcopy(won)
    lost["payload"].update(StageName="Closed Lost", IsWon=False, Loss_Reason__c="Budget")
    lost["payload"]["ChangeEventHeader"]["changedFields"] = ["StageName", "IsClosed", "LastModifiedDate"]
    [event] = parser_for("salesforce").parse(lost, INGESTED)
    assert (event.kind, event.attributes["reason"]) == ("crm.deal_lost", "Budget")
    moved = copy.deepcopy(won)
    moved["payload"] = {"ChangeEventHeader": {**won["payload"]["ChangeEventHeader"],
                                              "changedFields": ["StageName", "LastModifiedDate"]},
                        "StageName": "Negotiation/Review"}
    [event] = parser_for("salesforce").parse(moved, INGESTED)
    assert (event.kind, event.attributes["stage"]) == ("crm.deal_stage_changed", "negotiationreview")


def test_one_cdc_event_for_several_records_becomes_one_event_per_record():
    events = parse("salesforce", "cdc_owner_change_bulk.json")
    ids = ["006Dn00000Hk2wXIAR", "006Dn00000Hk3aBIAR", "006Dn00000Hk3aCIAR"]
    assert [(e.event_id, e.kind, e.identifiers) for e in events] == [
        (f"salesforce:18740001#{i}:owner", "crm.owner_changed", [f"salesforce.opportunity:{i}"]) for i in ids]
    assert all(e.attributes == {"object": "deal", "owner_id": "005Dn000003hCsmIAE", "previous_owner_id": None}
               for e in events)


def test_activity_records_from_a_query_page_are_typed_by_purpose():
    kickoff, welcome = parse("salesforce", "query_activities.json")
    assert summary(kickoff, "activity_type", "medium", "owner_id") == {
        "event_id": "salesforce:Event-00UDn00000KkOfFMAV", "kind": "crm.activity_logged",
        "occurred_at": "2026-03-17T15:00:00Z",
        "identifiers": [ACCOUNT, OPP, "salesforce.contact:003Dn00000Qr5tUIAR"], "links": [], "person": None,
        "attr.activity_type": "kickoff", "attr.medium": "meeting", "attr.owner_id": "005Dn000003hCsmIAE",
    }
    assert (welcome.attributes["activity_type"], welcome.attributes["medium"]) == ("welcome", "email")
    assert welcome.occurred_at.isoformat() == "2026-03-13T10:35:00+00:00"
    assert "[email]" in welcome.attributes["subject"] and "@" not in welcome.attributes["subject"]


def test_won_opportunity_record_yields_creation_and_renewal_win_keyed_by_what_happened():
    created, won = parse("salesforce", "sobject_opportunity_won.json")
    assert (created.event_id, created.attributes["stage"]) == ("salesforce:Opportunity-006Dn00000Hk9zZIAR#created", None)
    assert summary(won, "deal_type", "close_date", "segment") == {
        "event_id": "salesforce:Opportunity-006Dn00000Hk9zZIAR#stage:closedwon", "kind": "crm.deal_won",
        "occurred_at": "2026-08-28T14:20:00Z", "identifiers": [ACCOUNT, "salesforce.opportunity:006Dn00000Hk9zZIAR"],
        "links": [("salesforce.opportunity:006Dn00000Hk9zZIAR", ACCOUNT, "salesforce Opportunity.AccountId")],
        "person": None, "attr.deal_type": "renewal", "attr.close_date": "2026-08-28", "attr.segment": "enterprise",
    }


def test_account_record_is_a_company_update_with_website_domain():
    [event] = parse("salesforce", "sobject_account.json")
    assert (event.kind, event.identifiers, event.attributes["domain"], event.attributes["segment"]) == (
        "crm.company_updated", [ACCOUNT, "domain:globex-logistics.com"], "globex-logistics.com", "enterprise")


def test_unmapped_changes_entities_and_deletes_are_ignored_not_refused():
    [(type_, _)] = ignored("salesforce", "cdc_delete.json")
    assert type_ == "DELETE"
    [(type_, detail)] = ignored("salesforce", "cdc_amount_only.json")
    assert type_ == "Opportunity.update" and "Amount" in detail
    [(type_, _)] = ignored("salesforce", "sobject_case.json")
    assert type_ == "Case.snapshot"


def test_cdc_without_replay_id_or_transaction_key_is_missing_its_id():
    payload = copy.deepcopy(payloads("salesforce", "cdc_opportunity_won.json")[0])
    del payload["payload"]["ChangeEventHeader"]["transactionKey"]
    with pytest.raises(ParseError) as exc:
        parser_for("salesforce").parse(payload, INGESTED)
    assert exc.value.reason == "missing_field"
    assert parser_for("salesforce").event_id(payload).startswith("h-")
