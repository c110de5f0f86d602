"""Golden tests over the doc-derived fixtures (``tests/fixtures/vendors/*/doc_*.json``).

A doc-derived fixture is NOT a captured payload: it was built field by field from the vendor's
published schema / field reference for a shape of which no vendor-published example could be
found (the README next to the fixtures names the page and section for each). Every expected
value below was read off the fixture itself (ids, ISO times, epoch milliseconds converted by
hand), never copied from the parser's output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.base import ParseError
from connectors.crm.salesforce import cdc_parts, changed_fields
from connectors.registry import parser_for, vendor
from pipeline.journey import DealStages, load_journey
from tests.fixtures.vendors import HERE, INGESTED, at, body, ignored, parse, payloads, unlisted


def test_every_doc_derived_fixture_has_a_golden_test():
    """A new doc_* fixture without a golden test here fails this test."""
    assert unlisted("doc_", Path(__file__).read_text()) == []


def test_doc_derived_fixtures_are_listed_in_the_readme():
    assert unlisted("doc_", (HERE / "README.md").read_text(), "{vendor}/{name}`") == []


# ---- Zendesk event webhooks ---------------------------------------------------------------
TICKET_IDS = ["zendesk.organization:9100200300400", "zendesk.ticket:7301", "zendesk.user:9100200300555"]
TICKET_LINK = [("zendesk.ticket:7301", "zendesk.organization:9100200300400")]


def test_zendesk_status_changed_to_pending_is_an_update_with_the_previous_status():
    [e] = parse("zendesk", "doc_event_ticket_status_changed_pending.json")
    assert (e.kind, at(e)) == ("support.ticket_updated", "2025-03-04T11:20:31.118204Z")
    assert e.identifiers == TICKET_IDS
    assert [(lk.a, lk.b) for lk in e.links] == TICKET_LINK
    assert (e.attributes["status"], e.attributes["previous_status"]) == ("pending", "open")  # event.current/previous
    assert "5a0c9e1e-1f4b-4c1e-9a51-3b2f0d7e4a01" in e.event_id


def test_zendesk_status_changed_to_solved_is_a_solved_ticket():
    [e] = parse("zendesk", "doc_event_ticket_status_changed_solved.json")
    assert (e.kind, at(e)) == ("support.ticket_solved", "2025-03-06T16:02:09.530771Z")
    assert e.identifiers == TICKET_IDS
    assert e.attributes["priority"] == "normal"
    assert "5a0c9e1e-1f4b-4c1e-9a51-3b2f0d7e4a02" in e.event_id


def test_zendesk_priority_changed_keeps_both_priorities():
    [e] = parse("zendesk", "doc_event_ticket_priority_changed.json")
    assert (e.kind, at(e)) == ("support.ticket_updated", "2025-03-03T10:41:55.007312Z")
    assert e.identifiers == TICKET_IDS
    assert (e.attributes["priority"], e.attributes["previous_priority"]) == ("high", "normal")
    assert e.attributes["status"] == "open"


def test_zendesk_comment_added_is_ticket_activity():
    [e] = parse("zendesk", "doc_event_ticket_comment_added.json")
    assert (e.kind, at(e)) == ("support.ticket_updated", "2025-03-03T09:47:12.664090Z")
    assert e.identifiers == TICKET_IDS
    assert e.attributes["changes"] == ["comment_added"]
    assert parser_for("zendesk").key(payloads("zendesk", "doc_event_ticket_comment_added.json")[0]) == \
        "zendesk.organization:9100200300400"


# ---- Salesforce ---------------------------------------------------------------------------
def test_salesforce_pubsub_event_with_its_schema_decodes_the_bitmap_by_schema_order():
    """changedFields ["0x503D0A0"] = bits 5, 7, 12, 14, 15, 16, 17, 24, 26 of the carried schema
    (field 0 is ChangeEventHeader); nulledFields ["0x1000"] = bit 12, NextStep, whose value is null,
    so only the schema can name it."""
    [p] = payloads("salesforce", "doc_pubsub_opportunity_won_with_schema.json")
    parts = cdc_parts(p)
    assert parts is not None and isinstance(parts.schema, str)
    assert changed_fields(parts.header, parts.fields, parts.schema) == {
        "StageName", "Probability", "NextStep", "IsClosed", "IsWon", "ForecastCategory",
        "ForecastCategoryName", "LastModifiedDate", "LastStageChangeDate"}
    assert p["NextStep"] is None
    # without the schema only the fields with values can be named: NextStep is lost
    assert "NextStep" not in changed_fields(parts.header, parts.fields, None)


def test_salesforce_pubsub_event_with_its_schema_is_the_won_deal():
    [e] = parse("salesforce", "doc_pubsub_opportunity_won_with_schema.json")
    assert (e.kind, at(e)) == ("crm.deal_won", "2024-06-03T16:00:15Z")        # commitTimestamp 1717430415000
    assert e.identifiers == ["salesforce.opportunity:006SM0000003Xq2YAE"]    # AccountId unchanged → null
    assert e.attributes["raw_stage"] == "Closed Won"
    assert "18562034" in e.event_id                                          # replayId


@pytest.mark.parametrize("name, key, where", [
    ("doc_gap_update_opportunity.json", "salesforce.opportunity:006SM0000003Xq2YAE",
     " FROM Opportunity WHERE Id IN ('006SM0000003Xq2YAE') "),
    ("doc_gap_undelete_account.json", "salesforce.account:001SM0000000iibYAA",
     " FROM Account WHERE Id IN ('001SM0000000iibYAA') "),
])
def test_salesforce_gap_update_and_undelete_need_the_records_re_read(name, key, where):
    [p] = payloads("salesforce", name)
    with pytest.raises(ParseError) as exc:
        parser_for("salesforce").parse(p, INGESTED)
    assert exc.value.reason == "enrichment_failed"
    assert parser_for("salesforce").key(p) == key
    request = vendor("salesforce").enrichment.request(p)
    assert request is not None and request.path == "/services/data/v60.0/query"
    assert where in request.params["q"]


def test_salesforce_gap_delete_is_a_deletion_and_ignored():
    """A deleted record cannot be re-read with /query, and deletions have no lifecycle meaning."""
    [(type_, detail)] = ignored("salesforce", "doc_gap_delete_lead.json")
    assert type_ == "GAP_DELETE" and "00QSM000000Bz7k2AC" in detail
    assert vendor("salesforce").enrichment.request(payloads("salesforce", "doc_gap_delete_lead.json")[0]) is None


# ---- HubSpot CRM v3 objects ---------------------------------------------------------------
GUID_PIPELINE = "5d9c1a2e-7b3f-4e88-9a41-2c6b0f8e1d73"
GUID_WON = "b3f0c7a2-4d1e-4f6b-8c9a-0e2d5a7c9f14"


def test_hubspot_custom_pipeline_guid_stage_is_kept_verbatim_and_entered_at_hs_v2_date_entered():
    created, stage = parse("hubspot", "doc_crm_deal_custom_pipeline_guid_stage.json")
    assert (created.kind, at(created)) == ("crm.opportunity_created", "2025-04-02T08:30:00Z")
    assert created.attributes["stage"] is None          # modified since creation, no history: unknown
    assert (stage.kind, at(stage)) == ("crm.deal_stage_changed", "2025-05-20T14:03:11.482000Z")
    assert (stage.attributes["stage"], stage.attributes["pipeline"]) == (GUID_WON, GUID_PIPELINE)
    assert "time_estimated" not in stage.attributes
    assert stage.identifiers == ["hubspot.company:18274650099", "hubspot.deal:31502284017"]
    assert [(lk.a, lk.b) for lk in stage.links] == [("hubspot.deal:31502284017", "hubspot.company:18274650099")]


def test_hubspot_custom_pipeline_guid_stage_is_won_through_the_journey_deal_stages():
    [_, stage] = parse("hubspot", "doc_crm_deal_custom_pipeline_guid_stage.json")
    shipped = load_journey()
    assert shipped.deal_outcome(stage).kind == "crm.deal_stage_changed"     # no mapping: a GUID says nothing
    mapped = shipped.model_copy(update={"deal_stages": (DealStages(pipeline=GUID_PIPELINE, won=(GUID_WON,)),)})
    assert mapped.deal_outcome(stage).kind == "crm.deal_won"
    assert "closed-won" in [s.id for s in mapped.matching_stages(stage)]
    other = shipped.model_copy(update={"deal_stages": (DealStages(pipeline="default", won=(GUID_WON,)),)})
    assert other.deal_outcome(stage).kind == "crm.deal_stage_changed"       # the rule is per pipeline


def test_hubspot_properties_with_history_give_each_stage_its_entry_time():
    created, qualified, contract = parse("hubspot", "doc_crm_deal_properties_with_history.json")
    assert (created.kind, at(created), created.attributes["stage"]) == \
        ("crm.opportunity_created", "2025-05-14T09:00:00Z", "appointmentscheduled")   # oldest history entry
    assert (qualified.kind, at(qualified), qualified.attributes["stage"]) == \
        ("crm.deal_stage_changed", "2025-05-28T10:12:44.901000Z", "qualifiedtobuy")
    assert (contract.kind, at(contract), contract.attributes["stage"]) == \
        ("crm.deal_stage_changed", "2025-06-10T15:45:02.310000Z", "contractsent")
    assert not any("time_estimated" in e.attributes for e in (qualified, contract))
    assert qualified.identifiers == ["hubspot.company:18274650123", "hubspot.deal:31502284023"]


def test_hubspot_stage_entry_from_hs_date_entered_else_estimated_from_the_last_modification():
    """A search page of two deals: an older portal's ``hs_date_entered_<stageId>``; no entry date at all."""
    assert len(payloads("hubspot", "doc_crm_deals_page_entry_dates.json")) == 2
    a_created, a_stage, b_created, b_stage = parse("hubspot", "doc_crm_deals_page_entry_dates.json")
    assert (a_created.kind, at(a_created)) == ("crm.opportunity_created", "2025-01-27T10:00:00Z")
    assert (a_stage.kind, at(a_stage), a_stage.attributes["stage"]) == \
        ("crm.deal_stage_changed", "2025-02-11T13:20:05Z", "1289466751")
    assert "time_estimated" not in a_stage.attributes
    assert (b_created.kind, at(b_created)) == ("crm.opportunity_created", "2025-06-20T07:30:00Z")
    assert (b_stage.kind, at(b_stage), b_stage.attributes["stage"]) == \
        ("crm.deal_stage_changed", "2025-07-01T12:00:00Z", "presentationscheduled")   # = updatedAt
    assert b_stage.attributes["time_estimated"] is True


