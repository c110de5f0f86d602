"""SLA rules (``slas:`` in the journey file) and the tracker that turns them into breaches.

A rule says, in RevOps language, "after *start*, *expect* within *duration*".
Three kinds:

- ``deadline``: the clock starts at the start anchor's event time; the expected
  stage or event must come before ``start + within``.
- ``inactivity``: every expected event restarts the clock ("no product usage for
  14 days"), for ``active_for`` after the start ("during the first 90 days").
- ``before_date``: the deadline is a date carried by the start event minus
  ``within`` ("renewal touchpoint 90 days before the contract end").

A CRM deal that promises a time-to-value ("up and running in 48 hours") gives the
account one more deadline rule of its own, shaped by ``promised_ttv``.

The tracker is pure: every decision is a function of the calls it gets and the
``SlaState`` it is handed, so a replay emits the same records (bar ``emitted_at``).
Nothing is emitted for an SLA met in time; a missed one emits ``breached`` at its
deadline and ``met_late`` when the expected thing finally happens.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

from pydantic import BaseModel, ConfigDict, Field

from pipeline.core.calendar import BusinessCalendar
from pipeline.core.durations import Duration, DurationError
from pipeline.core.journey import JourneyDefinition
from pipeline.core.predicates import KindIndex, lookup
from pipeline.core.sla_rules import PROMISED_TTV_ID, Anchor, PromisedTtvConfig, Severity, SlaKind, SlaRule
from pipeline.core.visits import AccountView
from schemas.base import UtcDatetime
from schemas.events import LifecycleEvent
from schemas.sla import SlaBreach, SlaBreachStatus
from schemas.transitions import StageTransition

__all__ = ["PROMISED_TTV_ID", "Anchor", "PromisedTtvConfig", "Severity", "SlaKind", "SlaRule", "SlaClock",
           "SlaState", "SlaTracker"]

class SlaClock(BaseModel):
    """One running clock. For inactivity the clock is the current gap."""

    model_config = ConfigDict(extra="forbid")

    rule_id: str
    start_event_id: str
    started_at: UtcDatetime
    deadline: UtcDatetime
    breached: bool = False
    closes_at: UtcDatetime | None = Field(default=None, description="inactivity: end of the watched window")
    promise: Duration | None = Field(default=None, description="promised-ttv: the deal's promise")

    def due_at(self) -> datetime | None:
        """When this clock next needs a tick: its deadline, or the end of its window."""
        if self.breached:
            return None
        if self.closes_at is not None and self.closes_at < self.deadline:
            return self.closes_at
        return self.deadline


class SlaState(BaseModel):
    """An account's open clocks; closed ones are dropped, so it stays small."""

    model_config = ConfigDict(extra="forbid")

    clocks: list[SlaClock] = Field(default_factory=list)
    promise: Duration | None = Field(default=None, description="A promised time-to-value from the CRM not yet on a clock")
    promise_started_by: str | None = Field(default=None, description="Start event the promise clock was opened for")


