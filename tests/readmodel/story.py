"""A small account history with known answers, built from the real record models.

Days count from ``T0`` (2024-03-01, UTC). March's cohort is A, B, C and D;
E first appears in April. The expected report values in the tests are worked
out by hand from this story (see the comments next to each record).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path

import yaml

from pipeline.journey import DEFAULT_JOURNEY, JourneyDefinition, parse_journey
from schemas.handoffs import Handoff, HandoffStatus
from schemas.sla import SlaBreach, SlaBreachStatus
from schemas.transitions import StageTransition

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)
DAY = 86400.0
MARCH_END = datetime(2024, 4, 1, tzinfo=timezone.utc)

OWNERS = {"MQL": "marketing", "SQL": "sales", "closed-won": "sales", "onboarding": "customer_success",
          "adoption": "customer_success", "churned": "customer_success"}


def at(day: float) -> datetime:
    return T0 + timedelta(days=day)


class _Journeys:
    """Builds one account's transitions with chained from-stages and time in stage, as the engine would."""

    def __init__(self) -> None:
        self.records: list[StageTransition] = []
        self._last: dict[str, tuple[str, float]] = {}

    def move(self, account: str, to: str, day: float, *, inferred: bool = False, direction: str = "forward",
             report_time: bool = True) -> StageTransition:
        prev = self._last.get(account)
        event = f"evt-{account}-{to}-{day}"
        t = StageTransition(
            transition_id=StageTransition.make_id(account, to, event), account_id=account,
            from_stage=prev[0] if prev else None, to_stage=to, occurred_at=at(day), trigger_event_id=event,
            trigger_kind="crm.test", from_owner_team=OWNERS.get(prev[0]) if prev else None,
            to_owner_team=OWNERS[to], owner_id=f"owner-{account}",
            time_in_previous_stage_seconds=(day - prev[1]) * DAY if prev and report_time else None,
            inferred=inferred, direction=direction, emitted_at=at(day) + timedelta(seconds=1),
        )
        self._last[account] = (to, day)
        self.records.append(t)
        return t


def transitions() -> list[StageTransition]:
    j = _Journeys()
    # A (enterprise): the full road, then churn 46 days after the handoff.
    for stage, day in [("MQL", 0), ("SQL", 2), ("closed-won", 10), ("onboarding", 14), ("adoption", 30)]:
        j.move("A", stage, day)
    j.move("A", "churned", 60, direction="regression")
    # B (mid_market): a jump from SQL to onboarding on day 25; closed-won is inferred at the same instant.
    j.move("B", "MQL", 1)
    j.move("B", "SQL", 5)
    j.move("B", "closed-won", 25, inferred=True)
    j.move("B", "onboarding", 25)
    # C (self_serve): starts at SQL; churns 92 days after the handoff (outside 90).
    for stage, day in [("SQL", 3), ("closed-won", 6), ("onboarding", 8)]:
        j.move("C", stage, day)
    j.move("C", "churned", 100, direction="regression")
    # D: back from SQL to MQL; its records carry no time_in_previous_stage (derived from history instead).
    j.move("D", "MQL", 4, report_time=False)
    j.move("D", "SQL", 9, report_time=False)
    j.move("D", "MQL", 15, direction="backward", report_time=False)
    # E: April's cohort.
    j.move("E", "MQL", 40)
    j.move("E", "SQL", 45)
    return j.records


def handoff_versions(handoff_id: str, account: str, from_team: str, to_team: str, day: float, segment: str,
                     *steps: tuple[HandoffStatus, dict]) -> list[Handoff]:
    base = Handoff(
        handoff_id=handoff_id, version=1, account_id=account, from_team=from_team, to_team=to_team,
        to_stage="SQL" if to_team == "sales" else "onboarding", handoff_event="stage_change",
        segment=segment, trigger_event_id=f"evt-{account}-{day}", occurred_at=at(day),
        overlap_until=at(day + 45), emitted_at=at(day),
    )
    out = [base]
    for status, changes in steps:
        prev = out[-1]
        out.append(prev.model_copy(update={"status": status, "version": prev.version + 1, **changes}))
    return out


