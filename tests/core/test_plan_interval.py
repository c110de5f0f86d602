"""Stripe invoices of newer API versions may not state their price's interval: the account state
remembers the interval each subscription was seen with, so a yearly renewal still counts."""

from __future__ import annotations

from datetime import datetime, timezone

from pipeline.core.account import PLAN_INTERVALS_KEPT, AccountLogic
from pipeline.core.state import AccountState
from pipeline.journey import load_journey
from tests.core.factories import ev

J = load_journey()
EMITTED = datetime(2031, 1, 1, tzinfo=timezone.utc)


def run(*events):
    logic, state = AccountLogic(J, clock=lambda: EMITTED), AccountState(account_id="acct:stripe.customer:cus_1")
    for e in events:
        logic.on_event(state, e)
    return state


def subscription(days, interval, sub="sub_1"):
    return ev("billing.subscription_created", days, account="stripe.customer:cus_1", subscription_id=sub,
              plan_interval=interval, status="active")


def renewal_invoice(days, sub="sub_1", interval=None):
    return ev("billing.invoice_paid", days, account="stripe.customer:cus_1", invoice_id=f"in_{days}",
              subscription_id=sub, billing_reason="subscription_cycle", plan_interval=interval)


def test_invoice_without_interval_counts_as_yearly_renewal_of_a_yearly_subscription():
    state = run(subscription(0, "year"), renewal_invoice(365))
    assert state.stage == "renewal"
    assert state.plan_intervals == {"sub_1": "year"}


def test_the_same_invoice_alone_is_no_renewal():
    assert run(renewal_invoice(365)).stage != "renewal"


def test_a_monthly_subscription_does_not_make_it_a_yearly_renewal():
    assert run(subscription(0, "month"), renewal_invoice(30)).stage != "renewal"


def test_the_invoice_goes_by_its_own_subscription():
    state = run(subscription(0, "year", sub="sub_y"), subscription(1, "month", sub="sub_m"),
                renewal_invoice(365, sub="sub_y"))
    assert state.stage == "renewal"
    assert run(subscription(0, "year", sub="sub_y"), subscription(1, "month", sub="sub_m"),
               renewal_invoice(31, sub="sub_m")).stage != "renewal"


def test_a_stated_interval_is_kept_and_an_inferred_one_is_not_remembered():
    state = run(subscription(0, "year"),
                ev("billing.invoice_paid", 30, account="stripe.customer:cus_1", invoice_id="in_x",
                   subscription_id="sub_1", billing_reason="subscription_update", plan_interval="month",
                   plan_interval_inferred=True))
    assert state.plan_intervals == {"sub_1": "year"}


def test_remembered_subscriptions_are_bounded():
    state = run(*(subscription(i, "year", sub=f"sub_{i}") for i in range(PLAN_INTERVALS_KEPT + 3)))
    assert len(state.plan_intervals) == PLAN_INTERVALS_KEPT
    assert "sub_0" not in state.plan_intervals and f"sub_{PLAN_INTERVALS_KEPT + 2}" in state.plan_intervals
