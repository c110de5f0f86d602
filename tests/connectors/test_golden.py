"""Golden tests over the vendor-published payloads (``tests/fixtures/vendors/*/pub_*.json``).

Every expected value below was read off the payload itself (its ids, its timestamps converted
by hand from epoch seconds/milliseconds), never copied from the parser's output; the README next
to the fixtures names where each payload comes from.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.base import ParseError
from connectors.registry import parser_for, vendor
from tests.fixtures.vendors import HERE, INGESTED, at, ignored, parse, payloads, unlisted


def test_every_published_fixture_has_a_golden_test():
    """A new pub_* fixture without a golden test here fails this test."""
    assert unlisted("pub_", Path(__file__).read_text()) == []


# ---- Stripe -------------------------------------------------------------------------------
def test_stripe_subscription_created_2023():
    [e] = parse("stripe", "pub_subscription_created_2023.json")
    assert (e.kind, at(e)) == ("billing.subscription_created", "2024-05-01T07:42:25Z")
    assert e.identifiers == ["stripe.customer:cus_Q1b0Yi7UkcAh2A"]
    assert e.attributes["subscription_id"] == "sub_1PBXo5RxqlZt79sD3kdxoDVi"
    assert e.attributes["status"] == "incomplete"
    assert e.attributes["plan_interval"] == "month"


def test_stripe_subscription_updated_2023_is_a_status_change():
    [e] = parse("stripe", "pub_subscription_updated_2023.json")
    assert (e.kind, at(e)) == ("billing.subscription_updated", "2024-05-01T07:42:27Z")
    assert e.identifiers == ["stripe.customer:cus_Q1b0Yi7UkcAh2A"]
    assert (e.attributes["status"], e.attributes["previous_status"]) == ("active", "incomplete")
    assert e.attributes["change"] == "status_change"


@pytest.mark.parametrize("name", ["pub_invoice_paid_2023.json", "pub_invoice_payment_succeeded_2023.json"])
def test_stripe_invoice_payment_2023(name):
    [e] = parse("stripe", name)
    assert (e.kind, at(e)) == ("billing.invoice_paid", "2024-05-01T07:42:27Z")
    # customer_email was redacted to redacted@example.com: the domain comes from the redacted value
    assert e.identifiers == ["stripe.customer:cus_Q1b0Yi7UkcAh2A", "domain:example.com"]
    assert e.attributes["invoice_id"] == "in_1PBXo5RxqlZt79sDAbGhMpyk"
    assert e.attributes["subscription_id"] == "sub_1PBXo5RxqlZt79sD3kdxoDVi"
    assert e.attributes["amount_paid"] == 70000
    assert e.attributes["plan_interval"] == "month"
    assert e.attributes["livemode"] is False


def test_stripe_invoice_paid_and_payment_succeeded_of_one_invoice_count_once():
    """Stripe sends both events for one payment (evt_1PBXo9…nw7dd5cs and evt_1PBXo9…rAacNdbY)."""
    [paid] = parse("stripe", "pub_invoice_paid_2023.json")
    [succeeded] = parse("stripe", "pub_invoice_payment_succeeded_2023.json")
    assert payloads("stripe", "pub_invoice_paid_2023.json")[0]["id"] != \
        payloads("stripe", "pub_invoice_payment_succeeded_2023.json")[0]["id"]
    assert paid.event_id == succeeded.event_id


def test_stripe_basil_invoice_interval_from_its_billing_period():
    """API 2025-08-27.basil: the line's price is only ``pricing.price_details.price`` (an id), so the
    interval comes from the line period 1763561586 → 1766153586 (30 days): a month, marked inferred."""
    [e] = parse("stripe", "pub_invoice_payment_succeeded_basil_live.json")
    assert (e.kind, at(e)) == ("billing.invoice_paid", "2025-11-19T14:13:10Z")
    assert e.identifiers == ["stripe.customer:cus_TS6KX04w045BN9", "domain:example.com"]
    assert e.attributes["invoice_id"] == "in_1SVC87HOQNg4XnOMdHAlqDva"
    assert e.attributes["subscription_id"] == "sub_1SVC89HOQNg4XnOMoa93kOB2"   # parent.subscription_details
    assert e.attributes["plan_id"] == "price_1SUyGiHOQNg4XnOMHSqLxNl9"
    assert (e.attributes["plan_interval"], e.attributes["plan_interval_inferred"]) == ("month", True)
    assert e.attributes["livemode"] is True


def test_stripe_plan_created_from_the_openapi_fixtures_is_ignored():
    assert ignored("stripe", "pub_plan_created_openapi.json") == [("plan.created", "evt_1Pgc76B7WZ01zgkWwyRHS12y")]


@pytest.mark.parametrize("name, type_, event_id", [
    ("pub_invoice_created_2023.json", "invoice.created", "evt_1PBXo8RxqlZt79sD18DpBLbR"),
    ("pub_invoice_finalized_2023.json", "invoice.finalized", "evt_1PBXo8RxqlZt79sDD91Aiatr"),
    ("pub_invoice_updated_2023.json", "invoice.updated", "evt_1PBXo9RxqlZt79sDB9rAuIOK"),
    ("pub_charge_updated_2023.json", "charge.updated", "evt_3PBWUkRxqlZt79sD1jweBrdP"),
    ("pub_payment_intent_succeeded_2023.json", "payment_intent.succeeded", "evt_3PBWUkRxqlZt79sD18BH2Rbr"),
    ("pub_product_deleted_2023.json", "product.deleted", "evt_1PBXLRRxqlZt79sDh1ngaQvQ"),
])
def test_stripe_2023_deliveries_without_lifecycle_meaning_are_ignored(name, type_, event_id):
    """The same test-mode account's other deliveries: an invoice before it is paid, the charge and
    payment intent behind it (the payment counts once, by invoice), a deleted product."""
    [(got_type, detail)] = ignored("stripe", name)
    assert got_type == type_ and event_id in detail



def test_stripe_charge_succeeded_from_the_stripe_cli_is_ignored():
    """A full ``charge.succeeded`` event sent by the Stripe CLI (test mode, API 2025-04-30.basil):
    the payment counts by invoice, so the charge has no lifecycle meaning and is never dead-lettered."""
    assert ignored("stripe", "pub_charge_succeeded_braze_docs.json") == \
        [("charge.succeeded", "evt_3RTqw0RMEOaIvYpU1k2TFajH")]
    [p] = payloads("stripe", "pub_charge_succeeded_braze_docs.json")
    assert parser_for("stripe").key(p) == "stripe.customer:cus_SOeDf39aosGb97"

# ---- Segment ------------------------------------------------------------------------------
def test_segment_spec_track_uses_timestamp_not_sent_or_received_at():
    [e] = parse("segment", "pub_spec_track.json")
    assert (e.kind, at(e)) == ("product.track", "2015-12-12T19:11:01.249000Z")
    assert e.identifiers == ["segment.user:AiUGstSDIg", "segment.anonymous:23adfd82-aa0f-45a7-a756-24f2a7a4c895"]
    assert e.attributes["event"] == "Course Clicked"
    assert "ajs-f8ca1e4de5024d9430b3928bd8ac6b96" in e.event_id


def test_segment_spec_track_with_context_traits():
    [e] = parse("segment", "pub_spec_track_context_traits.json")
    assert (e.kind, at(e), e.attributes["event"]) == ("product.track", "2015-12-12T19:11:01.249000Z", "Button Clicked")


def test_segment_spec_identify():
    [e] = parse("segment", "pub_spec_identify.json")
    assert (e.kind, at(e)) == ("product.identify", "2015-02-23T22:28:55.111000Z")
    assert e.identifiers == ["domain:example.com", "segment.user:97980cfea0067",
                             "segment.anonymous:507f191e810c19729de860ea"]
    assert [(lk.a, lk.b) for lk in e.links] == [("segment.user:97980cfea0067",
                                                  "segment.anonymous:507f191e810c19729de860ea")]
    assert e.person is not None and e.person.email == "peter@example.com"


def test_segment_spec_group_links_user_to_group():
    [e] = parse("segment", "pub_spec_group.json")
    assert (e.kind, at(e)) == ("product.group", "2015-02-23T22:28:55.111000Z")
    assert e.identifiers[0] == "segment.group:0e8c78ea9d97a7b8185e8632"
    assert ("segment.user:97980cfea0067", "segment.group:0e8c78ea9d97a7b8185e8632") in \
        [(lk.a, lk.b) for lk in e.links]
    assert e.attributes["group_name"] == "Initech"


def test_segment_spec_page():
    [e] = parse("segment", "pub_spec_page.json")
    assert (e.kind, at(e), e.attributes["name"]) == ("product.page", "2015-02-23T22:28:55.111000Z", "Home")
    assert e.identifiers == ["segment.user:97980cfea0067", "segment.anonymous:507f191e810c19729de860ea"]


def test_segment_spec_alias_links_the_previous_user_id():
    [e] = parse("segment", "pub_spec_alias.json")
    assert (e.kind, at(e)) == ("product.identify", "2015-02-23T22:28:55.111000Z")
    assert e.identifiers == ["segment.user:507f191e81", "segment.anonymous:507f191e810c19729de860ea"]
    assert [(lk.a, lk.b) for lk in e.links] == [("segment.user:507f191e81",
                                                  "segment.user:39239-239239-239239-23923")]


def test_segment_common_fields_track_names_its_group_in_context():
    [e] = parse("segment", "pub_spec_common_track_context_group.json")
    assert (e.kind, at(e), e.attributes["event"]) == ("product.track", "2015-12-10T04:08:31.905000Z",
                                                      "Report Submitted")
    assert e.identifiers[0] == "segment.group:12345"
    assert parser_for("segment").key(payloads("segment", "pub_spec_common_track_context_group.json")[0]) \
        == "segment.group:12345"


def test_segment_spec_screen_is_a_page_view_of_a_mobile_screen():
    [e] = parse("segment", "pub_spec_screen.json")
    assert (e.kind, at(e), e.attributes["name"]) == ("product.page", "2015-02-23T22:28:55.111000Z", "Home")
    assert e.attributes["call"] == "screen"
    assert e.identifiers == ["segment.user:97980cfea0067", "segment.anonymous:3a12eab0-bca7-11e4-8dfc-aa07a5b093db"]
    assert "022bb90c-bbac-11e4-8dfc-aa07a5b093db" in e.event_id


# ---- Zendesk ------------------------------------------------------------------------------
def test_zendesk_event_webhook_ticket_created_links_the_organization():
    [e] = parse("zendesk", "pub_event_ticket_created.json")
    assert (e.kind, at(e)) == ("support.ticket_created", "2025-01-08T10:12:07.672717Z")  # ns truncated to µs
    assert e.identifiers == ["zendesk.organization:8447346622462", "zendesk.ticket:5158",
                             "zendesk.user:8447388090494"]
    assert [(lk.a, lk.b) for lk in e.links] == [("zendesk.ticket:5158", "zendesk.organization:8447346622462")]
    assert e.attributes["status"] == "open"          # "OPEN" in the event webhook's detail
    assert "cbe4028c-7239-495d-b020-f22348516046" in e.event_id


def test_zendesk_event_webhook_attachment_linked_is_ignored():
    [(type_, _)] = ignored("zendesk", "pub_event_attachment_linked.json")
    assert type_ == "zen:event-type:ticket.attachment_linked_to_comment"


def test_zendesk_event_webhook_for_a_user_is_ignored():
    [(type_, _)] = ignored("zendesk", "pub_event_user_active_changed.json")
    assert type_ == "zen:event-type:user.active_changed"


def test_zendesk_ticket_audit_with_comment_and_notification_only():
    [e] = parse("zendesk", "pub_audit_json_format.json")
    assert (e.kind, at(e)) == ("support.ticket_updated", "2009-07-20T22:55:29Z")
    assert e.identifiers == ["zendesk.ticket:47"]
    assert e.attributes["changes"] == ["Comment", "Notification"]


@pytest.mark.parametrize("name, ticket", [("pub_audits_list_all.json", "123"), ("pub_audits_for_ticket.json", "666")])
def test_zendesk_ticket_audits_api_page_splits_into_audits(name, ticket):
    """``GET /api/v2/ticket_audits`` and ``/tickets/{id}/audits`` answer ``{"audits": [...]}``."""
    assert len(payloads("zendesk", name)) == 1
    [e] = parse("zendesk", name)
    assert (e.kind, at(e)) == ("support.ticket_updated", "2011-09-25T22:35:44Z")
    assert e.identifiers == [f"zendesk.ticket:{ticket}"]
    assert (e.attributes["status"], e.attributes["previous_status"]) == ("open", "new")


def test_zendesk_recorded_ticket_creation_audit_is_a_ticket_created_with_its_organization():
    """A real ``GET /api/v2/tickets/4633/audits.json`` answer: the creation audit's ``Create`` children
    set status, requester and organization_id; its Comment and Notifications ride along."""
    assert len(payloads("zendesk", "pub_audits_ticket_creation_recorded.json")) == 1
    [e] = parse("zendesk", "pub_audits_ticket_creation_recorded.json")
    assert (e.kind, at(e)) == ("support.ticket_created", "2017-04-19T11:14:21Z")
    assert e.identifiers == ["zendesk.organization:16180288347", "zendesk.ticket:4633", "zendesk.user:21311632247"]
    assert [(lk.a, lk.b) for lk in e.links] == [("zendesk.ticket:4633", "zendesk.organization:16180288347")]
    assert (e.attributes["status"], e.attributes["via"]) == ("open", "api")
    assert "288525837867" in e.event_id
    assert parser_for("zendesk").key(payloads("zendesk", "pub_audits_ticket_creation_recorded.json")[0]) == \
        "zendesk.organization:16180288347"


# ---- Salesforce ---------------------------------------------------------------------------
def test_salesforce_pubsub_bitmap_without_schema_falls_back_to_the_values_present():
    """changedFields ["0x400000", "4-0x01"] (LastModifiedDate, BillingAddress.Street per the capture's log)."""
    [e] = parse("salesforce", "pub_pubsub_account_billing_street.json")
    assert (e.kind, at(e)) == ("crm.company_updated", "2022-08-02T11:36:05Z")
    assert e.identifiers == ["salesforce.account:0014H00002LbR7QQAV"]
    assert e.attributes["changed"] == ["BillingAddress"]
    assert "0000c8a0-6766-3414-949f-de10519bee7d:1" in e.event_id   # no replayId in the payload


def test_salesforce_pubsub_account_number_change():
    [e] = parse("salesforce", "pub_pubsub_account_number.json")
    assert (e.kind, at(e)) == ("crm.company_updated", "2023-01-23T14:30:29Z")
    assert e.identifiers == ["salesforce.account:00128000004ffFXAAY"]
    assert e.attributes["changed"] == ["AccountNumber"]


def test_salesforce_cometd_envelope_is_read_and_an_unmapped_entity_ignored():
    p = payloads("salesforce", "pub_cometd_service_appointment.json")[0]
    assert parser_for("salesforce").event_id(p) == "1434298"            # data.event.replayId
    [(type_, _)] = ignored("salesforce", "pub_cometd_service_appointment.json")
    assert type_ == "ServiceAppointment.update"


def test_salesforce_cdc_guide_opportunity_created():
    [e] = parse("salesforce", "pub_cdc_guide_opportunity_create.json")
    assert (e.kind, at(e)) == ("crm.opportunity_created", "2022-05-19T16:32:13Z")   # commitTimestamp 1652977933000
    assert e.identifiers == ["salesforce.account:001SM0000000iibYAA", "salesforce.opportunity:006SM0000001Tb3YAE"]
    assert [(lk.a, lk.b) for lk in e.links] == [("salesforce.opportunity:006SM0000001Tb3YAE",
                                                  "salesforce.account:001SM0000000iibYAA")]
    assert (e.attributes["raw_stage"], e.attributes["amount"]) == ("Prospecting", 40000)


def test_salesforce_cdc_guide_account_created_with_a_compound_address():
    [e] = parse("salesforce", "pub_cdc_guide_account_create_compound.json")
    assert (e.kind, at(e)) == ("crm.company_updated", "2024-04-26T18:38:05Z")
    assert e.identifiers == ["salesforce.account:0015f00002JUXA8AAP"]
    assert e.attributes["name"] == "Acme"


def test_salesforce_cdc_guide_compound_field_update_bitmap_without_schema():
    """changedFields ["0x400000", "4-0x01"]: the guide decodes them to LastModifiedDate, BillingAddress.Street."""
    [e] = parse("salesforce", "pub_cdc_guide_account_update_compound.json")
    assert (e.kind, at(e)) == ("crm.company_updated", "2024-04-26T18:38:23Z")
    assert e.identifiers == ["salesforce.account:0015f00002JUXA8AAP"]
    assert e.attributes["changed"] == ["BillingAddress"]


def _gap(name):
    [p] = payloads("salesforce", name)
    with pytest.raises(ParseError) as exc:
        parser_for("salesforce").parse(p, INGESTED)
    assert exc.value.reason == "enrichment_failed"      # only when no enricher re-read the records
    return p, vendor("salesforce").enrichment.request(p)


def test_salesforce_gap_create_is_re_read_by_record_id():
    p, request = _gap("pub_cdc_guide_gap_create_account.json")
    assert parser_for("salesforce").key(p) == "salesforce.account:001ZM000001n4n5YAA"
    assert request.path == "/services/data/v60.0/query"
    assert " FROM Account WHERE Id IN ('001ZM000001n4n5YAA') " in request.params["q"]


def test_salesforce_gap_overflow_names_no_record_and_is_re_read_by_time_window():
    """recordIds holds the empty id 000000000000000AAA: neither the ordering key nor the re-read uses it;
    the re-read covers 5 minutes before the commit (1714417568000 = 2024-04-29T19:06:08Z)."""
    p, request = _gap("pub_cdc_guide_gap_overflow_account.json")
    assert parser_for("salesforce").key(p) == "salesforce.event:000a5148-405c-21fe-86ce-03205d7404ad:6"
    assert " FROM Account WHERE SystemModstamp >= 2024-04-29T19:01:08.000Z " in request.params["q"]
    assert "000000000000000AAA" not in request.params["q"]


# ---- HubSpot ------------------------------------------------------------------------------
def test_hubspot_documented_eventtype_variant():
    lifecycle, created = parse("hubspot", "pub_docs_webhook_eventtype_batch.json")
    assert (lifecycle.kind, at(lifecycle)) == ("crm.lifecycle_stage_changed", "2016-05-02T19:11:47.945000Z")
    assert lifecycle.identifiers == ["hubspot.contact:1246965"]
    assert lifecycle.attributes["lifecycle_stage"] == "subscriber"
    assert (created.kind, created.identifiers) == ("crm.contact_created", ["hubspot.contact:1246978"])
    keys = [parser_for("hubspot").key(p) for p in payloads("hubspot", "pub_docs_webhook_eventtype_batch.json")]
    assert keys == ["hubspot.contact:1246965", "hubspot.contact:1246978"]


def test_hubspot_app_test_contact_creation():
    [e] = parse("hubspot", "pub_app_test_contact_creation.json")
    assert (e.kind, at(e), e.identifiers) == ("crm.contact_created", "2024-11-14T19:22:39.499000Z",
                                              ["hubspot.contact:123"])
    assert e.attributes["change_source"] == "CRM"


def test_hubspot_app_test_property_change_without_lifecycle_meaning_is_ignored():
    [(type_, detail)] = ignored("hubspot", "pub_app_test_contact_property_change.json")
    assert type_ == "contact.propertyChange" and "message" in detail


@pytest.mark.parametrize("name, type_", [("pub_capture_generic_object_deletion.json", "object.deletion"),
                                          ("pub_capture_generic_custom_object_creation.json", "object.creation")])
def test_hubspot_captured_generic_webhooks_of_a_custom_object_are_ignored(name, type_):
    """Generic (``object.*``) deliveries for custom object type 2-143964984: no lifecycle meaning,
    nothing to read from the API."""
    [(got_type, detail)] = ignored("hubspot", name)
    assert got_type == type_ and "2-143964984" in detail
    [p] = payloads("hubspot", name)
    assert parser_for("hubspot").key(p) == "hubspot.object:177469910223"
    assert vendor("hubspot").enrichment.request(p) is None


def test_no_published_fixture_is_dead_lettered():
    """Every vendor-published payload either parses or is ignored: none needs a person to look at it."""
    for path in sorted(HERE.glob("*/pub_*.json")):
        name = path.parent.name
        parser = parser_for(name)
        for p in payloads(name, path.name):
            try:
                parser.parse(p, INGESTED)
            except ParseError as exc:
                # A gap event is Salesforce's "re-read these records": refused only when not enriched.
                assert exc.reason == "enrichment_failed" and vendor(name).enrichment.request(p) is not None, \
                    f"{name}/{path.name}: {exc}"
            except Exception as exc:  # noqa: BLE001 - Ignored is fine
                assert type(exc).__name__ == "Ignored", f"{name}/{path.name}: {exc}"
