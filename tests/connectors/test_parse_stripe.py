"""Stripe Event objects → billing events."""

from __future__ import annotations

import pytest

from connectors.base import ParseError
from connectors.registry import parser_for
from tests.fixtures.vendors import INGESTED, errors, ignored, parse, payloads, summary

CUS = "stripe.customer:cus_RkT9aQ2mB7xLpe"


def test_customer_created_links_the_crm_company_from_metadata():
    [event] = parse("stripe", "customer_created.json")
    assert summary(event, "customer_id", "email_domain", "livemode") == {
        "event_id": "stripe:evt_1QmZx2LkdIwHu7ix0cus0001",
        "kind": "billing.customer_created",
        "occurred_at": "2026-01-09T09:00:00Z",
        "identifiers": [CUS, "domain:northwind-analytics.com"],
        "links": [(CUS, "hubspot.company:18274650011", "stripe customer metadata.hubspot_company_id")],
        "person": (CUS, "billing@northwind-analytics.com"),
        "attr.customer_id": "cus_RkT9aQ2mB7xLpe",
        "attr.email_domain": "northwind-analytics.com",
        "attr.livemode": True,
    }
    assert "billing@northwind-analytics.com" not in str(event.attributes)


def test_subscription_created_carries_plan_interval_amount_and_period():
    [event] = parse("stripe", "subscription_created.json")
    assert event.kind == "billing.subscription_created"
    assert event.identifiers == [CUS]
    # crm_account_id holding a bare number is a HubSpot company id.
    assert [(lk.b, lk.reason) for lk in event.links] == [
        ("hubspot.company:18274650011", "stripe subscription metadata.crm_account_id")]
    assert event.attributes == {
        "subscription_id": "sub_1QmZy0LkdIwHu7ixAbCd0001", "status": "active", "plan_id": "price_1Qm0TeamAnnual",
        "plan_interval": "year", "amount": 1_200_000, "currency": "usd", "quantity": 10,
        "current_period_start": "2026-01-09T09:01:00Z", "current_period_end": "2027-01-09T09:01:00Z",
        "cancel_at_period_end": False, "collection_method": "charge_automatically", "livemode": True,
    }


def test_subscription_update_with_more_seats_is_an_expansion():
    [event] = parse("stripe", "subscription_updated_expansion.json")
    assert summary(event, "change", "amount", "previous_amount", "previous_status") == {
        "event_id": "stripe:evt_1R2bUpLkdIwHu7ixExpand01", "kind": "billing.subscription_updated",
        "occurred_at": "2026-03-09T10:00:00Z", "identifiers": [CUS], "links": [], "person": None,
        "attr.change": "expansion", "attr.amount": 1_680_000, "attr.previous_amount": 1_200_000,
        "attr.previous_status": None,
    }


def test_new_billing_period_on_2025_api_items_is_a_renewal():
    [event] = parse("stripe", "subscription_updated_renewal_2025.json")
    assert event.attributes["change"] == "renewal"
    assert event.attributes["plan_interval"] == "month"
    assert event.attributes["amount"] == 4900 * 3
    assert event.attributes["current_period_start"] == "2026-03-01T08:00:00Z"
    assert event.attributes["current_period_end"] == "2026-04-01T08:00:00Z"


def test_subscription_contraction_and_status_change_are_classified():
    expansion = payloads("stripe", "subscription_updated_expansion.json")[0]
    data = expansion["data"]
    # Swap before and after: 14 seats → 10 seats.
    data["object"]["items"], data["previous_attributes"]["items"] = (
        data["previous_attributes"]["items"], data["object"]["items"])
    data["object"]["quantity"], data["previous_attributes"]["quantity"] = 10, 14
    [event] = parser_for("stripe").parse(expansion, INGESTED)
    assert (event.attributes["change"], event.attributes["previous_amount"]) == ("contraction", 1_680_000)
    assert event.ingested_at == INGESTED

    status = payloads("stripe", "subscription_updated_expansion.json")[0]
    status["data"]["previous_attributes"] = {"status": "past_due"}
    [event] = parser_for("stripe").parse(status, INGESTED)
    assert (event.attributes["change"], event.attributes["previous_status"]) == ("status_change", "past_due")


