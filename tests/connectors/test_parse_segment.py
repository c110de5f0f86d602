"""Segment spec calls → product events."""

from __future__ import annotations

from connectors.registry import parser_for
from tests.fixtures.vendors import INGESTED, errors, ignored, parse, payloads, summary

USER = "segment.user:usr_8c21f0"
ANON = "segment.anonymous:7f3c1b4e-93a2-4f0e-9c55-2b8d0f4a9e61"
GROUP = "segment.group:ws_northwind"


def test_track_uses_the_event_time_and_context_group_and_keeps_email_out_of_attributes():
    [event] = parse("segment", "track.json")
    assert summary(event, "event", "properties") == {
        "event_id": "segment:ajs-next-1767960000123-4c1f9a2e-6d0b-4c6f-9a55-0e2b7c3d9f10",
        "kind": "product.track",
        "occurred_at": "2026-01-09T12:00:00.247000Z",  # timestamp, not sentAt/receivedAt
        "identifiers": [GROUP, "domain:northwind-analytics.com", USER, ANON],
        "links": [],
        "person": (USER, "dana.reyes@northwind-analytics.com"),
        "attr.event": "Workspace Activated",
        "attr.properties": {"activated_feature": "scheduled_report", "seats": 10},
    }


def test_identify_puts_the_email_on_the_person_and_links_the_anonymous_id():
    [event] = parse("segment", "identify.json")
    assert summary(event, "traits") == {
        "event_id": "segment:ajs-next-1767959000001-identify-0001", "kind": "product.identify",
        "occurred_at": "2026-01-09T11:43:20Z",
        "identifiers": ["domain:northwind-analytics.com", USER, ANON],
        "links": [(USER, ANON, "segment identify userId+anonymousId")],
        "person": (USER, "dana.reyes@northwind-analytics.com"),
        "attr.traits": {"name": "Dana Reyes", "role": "admin", "created_at": "2026-01-09T11:40:00Z"},
    }
    assert event.person.name == "Dana Reyes"


def test_group_links_user_to_workspace_and_workspace_to_crm_company():
    [event] = parse("segment", "group.json")
    assert summary(event, "group_name") == {
        "event_id": "segment:node-0b1e7c1a-group-0001", "kind": "product.group",
        "occurred_at": "2026-01-09T11:44:01.998000Z",
        "identifiers": [GROUP, "domain:northwind-analytics.com", USER],
        "links": [(USER, GROUP, "segment group call userId→groupId"),
                  (GROUP, "hubspot.company:18274650011", "segment group traits.crm_company_id")],
        "person": (USER, None),
        "attr.group_name": "Northwind Analytics",
    }
    assert "billing_email" not in event.attributes["traits"]
    assert parser_for("segment").key(payloads("segment", "group.json")[0]) == GROUP


def test_page_and_screen_are_product_page():
    [page] = parse("segment", "page.json")
    assert (page.kind, page.attributes["name"], page.attributes["category"]) == ("product.page", "API Reference", "Docs")
    assert page.identifiers == [GROUP, USER, ANON]
    [screen] = parse("segment", "screen_anonymous.json")
    assert (screen.kind, screen.attributes["call"], screen.attributes["name"]) == ("product.page", "screen", "Pricing")


def test_anonymous_only_calls_are_identified_by_the_anonymous_id():
    [event] = parse("segment", "screen_anonymous.json")
    anon = "segment.anonymous:b0d9e2aa-5f31-4d9b-8f51-6a0f1c2b3d4e"
    assert event.identifiers == [anon]
    assert event.person.id == anon
    assert parser_for("segment").key(payloads("segment", "screen_anonymous.json")[0]) == anon


def test_alias_is_an_identify_whose_only_effect_is_the_link():
    [event] = parse("segment", "alias.json")
    assert summary(event, "alias", "previous_id") == {
        "event_id": "segment:ajs-next-1767958999000-alias-0001", "kind": "product.identify",
        "occurred_at": "2026-01-09T11:43:19.700000Z", "identifiers": [USER, ANON],
        "links": [(USER, ANON, "segment alias previousId")], "person": (USER, None),
        "attr.alias": True, "attr.previous_id": "7f3c1b4e-93a2-4f0e-9c55-2b8d0f4a9e61",
    }


def test_a_batch_splits_into_calls_sharing_the_batch_context():
    items = payloads("segment", "batch.json")
    assert [i["messageId"] for i in items] == ["node-batch-0001", "node-batch-0002"]
    assert all(i["sentAt"] == "2026-01-12T09:31:05.000Z" for i in items)
    # A call's own context wins over the batch's.
    assert items[1]["context"] == {"groupId": "ws_northwind"}
    first, second = parse("segment", "batch.json")
    assert first.identifiers == [USER]
    assert second.identifiers == [GROUP, "segment.user:usr_77aa01"]


def test_bad_input_is_refused_with_a_reason():
    [(reason, detail)] = errors("segment", "bad_timestamp.json")
    assert reason == "bad_timestamp" and "03/14/2026" in detail
    [(reason, _)] = errors("segment", "unknown_type.json")
    assert reason == "unsupported_type"
    [(reason, detail)] = errors("segment", "no_message_id.json")
    assert reason == "missing_field" and "messageId" in detail


def test_time_falls_back_to_what_segment_recorded_when_the_library_sent_none():
    call = payloads("segment", "bad_timestamp.json")[0]
    del call["timestamp"]
    [event] = parser_for("segment").parse(call, INGESTED)
    assert event.occurred_at.isoformat() == "2026-03-14T10:15:02+00:00"
