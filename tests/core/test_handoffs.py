"""Handoffs: owner changes, named handoff events per segment, accepted / dropped / completed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import ValidationError

from pipeline.core.engine import apply_event
from pipeline.core.handoffs import HandoffConfig, HandoffState, HandoffTracker
from pipeline.core.state import AccountState
from pipeline.journey import load_journey, parse_journey
from schemas.events import LifecycleEvent
from schemas.handoffs import Handoff, HandoffStatus
from tests.core.factories import ev

NY = ZoneInfo("America/New_York")
EMITTED = datetime(2030, 1, 1, tzinfo=timezone.utc)
DEFAULT = yaml.safe_load(resources.files("pipeline.journeys").joinpath("default.yaml").read_text())
J = load_journey()


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY).astimezone(timezone.utc)


class Account:
    """Engine + handoff tracker, composed as AccountLogic does, with the tick optional."""

    def __init__(self, j=J) -> None:
        self.journey = j
        self.tracker = HandoffTracker(j)
        self.state = AccountState(account_id="acct:1")

    def send(self, event: LifecycleEvent, tick: bool = True) -> list[Handoff]:
        out = self.tick(event.occurred_at) if tick else []
        result = apply_event(self.journey, self.state, event, EMITTED)
        return out + self.tracker.on_event(self.state.handoffs, self.state, event, result.transitions, EMITTED)

    def tick(self, now: datetime) -> list[Handoff]:
        return self.tracker.on_tick(self.state.handoffs, self.state, now, EMITTED)


def summary(records: list[Handoff]) -> list[tuple[str | None, str, str, int]]:
    return [(h.from_team, h.to_team, h.status.value, h.version) for h in records]


MQL_AT, SQL_AT, WON_AT = ny(2025, 3, 3, 9), ny(2025, 3, 4, 10), ny(2025, 3, 7, 16)


def mql(when: datetime = MQL_AT, **kw: Any) -> LifecycleEvent:
    return ev("crm.lead_qualified", when, qualification="mql", event_id="mql", **kw)


def sql(when: datetime = SQL_AT, **kw: Any) -> LifecycleEvent:
    return ev("crm.lead_qualified", when, qualification="sql", event_id="sql", **kw)


def won(when: datetime = WON_AT, **kw: Any) -> LifecycleEvent:
    return ev("crm.deal_won", when, event_id="won", deal_id="d1", **kw)


def activity(kind: str, when: datetime, **kw: Any) -> LifecycleEvent:
    return ev("crm.activity_logged", when, activity_type=kind, **kw)


def track(name: str, when: datetime, **kw: Any) -> LifecycleEvent:
    return ev("product.track", when, event=name, **kw)


# ---- marketing → sales at MQL → SQL ------------------------------------------------------------
def test_owner_change_opens_a_handoff():
    a = Account()
    assert a.send(mql(owner_id="u-marketer")) == []
    [h] = a.send(sql())
    assert (h.from_team, h.to_team, h.from_stage, h.to_stage) == ("marketing", "sales", "MQL", "SQL")
    assert h.status is HandoffStatus.OPENED and h.version == 1
    assert h.handoff_id == Handoff.make_id("acct:1", "sales", "sql")
    assert h.handoff_event == "stage_change" and h.trigger_event_id == "sql" and h.occurred_at == SQL_AT
    assert h.from_owner == "u-marketer" and h.to_owner is None
    assert h.segment == "mid_market"
    assert h.overlap_until == ny(2025, 4, 18, 10)   # 45 calendar days, local wall clock across DST
    assert a.tracker.next_deadline(a.state.handoffs) == SQL_AT + timedelta(days=2)   # sales: 2 days


def test_accepted_at_the_receiving_teams_first_action_then_completed_after_the_overlap():
    a = Account()
    a.send(mql(owner_id="u-marketer"))
    [opened] = a.send(sql())
    assert a.send(activity("note", SQL_AT + timedelta(hours=1), event_id="x")) != []
    [completed] = a.tick(SQL_AT + timedelta(days=60))
    assert completed.status is HandoffStatus.COMPLETED and completed.version == 3
    assert completed.handoff_id == opened.handoff_id
    assert completed.closed_at == opened.overlap_until
    assert a.state.handoffs.open == []
    assert a.tracker.next_deadline(a.state.handoffs) is None


def test_accepted_record_carries_first_action_and_receiving_owner():
    a = Account()
    a.send(mql(owner_id="u-marketer"))
    a.send(sql())
    first = SQL_AT + timedelta(hours=5)
    [accepted] = a.send(activity("call", first, owner_id="u-sdr"))
    assert accepted.status is HandoffStatus.ACCEPTED and accepted.version == 2
    assert accepted.first_action_at == first and accepted.to_owner == "u-sdr"
    assert a.tracker.next_deadline(a.state.handoffs) == accepted.overlap_until
    # A second action changes nothing.
    assert a.send(activity("call", first + timedelta(hours=1))) == []


def test_crm_owner_change_names_the_receiving_owner():
    a = Account()
    a.send(mql(owner_id="u-marketer"))
    a.send(sql())
    a.send(ev("crm.owner_changed", SQL_AT + timedelta(hours=1), object="company", owner_id="u-ae",
              previous_owner_id="u-marketer"))
    [accepted] = a.send(ev("crm.opportunity_created", SQL_AT + timedelta(hours=2), deal_id="d1"))
    assert accepted.to_owner == "u-ae" and accepted.from_owner == "u-marketer"


def test_the_triggering_event_is_not_the_first_action():
    a = Account()
    a.send(mql())
    # Sales creates the opportunity: that is what moves the account to SQL, not an acceptance.
    [opened] = a.send(ev("crm.opportunity_created", SQL_AT, deal_id="d1", event_id="opp"))
    assert opened.status is HandoffStatus.OPENED


def test_dropped_without_first_action_then_accepted_late_then_completed():
    a = Account()
    a.send(mql())
    [opened] = a.send(sql())
    assert a.tick(SQL_AT + timedelta(days=2) - timedelta(seconds=1)) == []
    [dropped] = a.tick(SQL_AT + timedelta(days=2))
    assert dropped.status is HandoffStatus.DROPPED and dropped.version == 2
    assert dropped.closed_at == SQL_AT + timedelta(days=2)
    assert a.tick(SQL_AT + timedelta(days=3)) == []          # once only
    [late] = a.send(activity("call", SQL_AT + timedelta(days=4)))
    assert late.status is HandoffStatus.ACCEPTED and late.version == 3 and late.closed_at is None
    [done] = a.tick(opened.overlap_until)
    assert done.status is HandoffStatus.COMPLETED and done.version == 4
    assert {h.handoff_id for h in (opened, dropped, late, done)} == {opened.handoff_id}


def test_never_accepted_is_dropped_once_and_not_completed():
    a = Account()
    a.send(mql())
    a.send(sql())
    out = []
    for day in range(0, 100, 3):
        out += a.tick(SQL_AT + timedelta(days=day))
    assert summary(out) == [("marketing", "sales", "dropped", 2)]
    assert a.state.handoffs.open == []
    assert a.send(activity("call", SQL_AT + timedelta(days=101))) == []


def test_event_driven_drop_equals_tick_driven():
    ticked, unticked = Account(), Account()
    for a in (ticked, unticked):
        a.send(mql())
        a.send(sql())
    late = activity("call", SQL_AT + timedelta(days=3), event_id="late-call")
    with_tick, without_tick = ticked.send(late, tick=True), unticked.send(late, tick=False)
    assert summary(with_tick) == [("marketing", "sales", "dropped", 2), ("marketing", "sales", "accepted", 3)]
    assert with_tick == without_tick
    assert ticked.state.handoffs == unticked.state.handoffs


def test_actions_dated_before_the_handoff_do_not_accept_it():
    a = Account()
    a.send(mql())
    a.send(sql())
    assert a.send(activity("call", SQL_AT - timedelta(hours=1)), tick=False) == []


# ---- sales → customer success at the named handoff event ------------------------------------------
def test_enterprise_hands_over_at_contract_execution():
    a = Account()
    a.send(sql(segment="enterprise"))
    [h] = a.send(won(segment="enterprise", owner_id="u-ae"))
    assert (h.from_team, h.to_team, h.to_stage, h.handoff_event) == (
        "sales", "customer_success", "closed-won", "contract_execution")
    assert h.trigger_event_id == "won" and h.segment == "enterprise"
    # Customer success: 5 business days, in New York time across the DST change.
    assert a.tracker.next_deadline(a.state.handoffs) == ny(2025, 3, 14, 16)
    # The owner change at onboarding is the same handoff, not a second one.
    assert a.send(track("Onboarding Started", ny(2025, 3, 10, 9))) == []
    assert a.state.stage == "onboarding" and len(a.state.handoffs.open) == 1


def test_self_serve_hands_over_at_first_activation_not_at_contract_or_onboarding():
    a = Account()
    a.send(sql(segment="self_serve"))
    assert a.send(won(segment="self_serve")) == []
    assert a.send(track("Onboarding Started", ny(2025, 3, 8, 9))) == []
    [h] = a.send(track("Workspace Activated", ny(2025, 3, 9, 9), event_id="act"))
    assert (h.from_team, h.to_team, h.to_stage, h.handoff_event, h.trigger_event_id) == (
        "sales", "customer_success", "adoption", "first_activation", "act")
    assert a.send(track("First Value Reached", ny(2025, 3, 10, 9))) == []    # first only


def test_activation_event_that_moves_no_stage_still_hands_over():
    custom = {**DEFAULT["handoffs"], "activation_events": [{"kind": "product.track",
                                                            "where": {"event": "Teammate Invited"}}]}
    a = Account(parse_journey({**DEFAULT, "handoffs": custom}))
    a.send(won(segment="self_serve"))
    [h] = a.send(track("Teammate Invited", ny(2025, 3, 8, 9), event_id="inv"))
    assert (h.to_stage, h.from_stage, h.trigger_event_id, h.handoff_event) == (
        "closed-won", "closed-won", "inv", "first_activation")


def test_either_hands_over_at_whichever_comes_first():
    contract_first = Account()
    contract_first.send(sql(segment="mid_market"))
    [h] = contract_first.send(won(segment="mid_market"))
    assert (h.handoff_event, h.trigger_event_id) == ("either", "won")
    assert contract_first.send(track("Workspace Activated", ny(2025, 3, 9))) == []

    activation_first = Account()
    activation_first.send(sql(segment="mid_market"))
    [h] = activation_first.send(track("Workspace Activated", ny(2025, 3, 6), event_id="act"))
    assert (h.handoff_event, h.trigger_event_id) == ("either", "act")
    assert activation_first.send(won(segment="mid_market")) == []


def test_segment_default_mode_comes_from_config():
    custom = {**DEFAULT["handoffs"], "named_event": {}, "named_event_default": "first_activation"}
    a = Account(parse_journey({**DEFAULT, "handoffs": custom}))
    assert a.send(won(segment="enterprise")) == []
    assert summary(a.send(track("Workspace Activated", ny(2025, 3, 9)))) == [
        ("sales", "customer_success", "opened", 1)]


def test_customer_success_first_action_accepts_and_uses_business_days():
    a = Account()
    a.send(won(segment="enterprise"))
    [accepted] = a.send(activity("welcome", WON_AT + timedelta(minutes=30), owner_id="u-csm"))
    assert accepted.status is HandoffStatus.ACCEPTED and accepted.to_owner == "u-csm"

    b = Account()
    b.send(won(segment="enterprise"))
    assert b.tick(ny(2025, 3, 14, 15)) == []         # business day 5, before 16:00
    assert summary(b.tick(ny(2025, 3, 14, 16))) == [("sales", "customer_success", "dropped", 2)]


def test_churn_is_not_a_handoff_and_a_win_back_hands_over_again():
    a = Account()
    a.send(won(segment="self_serve"))
    a.send(track("Workspace Activated", ny(2025, 3, 9), event_id="act-1"))
    a.send(activity("call", ny(2025, 3, 10)))
    assert a.send(ev("billing.subscription_canceled", ny(2025, 4, 1))) == []   # regression
    # Winning the account back is not a handoff by itself; the first one's overlap ended meanwhile.
    assert summary(a.send(ev("billing.subscription_created", ny(2025, 8, 1), status="active"))) == [
        ("sales", "customer_success", "completed", 3)]
    assert a.state.stage == "re-engaged"
    [again] = a.send(track("Workspace Activated", ny(2025, 8, 3), event_id="act-2"))
    assert again.trigger_event_id == "act-2" and again.handoff_id != Handoff.make_id("acct:1", "customer_success",
                                                                                     "act-1")


# ---- customer success → advocacy -------------------------------------------------------------------
def test_customer_success_to_advocacy_at_advocate():
    a = Account()
    a.send(won(segment="enterprise"))
    a.send(track("Workspace Activated", ny(2025, 4, 1)))
    [h] = a.send(activity("referral", ny(2025, 6, 2, 10), event_id="ref"))
    # (renewal is inferred on the way: the jump's last step hands over)
    assert (h.from_team, h.to_team, h.from_stage, h.to_stage) == ("customer_success", "advocacy", "renewal",
                                                                   "advocate")
    assert a.tracker.next_deadline(a.state.handoffs) == ny(2025, 6, 16, 10)     # 10 business days


# ---- config, state -----------------------------------------------------------------------------
def test_overlap_is_configurable_within_30_to_90_days():
    custom = {**DEFAULT["handoffs"], "overlap_days": 30}
    a = Account(parse_journey({**DEFAULT, "handoffs": custom}))
    a.send(mql())
    [h] = a.send(sql())
    assert h.overlap_until == ny(2025, 4, 3, 10)
    for bad in (29, 91):
        with pytest.raises(ValidationError):
            HandoffConfig(overlap_days=bad)
    with pytest.raises(ValidationError, match="sideways"):
        HandoffConfig(directions=["sideways"])


def test_unlisted_team_uses_the_default_team_rule():
    config = HandoffConfig()
    assert config.team("partners") == config.default_team
    assert str(config.default_team.accept_within) == "5 business days"
    assert {"crm.activity_logged", "crm.opportunity_created", "product.track", "crm.owner_changed"} <= \
        config.event_kinds()


def test_state_round_trips_through_json_and_deterministic():
    def run() -> tuple[list[Handoff], HandoffState]:
        a = Account()
        out = a.send(mql()) + a.send(sql()) + a.send(won(segment="enterprise"))
        out += a.send(activity("call", WON_AT + timedelta(days=1)))
        return out, a.state.handoffs
    (first, state), (second, _) = run(), run()
    assert first == second
    assert HandoffState.model_validate_json(state.model_dump_json()) == state
