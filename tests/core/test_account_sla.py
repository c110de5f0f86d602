"""End to end through AccountLogic: one enterprise account from MQL to renewal touchpoint,
with the default journey (New York business days, US holidays) and a fixed test clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from itertools import count
from typing import Any
from zoneinfo import ZoneInfo

from pipeline.core.account import AccountLogic, Outputs
from pipeline.core.state import AccountState
from pipeline.journey import load_journey
from schemas.events import LifecycleEvent, Person, SourceKind
from schemas.sla import SlaBreach

NY = ZoneInfo("America/New_York")
EMITTED = datetime(2031, 1, 1, tzinfo=timezone.utc)
J = load_journey()
ACCOUNT = "acct:hubspot.company:42"
_ids = count(1)


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY).astimezone(timezone.utc)


VENDORS = {"crm": "hubspot", "billing": "stripe", "product": "segment"}
IDS = {"crm": "hubspot.company:42", "billing": "stripe.customer:cus_42", "product": "segment.group:acme"}


def event(kind: str, when: datetime, event_id: str, person: str | None = None, **attributes: Any) -> LifecycleEvent:
    source = kind.split(".", 1)[0]
    return LifecycleEvent(
        event_id=f"{VENDORS[source]}:{event_id}", source=SourceKind(source), vendor=VENDORS[source], kind=kind,
        occurred_at=when, ingested_at=when + timedelta(seconds=3), identifiers=[IDS[source], "domain:acme.com"],
        person=Person(id=person) if person else None, account_id=ACCOUNT, attributes=attributes,
    )


def usage(name: str, when: datetime) -> LifecycleEvent:
    return event("product.track", when, f"trk-{next(_ids)}", person="segment.user:ana",
                 event=name, properties={"workspace": "acme"})


CONTRACT_END = int(datetime(2026, 3, 7, 21, tzinfo=timezone.utc).timestamp())

ACME = [
    event("crm.lead_qualified", ny(2025, 3, 3, 9), "mql", qualification="mql", raw_value="marketingqualifiedlead",
          property="lifecyclestage", owner_id="u-mkt"),
    event("crm.activity_logged", ny(2025, 3, 3, 11), "call-1", activity_type="call", owner_id="u-sdr"),
    event("crm.opportunity_created", ny(2025, 3, 4, 10), "opp", deal_id="d-42", deal_name="Acme platform",
          amount=48000, currency="usd", stage="appointmentscheduled", deal_type="new_business",
          segment="enterprise", owner_id="u-ae", promised_time_to_value="5 days"),
    event("crm.owner_changed", ny(2025, 3, 4, 11), "own-1", object="company", owner_id="u-ae",
          previous_owner_id="u-mkt"),
    event("crm.activity_logged", ny(2025, 3, 5, 9), "meeting-1", activity_type="meeting", owner_id="u-ae"),
    event("crm.deal_won", ny(2025, 3, 7, 16), "won", deal_id="d-42", amount=48000, currency="usd",
          close_date="2025-03-07", deal_type="new_business", segment="enterprise", owner_id="u-ae"),
    event("billing.subscription_created", ny(2025, 3, 7, 16, 5), "sub", subscription_id="sub_42", status="active",
          plan_id="platform-annual", plan_interval="year", amount=4800000, currency="usd",
          current_period_start=CONTRACT_END - 365 * 86400, current_period_end=CONTRACT_END, livemode=True),
    event("crm.owner_changed", ny(2025, 3, 7, 17, 30), "own-2", object="company", owner_id="u-csm",
          previous_owner_id="u-ae"),
    event("crm.activity_logged", ny(2025, 3, 7, 18), "welcome", activity_type="welcome", owner_id="u-csm"),
    event("crm.activity_logged", ny(2025, 3, 18, 10), "kickoff", activity_type="kickoff", owner_id="u-csm"),
    usage("Report Created", ny(2025, 3, 20, 9)),
    event("product.track", ny(2025, 3, 25, 9), "activated", person="segment.user:ana", event="Workspace Activated"),
    usage("Report Viewed", ny(2025, 4, 22, 9)),        # back after a 28-day silence
    *(usage("Report Viewed", ny(2025, m, d, 9)) for m, d in ((5, 1), (5, 12), (5, 23), (6, 3), (6, 14))),
    event("crm.activity_logged", ny(2025, 11, 20, 10), "renewal-call", activity_type="renewal", owner_id="u-csm"),
]
END = ny(2026, 1, 1)


def run(timer: bool, persist: bool = True) -> list[Outputs]:
    """Feed ACME. With ``timer``, tick at every ``notify_at`` before the next event, as the
    live timer does; with ``persist``, round-trip the state through JSON (the Faust table)."""
    logic = AccountLogic(J, clock=lambda: EMITTED)
    state = AccountState(account_id=ACCOUNT)
    steps: list[Outputs] = []
    for item in [*ACME, None]:
        horizon = item.occurred_at if item else END
        while timer and (due := logic.notify_at(state)) is not None and due <= horizon:
            steps.append(logic.on_tick(state, due))
        steps.append(logic.on_event(state, item) if item else logic.on_tick(state, END))
        if persist:
            state = AccountState.model_validate_json(state.model_dump_json())
    assert logic.notify_at(state) is None
    assert state.sla.clocks == [] and state.handoffs.open == []
    return steps


def breaches(steps: list[Outputs]) -> list[SlaBreach]:
    return [b for s in steps for b in s.breaches]


def test_stage_path():
    steps = run(timer=True)
    assert [(t.from_stage, t.to_stage) for s in steps for t in s.transitions] == [
        (None, "MQL"), ("MQL", "SQL"), ("SQL", "closed-won"), ("closed-won", "onboarding"), ("onboarding", "adoption")]


def test_handoffs_along_the_journey():
    steps = run(timer=True)
    handoffs = [h for s in steps for h in s.handoffs]
    assert [(h.from_team, h.to_team, h.status.value, h.version) for h in handoffs] == [
        ("marketing", "sales", "opened", 1),
        ("marketing", "sales", "accepted", 2),
        ("sales", "customer_success", "opened", 1),
        ("sales", "customer_success", "accepted", 2),
        ("marketing", "sales", "completed", 3),
        ("sales", "customer_success", "completed", 3),
    ]
    ms, cs = handoffs[1], handoffs[3]
    assert (ms.from_owner, ms.to_owner, ms.first_action_at) == ("u-mkt", "u-ae", ny(2025, 3, 5, 9))
    assert (cs.from_owner, cs.to_owner, cs.handoff_event, cs.segment) == ("u-ae", "u-csm", "contract_execution",
                                                                          "enterprise")
    assert cs.overlap_until == handoffs[5].closed_at == ny(2025, 4, 21, 16)
    assert handoffs[2].to_stage == "closed-won" and handoffs[2].trigger_event_id == "hubspot:won"


def test_sla_breaches_and_late_recoveries():
    found = breaches(run(timer=True))
    assert [(b.sla_id, b.status.value, b.deadline, b.detected_at) for b in found] == [
        ("welcome-message", "breached", ny(2025, 3, 7, 17), ny(2025, 3, 7, 17)),
        ("welcome-message", "met_late", ny(2025, 3, 7, 17), ny(2025, 3, 7, 18)),
        ("promised-ttv", "breached", ny(2025, 3, 12, 16), ny(2025, 3, 12, 16)),
        ("customer-kickoff", "breached", ny(2025, 3, 14, 16), ny(2025, 3, 14, 16)),
        ("customer-kickoff", "met_late", ny(2025, 3, 14, 16), ny(2025, 3, 18, 10)),
        ("promised-ttv", "met_late", ny(2025, 3, 12, 16), ny(2025, 3, 25, 9)),
        ("silent-disengagement", "breached", ny(2025, 4, 8, 9), ny(2025, 4, 8, 9)),
        ("silent-disengagement", "met_late", ny(2025, 4, 8, 9), ny(2025, 4, 22, 9)),
    ]
    by_status = {(b.sla_id, b.status.value): b for b in found}
    assert by_status["welcome-message", "met_late"].late_by_seconds == 3600
    assert by_status["customer-kickoff", "met_late"].met_event_id == "hubspot:kickoff"
    assert by_status["promised-ttv", "breached"].sla_name == "Promised time-to-value (5 days)"
    assert by_status["silent-disengagement", "breached"].start_event_id == "segment:activated"
    assert all(b.breach_id == SlaBreach.make_id(ACCOUNT, b.sla_id, b.start_event_id) for b in found)
    assert all(b.emitted_at == EMITTED for b in found)
    # Met in time, nothing emitted: MQL follow-up, onboarding started (day 11 of 12),
    # onboarding complete (day 7 of 30), renewal touchpoint (before 2025-12-07).
    assert {b.sla_id for b in found}.isdisjoint({"mql-follow-up", "onboarding-started", "onboarding-complete",
                                                 "renewal-touchpoint"})


def test_same_records_with_or_without_a_live_timer():
    """Only the detection time differs when no timer ticked between events."""
    def comparable(steps: list[Outputs]) -> dict[str, list[Any]]:
        return {
            "transitions": [t for s in steps for t in s.transitions],
            "handoffs": [h for s in steps for h in s.handoffs],
            "breaches": [b.model_copy(update={"detected_at": None}) for b in breaches(steps)],
        }
    with_timer, without = run(timer=True), run(timer=False)
    assert comparable(with_timer) == comparable(without)
    unticked = {b.record_id: b.detected_at for b in breaches(without)}
    # Seen at the next event's time: the CRM owner change at 17:30.
    assert unticked[SlaBreach.make_id(ACCOUNT, "welcome-message", "hubspot:won") + ":breached"] == ny(2025, 3, 7, 17, 30)


def test_replay_is_deterministic_and_state_survives_the_table():
    assert run(timer=True, persist=True) == run(timer=True, persist=False)


def test_redelivered_events_emit_nothing_new():
    logic = AccountLogic(J, clock=lambda: EMITTED)
    state = AccountState(account_id=ACCOUNT)
    first = [logic.on_event(state, e) for e in ACME[:9]]
    assert any(first)
    assert not any(logic.on_event(state, e) for e in ACME[5:9])
