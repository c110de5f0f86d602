"""SLA rules and tracker: deadlines, inactivity, before-date, promised time-to-value."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from pipeline.core.engine import apply_event
from pipeline.core.sla import PROMISED_TTV_ID, SlaRule, SlaState, SlaTracker
from pipeline.core.state import AccountState
from pipeline.journey import JourneyError, parse_journey
from schemas.events import LifecycleEvent
from schemas.sla import SlaBreach, SlaBreachStatus
from tests.core.factories import ev

NY = ZoneInfo("America/New_York")
EMITTED = datetime(2030, 1, 1, tzinfo=timezone.utc)
DEFAULT = yaml.safe_load(resources.files("pipeline.journeys").joinpath("default.yaml").read_text())


def ny(*args: int) -> datetime:
    """New York wall-clock time as a UTC instant (so ``+ timedelta`` is elapsed time)."""
    return datetime(*args, tzinfo=NY).astimezone(timezone.utc)


def journey(*rule_ids: str, extra: list[dict[str, Any]] = (), **changes: Any):
    """The default journey with only the named default SLAs (plus extra rules)."""
    rules = [r for r in DEFAULT["slas"] if r["id"] in rule_ids] + list(extra)
    return parse_journey({**DEFAULT, "slas": rules, **changes}, "test.yaml")


class Account:
    """Engine + SLA tracker, the way AccountLogic composes them, with the tick optional."""

    def __init__(self, j, account_id: str = "acct:1") -> None:
        self.journey = j
        self.sla = SlaTracker(j)
        self.state = AccountState(account_id=account_id)

    def send(self, event: LifecycleEvent, tick: bool = True) -> list[SlaBreach]:
        out = self.tick(event.occurred_at) if tick else []
        result = apply_event(self.journey, self.state, event, EMITTED)
        return out + self.sla.on_event(self.state.sla, self.state, event, result.transitions, EMITTED)

    def tick(self, now: datetime) -> list[SlaBreach]:
        return self.sla.on_tick(self.state.sla, self.state, now, EMITTED)


def statuses(breaches: list[SlaBreach]) -> list[tuple[str, str]]:
    return [(b.sla_id, b.status.value) for b in breaches]


WON_AT = ny(2025, 3, 7, 16)            # Friday 16:00 EST; DST starts Sunday 03-09
KICKOFF_DUE = ny(2025, 3, 14, 16)      # + 5 business days: Friday 16:00 EDT


def won(when: datetime = WON_AT, **attrs: Any) -> LifecycleEvent:
    return ev("crm.deal_won", when, event_id="won-1", deal_id="d1", **attrs)


def activity(kind: str, when: datetime, event_id: str | None = None) -> LifecycleEvent:
    return ev("crm.activity_logged", when, activity_type=kind, event_id=event_id)


def track(name: str, when: datetime, event_id: str | None = None) -> LifecycleEvent:
    return ev("product.track", when, event=name, event_id=event_id)


# ---- deadline ------------------------------------------------------------------------------
def test_kickoff_on_business_day_4_emits_nothing():
    a = Account(journey("customer-kickoff"))
    assert a.send(won()) == []
    assert a.sla.next_deadline(a.state.sla) == KICKOFF_DUE
    assert a.send(activity("kickoff", ny(2025, 3, 13, 11))) == []     # Thursday: business day 4
    assert a.state.sla.clocks == []
    assert a.tick(ny(2025, 4, 1)) == []
    assert a.sla.next_deadline(a.state.sla) is None


def test_kickoff_on_business_day_7_breaches_at_the_deadline_then_met_late():
    a = Account(journey("customer-kickoff"))
    a.send(won())
    assert a.tick(KICKOFF_DUE - timedelta(seconds=1)) == []
    [breach] = a.tick(KICKOFF_DUE)
    assert breach.status is SlaBreachStatus.BREACHED
    assert breach.deadline == KICKOFF_DUE == datetime(2025, 3, 14, 20, tzinfo=timezone.utc)
    assert breach.detected_at == KICKOFF_DUE
    assert breach.started_at == WON_AT and breach.start_event_id == "won-1"
    assert (breach.sla_name, breach.owner_team, breach.severity) == (
        "Customer kickoff within 5 business days of contract signing", "customer_success", "high")
    assert breach.breach_id == SlaBreach.make_id("acct:1", "customer-kickoff", "won-1")
    assert breach.record_id == breach.breach_id + ":breached"
    assert breach.met_at is None and breach.late_by_seconds is None

    kickoff_at = ny(2025, 3, 18, 10)                                    # Tuesday: business day 7
    [late] = a.send(activity("kickoff", kickoff_at, event_id="kick-1"))
    assert late.status is SlaBreachStatus.MET_LATE
    assert late.breach_id == breach.breach_id and late.record_id == breach.breach_id + ":met_late"
    assert late.met_at == kickoff_at and late.met_event_id == "kick-1"
    assert late.late_by_seconds == (kickoff_at - KICKOFF_DUE).total_seconds() == 3 * 86400 + 18 * 3600
    assert a.state.sla.clocks == []


def test_never_met_breaches_exactly_once_however_often_ticked():
    a = Account(journey("customer-kickoff"))
    a.send(won())
    out = []
    for hours in range(0, 24 * 30, 7):
        out += a.tick(WON_AT + timedelta(hours=hours))
    assert statuses(out) == [("customer-kickoff", "breached")]
    assert out[0].detected_at == ny(2025, 3, 14, 17)   # the first tick at or after the deadline
    assert a.sla.next_deadline(a.state.sla) is None
    assert a.send(activity("meeting", ny(2025, 4, 20))) == []   # not a kickoff


def test_event_driven_detection_equals_tick_driven():
    kickoff = activity("kickoff", ny(2025, 3, 18, 10), event_id="kick-1")
    ticked, unticked = Account(journey("customer-kickoff")), Account(journey("customer-kickoff"))
    for a in (ticked, unticked):
        a.send(won())
    with_tick = ticked.send(kickoff, tick=True)
    without_tick = unticked.send(kickoff, tick=False)
    assert statuses(with_tick) == [("customer-kickoff", "breached"), ("customer-kickoff", "met_late")]
    assert with_tick == without_tick
    assert with_tick[0].detected_at == kickoff.occurred_at
    assert ticked.state.sla == unticked.state.sla


def test_met_exactly_at_the_deadline_is_late():
    a = Account(journey("customer-kickoff"))
    a.send(won())
    out = a.send(activity("kickoff", KICKOFF_DUE))
    assert statuses(out) == [("customer-kickoff", "breached"), ("customer-kickoff", "met_late")]
    assert out[1].late_by_seconds == 0


def test_expect_before_the_clock_started_does_not_meet_it():
    a = Account(journey("customer-kickoff"))
    a.send(won())
    # A kickoff logged with an earlier event time (arrives late) does not count for this clock.
    assert a.send(activity("kickoff", WON_AT - timedelta(days=1)), tick=False) == []
    assert len(a.state.sla.clocks) == 1


def test_expect_any_of_an_event_or_a_stage():
    for closer in (activity("call", ny(2025, 6, 2, 12)),
                   ev("crm.lead_qualified", ny(2025, 6, 2, 12), qualification="sql")):
        a = Account(journey("mql-follow-up"))
        a.send(ev("crm.lead_qualified", ny(2025, 6, 2, 9), qualification="mql"))
        assert a.sla.next_deadline(a.state.sla) == ny(2025, 6, 3, 9)
        assert a.send(closer) == []
        assert a.state.sla.clocks == []
    a = Account(journey("mql-follow-up"))
    a.send(ev("crm.lead_qualified", ny(2025, 6, 2, 9), qualification="mql"))
    assert statuses(a.tick(ny(2025, 6, 3, 9))) == [("mql-follow-up", "breached")]


def test_stage_expect_met_by_a_jump_in_the_same_event():
    # SQL straight to onboarding by a kickoff: closed-won is inferred, onboarding reached
    # at the same instant, and the kickoff itself is the expected event.
    a = Account(journey("customer-kickoff", "onboarding-started"))
    a.send(ev("crm.lead_qualified", ny(2025, 6, 2, 9), qualification="sql"))
    assert a.send(activity("kickoff", ny(2025, 6, 3, 9))) == []
    assert a.state.stage == "onboarding" and a.state.sla.clocks == []


def test_a_start_firing_again_keeps_a_running_clock_and_replaces_a_breached_one():
    a = Account(journey("mql-follow-up"))
    mql = lambda when, eid: ev("crm.lead_qualified", when, qualification="mql", event_id=eid)
    a.send(mql(ny(2025, 6, 2, 9), "m1"))
    a.send(ev("crm.lead_qualified", ny(2025, 6, 2, 10), qualification="sql", event_id="s1"))
    assert a.state.sla.clocks == []                     # met by SQL
    a.send(ev("crm.deal_lost", ny(2025, 6, 5, 9), event_id="lost"))   # back to MQL: a new clock
    [clock] = a.state.sla.clocks
    assert clock.start_event_id == "lost" and clock.deadline == ny(2025, 6, 6, 9)
    [b] = a.tick(ny(2025, 6, 7))
    assert b.breach_id == SlaBreach.make_id("acct:1", "mql-follow-up", "lost")


def test_cancel_on_stages_drops_the_clock_without_breach():
    a = Account(journey("customer-kickoff", "onboarding-started"))
    a.send(won())
    a.send(ev("billing.subscription_canceled", ny(2025, 3, 10, 9)))
    assert a.state.stage == "churned"
    assert a.state.sla.clocks == [] and a.sla.next_deadline(a.state.sla) is None
    assert a.tick(ny(2025, 6, 1)) == []


def test_cancel_also_ends_waiting_for_met_late():
    a = Account(journey("customer-kickoff"))
    a.send(won())
    assert len(a.tick(ny(2025, 3, 20))) == 1
    a.send(ev("billing.subscription_canceled", ny(2025, 3, 21, 9)))
    assert a.send(activity("kickoff", ny(2025, 3, 22, 9))) == []


@pytest.mark.parametrize("segment, applies", [("enterprise", True), ("mid_market", True), ("self_serve", False)])
def test_segments_filter_rules(segment, applies):
    a = Account(journey("customer-kickoff"))
    a.send(won(segment=segment))
    assert bool(a.state.sla.clocks) is applies
    assert bool(a.tick(ny(2025, 4, 1))) is applies


def test_account_without_segment_uses_the_journey_default():
    j = journey("customer-kickoff", segmentation={"attribute": "segment", "default": "self_serve"})
    a = Account(j)
    a.send(won())
    assert a.state.sla.clocks == []


def test_deterministic_outputs_and_ids():
    def run() -> list[SlaBreach]:
        a = Account(journey("customer-kickoff", "welcome-message", "onboarding-started"))
        out = a.send(won())
        out += a.send(activity("welcome", ny(2025, 3, 7, 19), event_id="w1"))
        out += a.send(activity("kickoff", ny(2025, 3, 21, 10), event_id="k1"))
        return out + a.tick(ny(2025, 4, 1))
    first, second = run(), run()
    assert first == second
    assert statuses(first) == [
        ("welcome-message", "breached"), ("welcome-message", "met_late"),
        ("customer-kickoff", "breached"), ("onboarding-started", "breached"),
        # the kickoff moves the account to onboarding (stage expect) and is the kickoff (event expect)
        ("onboarding-started", "met_late"), ("customer-kickoff", "met_late"),
    ]
    assert len({b.record_id for b in first}) == len(first)


def test_state_round_trips_through_json():
    a = Account(journey("customer-kickoff", "silent-disengagement"))
    a.send(won())
    a.send(activity("kickoff", ny(2025, 3, 11, 10)))
    restored = SlaState.model_validate_json(a.state.sla.model_dump_json())
    assert restored == a.state.sla and restored.clocks


def test_clocks_of_a_rule_removed_from_the_journey_are_dropped():
    a = Account(journey("customer-kickoff"))
    a.send(won())
    other = SlaTracker(journey("welcome-message"))
    assert other.on_tick(a.state.sla, a.state, ny(2025, 6, 1), EMITTED) == []
    assert a.state.sla.clocks == []


# ---- inactivity ----------------------------------------------------------------------------
ONBOARDING_AT = ny(2025, 4, 1, 10)


def onboarded() -> Account:
    a = Account(journey("silent-disengagement"))
    a.send(won(ny(2025, 3, 28, 10)))
    a.send(track("Onboarding Started", ONBOARDING_AT, event_id="onb"))
    return a


def test_inactivity_every_event_resets_the_gap():
    a = onboarded()
    assert a.sla.next_deadline(a.state.sla) == ONBOARDING_AT + timedelta(days=14)
    for day in (10, 20, 30):
        assert a.send(track("Report Viewed", ONBOARDING_AT + timedelta(days=day), event_id=f"u{day}")) == []
    [clock] = a.state.sla.clocks
    assert clock.start_event_id == "u30" and clock.deadline == ny(2025, 5, 15, 10)


def test_inactivity_breach_then_met_late_when_activity_resumes_then_watching_goes_on():
    a = onboarded()
    a.send(track("Report Viewed", ny(2025, 4, 5, 10), event_id="u1"))
    [gap] = a.tick(ny(2025, 4, 25))
    assert gap.status is SlaBreachStatus.BREACHED and gap.deadline == ny(2025, 4, 19, 10)
    assert gap.breach_id == SlaBreach.make_id("acct:1", "silent-disengagement", "u1")
    assert gap.started_at == ny(2025, 4, 5, 10)
    assert a.tick(ny(2025, 4, 26)) == []
    [back] = a.send(track("Report Viewed", ny(2025, 4, 28, 10), event_id="u2"))
    assert back.status is SlaBreachStatus.MET_LATE and back.breach_id == gap.breach_id
    assert back.late_by_seconds == 9 * 86400
    # A second gap is a second breach with its own id.
    [gap2] = a.tick(ny(2025, 5, 13))
    assert gap2.breach_id == SlaBreach.make_id("acct:1", "silent-disengagement", "u2")


def test_inactivity_window_closes_after_active_for():
    a = onboarded()
    window_end = ONBOARDING_AT + timedelta(days=90)            # 2025-06-30 10:00 local
    a.send(track("Report Viewed", window_end - timedelta(days=5), event_id="late-use"))
    # The 14-day gap would end after the window: no breach, the clock closes at the window's end.
    assert a.sla.next_deadline(a.state.sla) == window_end
    assert a.tick(window_end) == []
    assert a.state.sla.clocks == [] and a.sla.next_deadline(a.state.sla) is None
    assert a.tick(window_end + timedelta(days=60)) == []


def test_inactivity_window_closing_seen_by_an_event_equals_by_a_tick():
    a, b = onboarded(), onboarded()
    later = track("Report Viewed", ONBOARDING_AT + timedelta(days=100), event_id="x")
    a.send(track("Report Viewed", ONBOARDING_AT + timedelta(days=85), event_id="y"))
    b.send(track("Report Viewed", ONBOARDING_AT + timedelta(days=85), event_id="y"))
    assert a.send(later, tick=True) == b.send(later, tick=False) == []
    assert a.state.sla == b.state.sla


def test_inactivity_breached_gap_is_met_late_even_after_the_window():
    a = onboarded()
    a.send(track("Report Viewed", ONBOARDING_AT + timedelta(days=70), event_id="u70"))
    [gap] = a.tick(ONBOARDING_AT + timedelta(days=86))
    [back] = a.send(track("Report Viewed", ONBOARDING_AT + timedelta(days=95)))
    assert back.breach_id == gap.breach_id and back.status is SlaBreachStatus.MET_LATE
    assert a.state.sla.clocks == []        # window over: no new gap is watched


# ---- before_date ---------------------------------------------------------------------------
def yearly_sub(period_end: Any, when: datetime = ny(2025, 3, 7, 17), kind: str = "billing.subscription_created",
               **attrs: Any) -> LifecycleEvent:
    key = "current_period_end" if kind == "billing.subscription_created" else "period_end"
    return ev(kind, when, event_id=f"sub-{period_end}", status="active", plan_interval="year",
              **{key: period_end}, **attrs)


@pytest.mark.parametrize("period_end", ["2026-03-07T16:00:00-05:00", "2026-03-07T21:00:00Z",
                                        int(datetime(2026, 3, 7, 21, tzinfo=timezone.utc).timestamp())])
def test_before_date_deadline_is_the_date_minus_the_duration(period_end):
    a = Account(journey("renewal-touchpoint"))
    a.send(yearly_sub(period_end))
    [clock] = a.state.sla.clocks
    assert clock.deadline == ny(2025, 12, 7, 16)       # 90 calendar days before, local wall clock
    assert clock.started_at == ny(2025, 3, 7, 17)


def test_before_date_reads_a_plain_date_in_the_calendar_zone():
    a = Account(journey("renewal-touchpoint"))
    a.send(yearly_sub("2026-03-07"))
    assert a.state.sla.clocks[0].deadline == ny(2025, 12, 7)


def test_before_date_met_in_time_or_breached_then_met_late():
    a = Account(journey("renewal-touchpoint"))
    a.send(yearly_sub("2026-03-07T16:00:00-05:00"))
    assert a.send(activity("renewal", ny(2025, 11, 20, 10))) == []
    assert a.state.sla.clocks == []

    b = Account(journey("renewal-touchpoint"))
    b.send(yearly_sub("2026-03-07T16:00:00-05:00"))
    out = b.send(activity("renewal", ny(2026, 1, 15, 10)))
    assert statuses(out) == [("renewal-touchpoint", "breached"), ("renewal-touchpoint", "met_late")]
    assert out[0].deadline == ny(2025, 12, 7, 16)


def test_before_date_needs_the_date_and_a_matching_start():
    a = Account(journey("renewal-touchpoint"))
    a.send(ev("billing.subscription_created", ny(2025, 3, 7), status="active", plan_interval="year"))
    a.send(ev("billing.subscription_created", ny(2025, 3, 8), status="active", plan_interval="month",
              current_period_end="2025-04-08"))
    a.send(ev("billing.invoice_paid", ny(2025, 3, 9), plan_interval="year", period_end="not a date"))
    assert a.state.sla.clocks == []


def test_before_date_same_contract_end_from_two_events_is_one_clock_and_a_new_end_replaces_it():
    a = Account(journey("renewal-touchpoint"))
    a.send(yearly_sub("2026-03-07"))
    a.send(yearly_sub("2026-03-07", kind="billing.invoice_paid", billing_reason="subscription_create"))
    assert len(a.state.sla.clocks) == 1
    a.send(yearly_sub("2027-03-07", when=ny(2026, 3, 7, 1), kind="billing.invoice_paid",
                      billing_reason="subscription_cycle"), tick=False)
    [clock] = a.state.sla.clocks
    assert clock.deadline == ny(2026, 12, 7)


# ---- promised time-to-value ----------------------------------------------------------------
def test_promise_on_the_won_deal_starts_its_own_sla():
    a = Account(journey())
    a.send(won(promised_time_to_value="48 hours"))
    [clock] = a.state.sla.clocks
    assert clock.rule_id == PROMISED_TTV_ID and clock.deadline == WON_AT + timedelta(hours=48)
    [breach] = a.tick(ny(2025, 3, 10))
    assert (breach.sla_id, breach.sla_name, breach.owner_team, breach.severity) == (
        "promised-ttv", "Promised time-to-value (48 hours)", "customer_success", "high")
    assert breach.breach_id == SlaBreach.make_id("acct:1", "promised-ttv", "won-1")
    [late] = a.send(track("Workspace Activated", ny(2025, 3, 12, 9)))
    assert late.status is SlaBreachStatus.MET_LATE and late.sla_id == "promised-ttv"


def test_promise_made_at_the_opportunity_applies_at_closed_won():
    a = Account(journey())
    a.send(ev("crm.opportunity_created", ny(2025, 3, 3, 9), promised_time_to_value="5 days"))
    assert a.state.sla.clocks == []
    a.send(won())
    [clock] = a.state.sla.clocks
    assert clock.deadline == ny(2025, 3, 12, 16)
    assert a.send(track("Workspace Activated", ny(2025, 3, 11, 9))) == []
    assert a.state.sla.clocks == []


def test_promise_recorded_after_closed_won_runs_from_the_closed_won_entry():
    a = Account(journey())
    a.send(ev("billing.subscription_created", WON_AT, event_id="sub", status="active", plan_interval="month"))
    assert a.state.stage == "closed-won"
    a.send(won(ny(2025, 3, 8, 9), promised_time_to_value="48 hours"))   # same stage: no transition
    [clock] = a.state.sla.clocks
    assert clock.start_event_id == "sub" and clock.deadline == WON_AT + timedelta(hours=48)
    # Another promise-bearing event does not re-open it once met.
    a.send(track("Workspace Activated", ny(2025, 3, 8, 12)))
    a.send(ev("crm.opportunity_created", ny(2025, 3, 9), promised_time_to_value="48 hours"))
    assert a.state.sla.clocks == []


def test_promise_after_churn_does_not_reach_back_to_the_old_contract():
    a = Account(journey())
    a.send(won())
    a.send(ev("billing.subscription_canceled", ny(2025, 4, 1)))
    a.send(ev("crm.opportunity_created", ny(2025, 5, 1), deal_type="new_business", promised_time_to_value="5 days"))
    assert a.state.sla.clocks == []


def test_unreadable_promise_or_disabled_config_sets_no_clock():
    a = Account(journey())
    a.send(won(promised_time_to_value="asap!!"))
    assert a.state.sla.clocks == []
    j = journey()
    sla = SlaTracker(j)
    sla.promised = sla.promised.model_copy(update={"enabled": False})
    state = AccountState(account_id="acct:1")
    event = won(promised_time_to_value="48 hours")
    result = apply_event(j, state, event, EMITTED)
    assert sla.on_event(state.sla, state, event, result.transitions, EMITTED) == []
    assert state.sla.clocks == []


# ---- rule validation -----------------------------------------------------------------------
def rule(**kw: Any) -> dict[str, Any]:
    return {"id": "r", "name": "R", "owner": "sales", "start": {"stage": "MQL"}, "expect": {"stage": "SQL"},
            "within": "1 day", **kw}


@pytest.mark.parametrize("bad, message", [
    (rule(kind="before_date"), "needs date_attribute"),
    (rule(kind="before_date", date_attribute="current_period_end"), "starts on an event"),
    (rule(active_for="90 days"), "active_for applies only"),
    (rule(date_attribute="x"), "date_attribute applies only"),
    (rule(kind="inactivity", within="0 days"), "non-zero"),
    (rule(start={"stage": "MQL", "event": {"kind": "crm.deal_won"}}), "exactly one of"),
    (rule(expect=[]), "at least 1"),
])
def test_rule_validation(bad, message):
    with pytest.raises(ValueError, match=message):
        SlaRule.model_validate(bad)


def test_journey_rejects_unknown_stage_in_an_sla():
    with pytest.raises(JourneyError, match=r"slas\[0\] \(r\) names unknown stage 'onbaording'"):
        journey(extra=[rule(cancel_on_stages=["onbaording"])])


def test_rule_accepts_one_anchor_or_a_list_and_reports_refs_and_kinds():
    r = SlaRule.model_validate(rule(expect=[{"stage": "SQL"}, {"event": {"kind": "crm.activity_logged"}}],
                                    cancel_on_stages=["churned"]))
    assert r.stage_refs() == {"MQL", "SQL", "churned"}
    assert r.event_kinds() == {"crm.activity_logged"}
    assert str(r.within) == "1 day"
