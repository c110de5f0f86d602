"""Zendesk trigger webhooks and incremental ticket events → support events."""

from __future__ import annotations

import pytest

from connectors.base import ParseError
from connectors.registry import parser_for
from tests.fixtures.vendors import INGESTED, errors, ignored, parse, payloads, summary

ORG = "zendesk.organization:361005"
TICKET = "zendesk.ticket:48213"
REQUESTER = "zendesk.user:9100221"
DANA = (REQUESTER, "dana.reyes@northwind-analytics.com")


def test_webhook_ticket_created_links_organization_to_crm_by_external_id():
    [event] = parse("zendesk", "webhook_ticket_created.json")
    assert summary(event, "ticket_id", "status", "priority", "subject", "via") == {
        "event_id": event.event_id, "kind": "support.ticket_created", "occurred_at": "2026-01-20T14:02:11Z",
        "identifiers": [ORG, "domain:northwind-analytics.com", TICKET, REQUESTER],
        "links": [(TICKET, ORG, "zendesk ticket organization_id"),
                  (ORG, "hubspot.company:18274650011", "zendesk organization external_id")],
        "person": DANA,
        "attr.ticket_id": "48213", "attr.status": "new", "attr.priority": "high",
        "attr.subject": "SSO login loops back to the sign-in page", "attr.via": "email",
    }


def test_webhook_ids_are_content_hashes_stable_across_redelivery():
    parser = parser_for("zendesk")
    payload = payloads("zendesk", "webhook_ticket_created.json")[0]
    again = payloads("zendesk", "webhook_ticket_created.json")[0]
    assert parser.event_id(payload) == parser.event_id(again)
    [event] = parser.parse(payload, INGESTED)
    assert event.event_id == f"zendesk:{parser.event_id(payload)}"
    solved = payloads("zendesk", "webhook_ticket_solved.json")[0]
    assert parser.event_id(solved) != parser.event_id(payload)


def test_webhook_solved_without_organization_still_has_the_requester_domain():
    [event] = parse("zendesk", "webhook_ticket_solved.json")
    assert (event.kind, event.attributes) == ("support.ticket_solved", {"ticket_id": "48213", "priority": "high"})
    assert event.identifiers == ["domain:northwind-analytics.com", TICKET, REQUESTER]
    assert event.links == []
    assert parser_for("zendesk").key(payloads("zendesk", "webhook_ticket_solved.json")[0]) == TICKET


def test_webhook_satisfaction_normalizes_score_converts_time_and_strips_emails():
    [event] = parse("zendesk", "webhook_satisfaction.json")
    assert summary(event, "score") == {
        "event_id": event.event_id, "kind": "support.satisfaction_rated", "occurred_at": "2026-01-22T07:00:00Z",
        "identifiers": [ORG, "domain:northwind-analytics.com", TICKET, REQUESTER],
        "links": [(TICKET, ORG, "zendesk ticket organization_id"),
                  (ORG, "salesforce.account:001Dn00000AbCdEIA3", "zendesk organization external_id")],
        "person": DANA, "attr.score": "good",
    }
    assert event.attributes["comment"] == "Fixed within a day, thank you! Write to me at [email]"


def test_incremental_export_audits_become_created_updated_solved_rated():
    events = parse("zendesk", "ticket_events_page.json")
    t = "zendesk.ticket:48301"
    assert [summary(e) for e in events] == [
        {"event_id": "zendesk:26130571001#created", "kind": "support.ticket_created",
         "occurred_at": "2026-01-28T10:00:00Z", "identifiers": [ORG, t, REQUESTER],
         "links": [(t, ORG, "zendesk ticket organization_id")], "person": None},
        {"event_id": "zendesk:26130571002#updated", "kind": "support.ticket_updated",
         "occurred_at": "2026-01-28T11:00:00Z", "identifiers": [t], "links": [], "person": None},
        {"event_id": "zendesk:26130571003#solved", "kind": "support.ticket_solved",
         "occurred_at": "2026-01-29T10:00:00Z", "identifiers": [t], "links": [], "person": None},
        {"event_id": "zendesk:26130571004#satisfaction", "kind": "support.satisfaction_rated",
         "occurred_at": "2026-01-30T10:00:00Z", "identifiers": [t], "links": [], "person": None},
        {"event_id": "zendesk:26130571005#updated", "kind": "support.ticket_updated",
         "occurred_at": "2026-01-30T11:00:00Z", "identifiers": [t], "links": [], "person": None},
    ]
    created, updated, solved, rated, comment = (e.attributes for e in events)
    assert {k: created[k] for k in ("ticket_id", "status", "priority", "subject", "via")} == {
        "ticket_id": "48301", "status": "new", "priority": "normal", "subject": "Export to CSV times out",
        "via": "Web form"}
    assert {k: updated[k] for k in ("status", "previous_status", "priority", "previous_priority")} == {
        "status": "open", "previous_status": "new", "priority": "high", "previous_priority": "normal"}
    assert solved["ticket_id"] == "48301"
    assert (rated["score"], rated["comment"]) == ("bad", "Took two days")
    assert comment["changes"] == ["Comment", "Notification"] and comment["status"] is None


def test_export_page_splits_and_keys_by_organization_when_the_audit_names_one():
    parser = parser_for("zendesk")
    items = payloads("zendesk", "ticket_events_page.json")
    assert [parser.event_id(i) for i in items] == [
        "26130571001", "26130571002", "26130571003", "26130571004", "26130571005"]
    assert [parser.key(i) for i in items] == [ORG] + ["zendesk.ticket:48301"] * 4


def test_bad_input_is_refused_with_a_reason():
    [(type_, _)] = ignored("zendesk", "webhook_unknown_event.json")
    assert type_ == "ticket.merged"
    [(reason, _)] = errors("zendesk", "webhook_no_ticket_id.json")
    assert reason == "missing_field"
    [(reason, _)] = errors("zendesk", "ticket_event_bad_timestamp.json")
    assert reason == "bad_timestamp"


def test_an_offered_but_unanswered_survey_is_not_a_rating():
    payload = payloads("zendesk", "webhook_satisfaction.json")[0]
    payload["ticket"]["satisfaction_rating"]["score"] = "offered"
    with pytest.raises(ParseError) as exc:
        parser_for("zendesk").parse(payload, INGESTED)
    assert exc.value.reason == "unsupported_type"