def handoffs() -> list[Handoff]:
    S = HandoffStatus
    return [
        # A, marketing → sales: accepted after 1 day, completed.
        *handoff_versions("ho-A1", "A", "marketing", "sales", 2, "enterprise",
                          (S.ACCEPTED, {"first_action_at": at(3), "emitted_at": at(3)}),
                          (S.COMPLETED, {"closed_at": at(47), "emitted_at": at(47)})),
        # A, sales → customer success: dropped at day 17, accepted on day 19: late.
        *handoff_versions("ho-A2", "A", "sales", "customer_success", 10, "enterprise",
                          (S.DROPPED, {"closed_at": at(17), "emitted_at": at(17)}),
                          (S.ACCEPTED, {"first_action_at": at(19), "closed_at": None, "emitted_at": at(19)})),
        # B, marketing → sales: still open.
        *handoff_versions("ho-B1", "B", "marketing", "sales", 5, "mid_market"),
        # B, sales → customer success: dropped.
        *handoff_versions("ho-B2", "B", "sales", "customer_success", 25, "mid_market",
                          (S.DROPPED, {"closed_at": at(32), "emitted_at": at(32)})),
        # C, sales → customer success: accepted after 1 day.
        *handoff_versions("ho-C1", "C", "sales", "customer_success", 6, "self_serve",
                          (S.ACCEPTED, {"first_action_at": at(7), "emitted_at": at(7)})),
    ]


def breach(account: str, sla_id: str, owner: str, started: float, deadline: float,
           met: float | None = None) -> list[SlaBreach]:
    breach_id = SlaBreach.make_id(account, sla_id, f"evt-{account}-{started}")
    base = SlaBreach(
        breach_id=breach_id, record_id=f"{breach_id}:breached", status=SlaBreachStatus.BREACHED,
        account_id=account, sla_id=sla_id, sla_name=sla_id.replace("-", " "), owner_team=owner, severity="high",
        started_at=at(started), start_event_id=f"evt-{account}-{started}", deadline=at(deadline),
        detected_at=at(deadline), emitted_at=at(deadline),
    )
    if met is None:
        return [base]
    late = base.model_copy(update={
        "record_id": f"{breach_id}:met_late", "status": SlaBreachStatus.MET_LATE, "met_at": at(met),
        "met_event_id": f"evt-{account}-met-{met}", "late_by_seconds": (met - deadline) * DAY, "emitted_at": at(met),
    })
    return [base, late]


def breaches() -> list[SlaBreach]:
    return [
        *breach("A", "kickoff", "customer_success", 10, 15, met=18),
        *breach("B", "kickoff", "customer_success", 25, 30),
        *breach("C", "onboarding-complete", "customer_success", 8, 38),
        *breach("D", "mql-follow-up", "sales", 4, 5),
        *breach("A", "renewal-touch", "customer_success", 12, 20),
        *breach("B", "promised-ttv", "customer_success", 20, 22, met=26),
    ]


def story() -> list[StageTransition | Handoff | SlaBreach]:
    return [*transitions(), *handoffs(), *breaches()]


def journey_data() -> dict:
    """The shipped journey file with this story's SLAs (three stage-anchored, one event-anchored)."""
    data = yaml.safe_load(resources.files("pipeline.journeys").joinpath(DEFAULT_JOURNEY).read_text())
    data["slas"] = [
        {"id": "kickoff", "name": "Kickoff", "owner": "customer_success", "start": {"stage": "closed-won"},
         "expect": {"event": {"kind": "crm.activity_logged"}}, "within": "5 days",
         "segments": ["enterprise", "mid_market"]},
        {"id": "onboarding-complete", "name": "Onboarding complete", "owner": "customer_success",
         "start": {"stage": "onboarding"}, "expect": {"stage": "adoption"}, "within": "30 days"},
        {"id": "mql-follow-up", "name": "MQL follow-up", "owner": "sales", "start": {"stage": "MQL"},
         "expect": {"stage": "SQL"}, "within": "1 day"},
        {"id": "renewal-touch", "name": "Renewal touch", "owner": "customer_success",
         "start": {"event": {"kind": "billing.invoice_paid"}}, "expect": {"event": {"kind": "crm.activity_logged"}},
         "within": "90 days"},
    ]
    return data


def journey() -> JourneyDefinition:
    return parse_journey(journey_data(), "story journey")


def write_journey(path: Path) -> Path:
    """The story journey as a YAML file, for the CLI's --journey and $LIFECYCLE_JOURNEY."""
    path.write_text(yaml.safe_dump(journey_data()))
    return path
