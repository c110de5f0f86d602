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
from pipeline.journey import JourneyDefinition
from schemas.base import utcnow
from schemas.events import LifecycleEvent
from schemas.handoffs import Handoff
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

    def on_merge_in(self, state: AccountState, journal: list[LifecycleEvent]) -> Outputs:
        """Re-play an absorbed account's events into this one, in event time order.

        Older events may move the survivor forward (never backwards: the engine's
        late-event rule), and re-open SLA clocks under the survivor's id.
        """
        out = Outputs()
        for event in sorted(journal, key=lambda e: (e.occurred_at, e.event_id)):
            step = self.on_event(state, event.model_copy(update={"account_id": state.account_id}))
            out.transitions += step.transitions
            out.handoffs += step.handoffs
            out.breaches += step.breaches
            out.journal += step.journal
        return out

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