class SlaTracker:
    """Opens clocks on start anchors, closes them on expect anchors, breaches at deadlines."""

    def __init__(self, journey: JourneyDefinition, calendar: BusinessCalendar | None = None) -> None:
        self.journey = journey
        self.calendar = calendar or BusinessCalendar(journey.calendar)
        self.rules: dict[str, SlaRule] = {r.id: r for r in journey.slas}
        # Until the journey carries a promised_ttv section, its defaults apply.
        self.promised: PromisedTtvConfig = getattr(journey, "promised_ttv", None) or PromisedTtvConfig()
        self._promised_rules: dict[Duration, SlaRule] = {}
        # The journey's rules by the event kinds that start them (rules' order kept).
        self._started_by: KindIndex[SlaRule] = KindIndex(
            (r, [a.event for a in r.start if a.event is not None]) for r in self.rules.values())

    # ---- the three calls AccountLogic makes ----------------------------------------
    def on_event(self, state: SlaState, account: AccountView, event: LifecycleEvent,
                 transitions: list[StageTransition], emitted_at: datetime) -> list[SlaBreach]:
        out: list[SlaBreach] = []
        self._note_promise(state, event)
        for tr in transitions:
            self._cancel(state, tr.to_stage)
            out += self._meet(state, account, tr.occurred_at, tr.trigger_event_id,
                              lambda rule, stage=tr.to_stage: stage in rule.expect_stages, emitted_at)
            for rule in self._rules_for(state):
                if tr.to_stage in rule.start_stages:
                    self._open(state, account, rule, tr.trigger_event_id, tr.occurred_at, None)
        out += self._meet(state, account, event.occurred_at, event.event_id,
                          lambda rule: rule.expect_events.matches(event), emitted_at)
        # As _rules_for(state) in order: the journey's rules, then the promised one (taken before any opens).
        promised = self._promised_rule(state.promise) if self.promised.enabled and state.promise is not None else None
        for rule in self._started_by.matching(event):
            self._open(state, account, rule, event.event_id, event.occurred_at, event)
        if promised is not None and promised.start_events.matches(event):
            self._open(state, account, promised, event.event_id, event.occurred_at, event)
        self._open_promise_after_the_fact(state, account)
        return out

    def on_tick(self, state: SlaState, account: AccountView, now: datetime,
                emitted_at: datetime) -> list[SlaBreach]:
        if self._none_due(state, now):
            return []
        out: list[SlaBreach] = []
        for clock, rule in self._clocks(state):
            fired, alive = self._advance(account, clock, rule, now, emitted_at)
            out += fired
            if not alive:
                _drop(state, clock)
        return out

    def _none_due(self, state: SlaState, now: datetime) -> bool:
        """No clock fires by ``now`` and none would be dropped by ``_clocks``: a tick changes nothing."""
        for clock in state.clocks:
            due = clock.due_at()
            if (due is not None and due <= now) or self.rule_of(clock) is None:
                return False
        return True

    def next_deadline(self, state: SlaState) -> datetime | None:
        due = [d for c in state.clocks if (d := c.due_at()) is not None]
        return min(due) if due else None

    # ---- rules -------------------------------------------------------------------------
    def rule_of(self, clock: SlaClock) -> SlaRule | None:
        if clock.promise is not None:
            return self._promised_rule(clock.promise)
        return self.rules.get(clock.rule_id)

    def _promised_rule(self, promise: Duration) -> SlaRule:
        if promise not in self._promised_rules:
            self._promised_rules[promise] = self.promised.rule(promise)
        return self._promised_rules[promise]

    def _rules_for(self, state: SlaState) -> list[SlaRule]:
        rules = list(self.rules.values())
        if self.promised.enabled and state.promise is not None:
            rules.append(self._promised_rule(state.promise))
        return rules

    def _clocks(self, state: SlaState) -> list[tuple[SlaClock, SlaRule]]:
        """Open clocks with their rules, in deadline order; clocks whose rule left the journey are dropped."""
        pairs = [(c, rule) for c in state.clocks if (rule := self.rule_of(c)) is not None]
        if len(pairs) != len(state.clocks):
            state.clocks = [c for c, _ in pairs]
        if len(pairs) > 1:
            pairs.sort(key=lambda cr: (cr[0].deadline, cr[0].rule_id, cr[0].start_event_id))
        return pairs

    # ---- opening ---------------------------------------------------------------------
    def _note_promise(self, state: SlaState, event: LifecycleEvent) -> None:
        if not self.promised.enabled or not self.promised.promised_by_any.matches(event):
            return
        text = lookup(event.attributes, self.promised.attribute)
        if isinstance(text, str) and text.strip():
            try:
                state.promise = Duration.parse(text)
            except DurationError:
                pass  # a free-text promise we cannot read sets no clock rather than stopping the stream

    def _open_promise_after_the_fact(self, state: SlaState, account: AccountView) -> None:
        """A promise recorded after the account entered the start stage still runs from that entry."""
        if not self.promised.enabled or state.promise is None:
            return
        starts = {a.stage for a in self.promised.start}
        # Past the expected stage, or cancelled (churned) since: too late for this promise.
        ends = {a.stage for a in self.promised.expect if a.stage} | set(self.promised.cancel_on_stages)
        for i in range(len(account.history) - 1, -1, -1):
            visit = account.history[i]
            if visit.stage in starts:
                over = any(v.stage in ends for v in account.history[i + 1:])
                if not over and visit.trigger_event_id != state.promise_started_by:
                    self._open(state, account, self._promised_rule(state.promise),
                               visit.trigger_event_id, visit.entered_at, None)
                return

    def _open(self, state: SlaState, account: AccountView, rule: SlaRule, start_event_id: str,
              started_at: datetime, event: LifecycleEvent | None) -> None:
        if not rule.applies_to(account.segment_of(self.journey.segmentation)):
            return
        if rule.kind is SlaKind.BEFORE_DATE:
            date = self._date_of(event, rule.date_attribute) if event else None
            if date is None:
                return
            deadline = self.calendar.before(date, rule.within)
        else:
            deadline = self.calendar.after(started_at, rule.within)
        closes_at = self.calendar.after(started_at, rule.active_for) if rule.active_for else None
        clock = SlaClock(rule_id=rule.id, start_event_id=start_event_id, started_at=started_at,
                         deadline=deadline, closes_at=closes_at,
                         promise=state.promise if rule.id == PROMISED_TTV_ID else None)
        existing = next((c for c in state.clocks if c.rule_id == rule.id), None)
        if existing is not None:
            if not _supersedes(rule, existing, clock):
                return
            _drop(state, existing)
        state.clocks.append(clock)
        if rule.id == PROMISED_TTV_ID:
            # A promise is kept once: the next deal's promise starts the next clock.
            state.promise, state.promise_started_by = None, start_event_id

    def _date_of(self, event: LifecycleEvent, attributes: tuple[str, ...]) -> datetime | None:
        for name in attributes:
            value = lookup(event.attributes, name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return datetime.fromtimestamp(value, tz=timezone.utc)
            if isinstance(value, str):
                try:
                    parsed = datetime.fromisoformat(value.strip())
                except ValueError:
                    continue
                return parsed if parsed.tzinfo else self.calendar.localize(parsed)
        return None

    # ---- closing -----------------------------------------------------------------------
    def _cancel(self, state: SlaState, stage: str) -> None:
        state.clocks = [c for c in state.clocks
                        if (rule := self.rule_of(c)) is not None and stage not in rule.cancel_on_stages]

    def _meet(self, state: SlaState, account: AccountView, at: datetime, event_id: str,
              hit: Callable[[SlaRule], bool], emitted_at: datetime) -> list[SlaBreach]:
        """The expected thing happened at ``at`` (``hit``: one of the rule's expect anchors):
        close (or, for inactivity, restart) matching clocks."""
        out: list[SlaBreach] = []
        if not state.clocks:
            return out
        for clock, rule in self._clocks(state):
            if at < clock.started_at or not hit(rule):
                continue
            # Same records whether or not a tick reached the deadline first.
            fired, alive = self._advance(account, clock, rule, at, emitted_at)
            out += fired
            if alive and clock.breached:
                out.append(self._record(account, rule, clock, SlaBreachStatus.MET_LATE, at, emitted_at,
                                        met_at=at, met_event_id=event_id))
            if alive and rule.kind is SlaKind.INACTIVITY and (clock.closes_at is None or at < clock.closes_at):
                clock.start_event_id, clock.started_at = event_id, at
                clock.deadline, clock.breached = self.calendar.after(at, rule.within), False
            else:
                _drop(state, clock)
        return out

    def _advance(self, account: AccountView, clock: SlaClock, rule: SlaRule, now: datetime,
                 emitted_at: datetime) -> tuple[list[SlaBreach], bool]:
        """Fire what is due on one clock by ``now``: its breach, or the end of its window.
        Returns the records and whether the clock is still open."""
        due = clock.due_at()
        if due is None or due > now:
            return [], True
        if due == clock.deadline:
            clock.breached = True
            return [self._record(account, rule, clock, SlaBreachStatus.BREACHED, now, emitted_at)], True
        return [], False  # the inactivity window closed with no gap long enough

    def _record(self, account: AccountView, rule: SlaRule, clock: SlaClock, status: SlaBreachStatus,
                detected_at: datetime, emitted_at: datetime, met_at: datetime | None = None,
                met_event_id: str | None = None) -> SlaBreach:
        breach_id = SlaBreach.make_id(account.account_id, rule.id, clock.start_event_id)
        late_by = max(0.0, (met_at - clock.deadline).total_seconds()) if met_at else None
        return SlaBreach(
            breach_id=breach_id, record_id=f"{breach_id}:{status.value}", status=status,
            account_id=account.account_id, sla_id=rule.id, sla_name=rule.name, owner_team=rule.owner,
            severity=rule.severity, started_at=clock.started_at, start_event_id=clock.start_event_id,
            deadline=clock.deadline, met_at=met_at, met_event_id=met_event_id, late_by_seconds=late_by,
            detected_at=detected_at, emitted_at=emitted_at,
        )


def _drop(state: SlaState, clock: SlaClock) -> None:
    state.clocks = [c for c in state.clocks if c is not clock]


def _supersedes(rule: SlaRule, existing: SlaClock, new: SlaClock) -> bool:
    """Whether a start anchor firing again replaces the rule's open clock.

    A clock still running keeps the first promise (re-entering MQL does not move
    the follow-up deadline); one already breached gives way to the new start.
    A before_date clock follows its date: a new contract end replaces it.
    """
    if rule.kind is SlaKind.BEFORE_DATE:
        return new.deadline != existing.deadline
    return existing.breached