def test_subscription_deleted_is_a_cancellation_with_reason_and_expanded_customer_links():
    [event] = parse("stripe", "subscription_deleted.json")
    assert summary(event, "subscription_id", "canceled_at", "cancellation_reason") == {
        "event_id": "stripe:evt_1SxCancelLkdIwHu7ix00001", "kind": "billing.subscription_canceled",
        "occurred_at": "2026-08-01T00:00:00Z", "identifiers": [CUS],
        "links": [(CUS, "salesforce.account:001Dn00000AbCdEIA3", "stripe customer metadata.salesforce_account_id")],
        "person": None,
        "attr.subscription_id": "sub_1QmZy0LkdIwHu7ixAbCd0001", "attr.canceled_at": "2026-07-03T00:00:00Z",
        "attr.cancellation_reason": "cancellation_requested",
    }


def test_yearly_cycle_invoice_paid_names_reason_and_interval():
    [event] = parse("stripe", "invoice_paid_cycle.json")
    assert summary(event, "billing_reason", "plan_interval", "amount_paid", "subscription_id", "period_start") == {
        "event_id": "stripe:invoice-in_1TzCycleInvoice0001#paid", "kind": "billing.invoice_paid",
        "occurred_at": "2027-01-09T09:05:00Z", "identifiers": [CUS, "domain:northwind-analytics.com"], "links": [],
        "person": (CUS, "billing@northwind-analytics.com"),
        "attr.billing_reason": "subscription_cycle", "attr.plan_interval": "year", "attr.amount_paid": 1_680_000,
        "attr.subscription_id": "sub_1QmZy0LkdIwHu7ixAbCd0001", "attr.period_start": "2027-01-09T09:01:00Z",
    }


def test_payment_failed_reads_the_2025_invoice_parent():
    [event] = parse("stripe", "invoice_payment_failed_2025.json")
    assert event.kind == "billing.invoice_payment_failed"
    assert event.identifiers == ["stripe.customer:cus_SelfServe00042", "domain:brightpath.io"]
    assert {k: event.attributes[k] for k in ("subscription_id", "amount_due", "attempt_count")} == {
        "subscription_id": "sub_1S0MonthlyPlan0001", "amount_due": 14700, "attempt_count": 2}


def test_test_mode_events_are_parsed_and_flagged():
    [event] = parse("stripe", "test_mode_subscription_created.json")
    assert event.attributes["livemode"] is False
    assert event.attributes["status"] == "trialing"


def test_a_list_page_splits_into_its_events_and_keys_by_customer():
    parser = parser_for("stripe")
    items = payloads("stripe", "event_list.json")
    assert [parser.event_id(p) for p in items] == ["evt_List0002", "evt_List0001"]
    assert [parser.key(p) for p in items] == ["stripe.customer:cus_ListB", "stripe.customer:cus_ListA"]
    second = parse("stripe", "event_list.json")[1]
    # No email: no domain identifier, but the Salesforce link still comes through.
    assert second.identifiers == ["stripe.customer:cus_ListA"]
    assert second.links[0].b == "salesforce.account:001Dn00000XyZaBIAV"


def test_an_event_is_one_payload_even_though_it_has_a_data_key():
    single = payloads("stripe", "customer_created.json")
    assert len(single) == 1 and single[0]["id"] == "evt_1QmZx2LkdIwHu7ix0cus0001"


def test_unmapped_types_and_missing_ids_are_refused_with_a_reason():
    assert ignored("stripe", "charge_refunded.json") == [("charge.refunded", "evt_3RefundLkdIwHu7ix0000001")]
    [(reason, detail)] = errors("stripe", "no_id.json")
    assert reason == "missing_field" and "'id'" in detail
    # The raw record still gets a stable id (a content hash) so it can be dead-lettered.
    parser = parser_for("stripe")
    no_id = payloads("stripe", "no_id.json")[0]
    assert parser.event_id(no_id) == parser.event_id(dict(no_id)) and parser.event_id(no_id).startswith("h-")
    assert parser.key(no_id) == CUS


def test_bad_created_time_is_a_bad_timestamp():
    payload = payloads("stripe", "customer_created.json")[0]
    payload["created"] = "yesterday"
    with pytest.raises(ParseError) as exc:
        parser_for("stripe").parse(payload, INGESTED)
    assert exc.value.reason == "bad_timestamp"
