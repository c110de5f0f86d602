"""Issue 10 item 8: an account's segment comes from facts its events establish (journey
``segmentation.facts``/``rules``), so a self-serve card signup with no CRM deal is not treated
as mid-market and gets no kickoff SLA."""

from __future__ import annotations


import pytest

from connectors.registry import parse_raw
from pipeline.core.account import AccountLogic
from pipeline.core.state import AccountState
from pipeline.journey import JourneyError, load_journey, parse_journey
from tests import histories as h
from tests.core.test_account_sla import EMITTED, J, event, ny

KICKOFF = "customer-kickoff"


def _invoiced(records):
    """The same signup, paid by invoice (``send_invoice``): not a card payment."""
    out = []
    for r in records:
        r = r.model_copy(deep=True)
        obj = r.payload["data"]["object"]
        if "collection_method" in obj:
            obj["collection_method"] = "send_invoice"
        out.append(r)
    return out


def test_stripe_says_how_a_subscription_is_collected() -> None:
    _, sub = h.self_serve("cus_seg1")
    [event_] = parse_raw(sub)
    assert event_.kind == "billing.subscription_created"
    assert event_.attributes["collection_method"] == "charge_automatically"


def test_a_card_signup_without_a_deal_is_self_serve_and_gets_no_kickoff_sla() -> None:
    out, stats = h.replay(h.self_serve("cus_seg2"), now=h.day(30))
    account = out.accounts["acct:stripe.customer:cus_seg2"]
    assert not stats.dead_letters
    assert [(t.from_stage, t.to_stage) for t in out.transitions] == [(None, "closed-won")]
    assert account.facts == ["card_payment"] and account.segment_of(J.segmentation) == "self_serve"
    assert not [b for b in out.breaches if b.sla_id == KICKOFF]
    # SLAs that do apply to self-serve still run: nothing welcomed the customer within the hour.
    assert "welcome-message" in {b.sla_id for b in out.breaches}


def test_the_same_signup_paid_by_invoice_stays_mid_market_and_its_kickoff_breaches() -> None:
    out, _ = h.replay(_invoiced(h.self_serve("cus_seg3")), now=h.day(30))
    account = out.accounts["acct:stripe.customer:cus_seg3"]
    assert account.facts == [] and account.segment_of(J.segmentation) == "mid_market"
    assert [b.account_id for b in out.breaches if b.sla_id == KICKOFF] == ["acct:stripe.customer:cus_seg3"]


def test_a_deal_makes_it_sales_led_and_a_stated_segment_wins() -> None:
    logic, state = AccountLogic(J, clock=lambda: EMITTED), AccountState(account_id="acct:x")
    card = event("billing.subscription_created", ny(2025, 3, 7, 16), "sub", subscription_id="sub_1",
                 status="active", plan_interval="month", collection_method="charge_automatically")
    opp = event("crm.opportunity_created", ny(2025, 3, 4, 10), "opp", deal_id="d-1", stage="qualified")
    logic.on_event(state, opp)
    logic.on_event(state, card)
    assert set(state.facts) == {"crm_deal", "card_payment"}
    assert state.segment_of(J.segmentation) == "mid_market"          # sold to: the rule does not hold
    assert [c.rule_id for c in state.sla.clocks if c.rule_id == KICKOFF] == [KICKOFF]
    stated = AccountState(account_id="acct:y", segment="enterprise", facts=["card_payment"])
    assert stated.segment_of(J.segmentation) == "enterprise"


def test_the_handoff_of_a_self_serve_account_waits_for_first_activation() -> None:
    history = h.self_serve("cus_seg4")
    out, _ = h.replay(history, now=h.day(2))
    assert not out.handoffs  # self_serve hands over at first activation, not at the contract
    out_inv, _ = h.replay(_invoiced(history), now=h.day(2))
    assert {ho.segment for ho in out_inv.handoffs} == {"mid_market"}


def test_a_rule_naming_an_unknown_fact_is_refused_by_name() -> None:
    data = load_journey().model_dump(mode="json", by_alias=True)
    data["segmentation"]["rules"] = [{"segment": "self_serve", "all": ["card_paymnet"]}]
    with pytest.raises(JourneyError, match=r"segmentation: rules\[0\] \(self_serve\) names unknown fact"):
        parse_journey(data, "j.yaml")


def test_facts_survive_a_round_trip_of_the_journey_file() -> None:
    data = load_journey().model_dump(mode="json", by_alias=True)
    again = parse_journey(data, "j.yaml")
    assert again.segmentation == J.segmentation and again.segmentation.rules[0].all_ == ("card_payment",)