def test_hubspot_meeting_object_creation_needs_enrichment():
    [p] = payloads("hubspot", "doc_webhook_meeting_object_creation.json")
    with pytest.raises(ParseError) as exc:
        parser_for("hubspot").parse(p, INGESTED)
    assert exc.value.reason == "enrichment_failed"
    assert parser_for("hubspot").key(p) == "hubspot.meeting:75290184726"
    request = vendor("hubspot").enrichment.request(p)
    assert request is not None and request.path == "/crm/v3/objects/meetings/75290184726"
    assert "hs_activity_type" in request.params["properties"].split(",")
    assert "companies" in request.params["associations"].split(",")


def test_hubspot_meeting_read_back_is_the_kickoff():
    """The enrichment's answer (GET /crm/v3/objects/meetings/{id}) replaces the notification."""
    [p] = payloads("hubspot", "doc_webhook_meeting_object_creation.json")
    [read] = vendor("hubspot").enrichment.complete(p, body("hubspot", "doc_crm_meeting_read_for_enrichment.json"))
    [e] = parser_for("hubspot").parse(json.loads(json.dumps(read)), INGESTED)
    assert (e.kind, at(e)) == ("crm.activity_logged", "2025-02-24T15:00:00Z")   # hs_timestamp
    assert e.attributes["activity_type"] == "kickoff"
    assert e.identifiers == ["hubspot.company:18274650099", "hubspot.deal:31502284017", "hubspot.contact:90377"]
    assert "meeting-75290184726" in e.event_id
