"""One account's whole logic, in the shape of Bytewax's ``StatefulLogic``.

``on_event`` (an item), ``on_tick`` (a notification: the clock reached ``now``)
and ``notify_at`` (when this account next needs a tick). The Faust agent calls
these and only these; everything here is pure and replayable. ``clock`` gives
``emitted_at`` stamps and is injectable so tests are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from pipeline.core.engine import Outcome, apply_event
from pipeline.core.handoffs import HandoffTracker
from pipeline.core.sla import SlaTracker
from pipeline.core.state import AccountState
from pipeline.core.journey import JourneyDefinition
from schemas.base import utcnow
from schemas.events import LifecycleEvent
from schemas.handoffs import Handoff
from schemas.identity import AccountMerged
from schemas.sla import SlaBreach
from schemas.transitions import StageTransition

Clock = Callable[[], datetime]
PLAN_INTERVALS_KEPT = 10   # subscriptions per account whose billing interval is remembered


def with_known_interval(state: AccountState, event: LifecycleEvent) -> LifecycleEvent:
    """Remember the interval a billing event states for its subscription; give an invoice that states
    none (``plan_interval`` null: newer Stripe API versions put only a price id on its lines) the
    interval of its subscription, else of the subscription seen last, so a yearly renewal still counts."""
    attrs = event.attributes
    if event.source != "billing" or "plan_interval" not in attrs:
        return event
    subscription, interval = attrs.get("subscription_id"), attrs.get("plan_interval")
    if interval is not None:
        if subscription and not attrs.get("plan_interval_inferred"):
            state.plan_intervals.pop(subscription, None)
            state.plan_intervals[subscription] = interval
            while len(state.plan_intervals) > PLAN_INTERVALS_KEPT:
                del state.plan_intervals[next(iter(state.plan_intervals))]
        return event
    known = state.plan_intervals.get(subscription) if subscription else None
    if known is None and state.plan_intervals:
        known = list(state.plan_intervals.values())[-1]
    if known is None:
        return event
    return event.model_copy(update={"attributes": {**attrs, "plan_interval": known,
                                                   "plan_interval_from": "subscription"}})


@dataclass
class Outputs:
    """Everything one step emits, in the order it must be published."""

    outcome: Outcome | None = None
    transitions: list[StageTransition] = field(default_factory=list)
    handoffs: list[Handoff] = field(default_factory=list)
    breaches: list[SlaBreach] = field(default_factory=list)
    journal: list[LifecycleEvent] = field(default_factory=list)  # events to keep for a future merge

    def __bool__(self) -> bool:
        return bool(self.transitions or self.handoffs or self.breaches)


class AccountLogic:
    def __init__(self, journey: JourneyDefinition, clock: Clock = utcnow) -> None:
        self.journey = journey
        self.clock = clock
        self.sla = SlaTracker(journey)
        self.handoffs = HandoffTracker(journey)

    def on_event(self, state: AccountState, event: LifecycleEvent) -> Outputs:
        now = self.clock()
        # Deadlines that passed before this event's time fire first, so that the
        # order of outputs is the same live and in a replay.
        out = self.on_tick(state, event.occurred_at)
        event = with_known_interval(state, event)
        result = apply_event(self.journey, state, event, now)
        out.outcome = result.outcome
        if result.outcome is Outcome.DUPLICATE:
            return out
        if result.outcome is not Outcome.NO_MATCH or event.source in ("crm", "billing"):
            out.journal.append(event)
        out.transitions.extend(result.transitions)
        out.handoffs.extend(self.handoffs.on_event(state.handoffs, state, event, result.transitions, now))
        out.breaches.extend(self.sla.on_event(state.sla, state, event, result.transitions, now))
        return out

    def on_merge_in(self, state: AccountState, journal: list[LifecycleEvent],
                    merge: AccountMerged | None = None) -> Outputs:
        """Re-play an absorbed account's events into this one, in event time order.

        Older events may move the survivor forward (never backwards: the engine's
        late-event rule), and re-open SLA clocks under the survivor's id. If the absorbed
        account had reached a stage, a ``direction: merged`` record for it comes first: on
        lifecycle.stage-transitions its stream ends there (see ``merged_record``).
        """
        ordered = sorted(journal, key=lambda e: (e.occurred_at, e.event_id))
        out = Outputs()
        for event in ordered:
            step = self.on_event(state, event.model_copy(update={"account_id": state.account_id}))
            out.transitions += step.transitions
            out.handoffs += step.handoffs
            out.breaches += step.breaches
            out.journal += step.journal
        marker = merged_record(self.journey, state, ordered, merge, self.clock())
        if marker is not None:
            out.transitions.insert(0, marker)
        return out

    def on_merge_out(self, state: AccountState, merge: AccountMerged) -> AccountState:
        """This account is absorbed: what remains of it is a pointer to the survivor, with the
        stage and history it reached (its journal goes to the survivor, see ``on_merge_in``)."""
        return AccountState(account_id=state.account_id, merged_into=merge.into_account, stage=state.stage,
                            history=state.history, first_event_at=state.first_event_at,
                            last_event_at=state.last_event_at)

    def on_tick(self, state: AccountState, now: datetime) -> Outputs:
        """The clock (event-time watermark or wall clock) reached ``now``."""
        emitted_at = self.clock()
        return Outputs(
            handoffs=self.handoffs.on_tick(state.handoffs, state, now, emitted_at),
            breaches=self.sla.on_tick(state.sla, state, now, emitted_at),
        )

    def notify_at(self, state: AccountState) -> datetime | None:
        due = [d for d in (self.sla.next_deadline(state.sla), self.handoffs.next_deadline(state.handoffs)) if d]
        return min(due) if due else None


MERGED_KIND = "identity.account_merged"


def merged_record(journey: JourneyDefinition, survivor: AccountState, journal: list[LifecycleEvent],
                  merge: AccountMerged | None, emitted_at: datetime) -> StageTransition | None:
    """The absorbed account's last word on lifecycle.stage-transitions: "merged into <survivor>",
    from the stage it had reached to the survivor's stage after the merge.

    Consumers drop an account's transitions once they see this record: the survivor has
    re-played them under its own id, so a funnel counts the customer once. None if the
    absorbed account never reached a stage (it published nothing). The absorbed account's
    stage is re-derived from its journal, the events its stream was made of."""
    absorbed = merge.from_account if merge is not None else next((e.account_id for e in journal if e.account_id), None)
    if absorbed is None or absorbed == survivor.account_id:
        return None
    scratch = AccountState(account_id=absorbed)
    for event in journal:
        apply_event(journey, scratch, event, emitted_at)
    if scratch.stage is None:
        return None
    trigger = merge.event_id if merge is not None else f"merge:{absorbed}"
    at = merge.decided_at if merge is not None else max(e.occurred_at for e in journal)
    to_stage = survivor.stage or scratch.stage
    return StageTransition(
        transition_id=StageTransition.make_id(absorbed, f"merged>{survivor.account_id}", trigger),
        account_id=absorbed, from_stage=scratch.stage, to_stage=to_stage, occurred_at=at,
        trigger_event_id=trigger, trigger_kind=MERGED_KIND, from_owner_team=journey.owner_of(scratch.stage),
        to_owner_team=journey.owner_of(to_stage) or "", owner_id=survivor.crm_owner_id,
        direction="merged", provisional=True, merged_into=survivor.account_id, emitted_at=emitted_at)
