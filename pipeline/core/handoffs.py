"""Handoffs between owning teams (``handoffs:`` in the journey file) and their tracker.

A handoff opens when the owning team changes: marketing → sales at MQL → SQL,
customer success → advocacy at advocate. The sales → customer success handoff,
the "handoff cliff", happens at the segment's *named handoff event* instead:
contract execution (enterprise), first product activation (self-serve), or
whichever comes first (product-led with sales assist).

Each handoff is then ``accepted`` at the receiving team's first action,
``dropped`` if that does not come within the team's acceptance window, and
``completed`` when the overlap window (the closing owner stays on) ends with the
handoff accepted. Every status change re-emits the record with the same
``handoff_id`` and the next ``version``. Pure: all state is in ``HandoffState``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pipeline.core.calendar import BusinessCalendar
from pipeline.core.durations import Unit
from pipeline.core.handoff_rules import HandoffConfig, NamedEvent, ReceivingTeam
from pipeline.core.journey import JourneyDefinition
from pipeline.core.predicates import AnyOf
from pipeline.core.visits import AccountView
from schemas.base import UtcDatetime
from schemas.events import LifecycleEvent
from schemas.handoffs import Handoff, HandoffStatus
from schemas.transitions import StageTransition

__all__ = ["STAGE_CHANGE", "HandoffConfig", "NamedEvent", "ReceivingTeam", "OpenHandoff", "HandoffState",
           "HandoffTracker"]

STAGE_CHANGE = "stage_change"   # handoff_event of handoffs that happen at the owner-changing transition


class OpenHandoff(BaseModel):
    """A handoff still being watched: its latest record and when acceptance is due."""

    model_config = ConfigDict(extra="forbid")

    record: Handoff
    accept_by: UtcDatetime

    def due_at(self) -> datetime:
        r = self.record
        if r.status is HandoffStatus.OPENED:
            return min(self.accept_by, r.overlap_until or self.accept_by)
        return r.overlap_until or self.accept_by


class HandoffState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    open: list[OpenHandoff] = Field(default_factory=list)
    named_opened: bool = Field(default=False, description="The current contract's named handoff has opened")


class HandoffTracker:
    """Opens handoffs on owner changes and named events; tracks acceptance, drop and completion."""

    def __init__(self, journey: JourneyDefinition, calendar: BusinessCalendar | None = None) -> None:
        self.journey = journey
        self.config: HandoffConfig = journey.handoffs
        self.calendar = calendar or BusinessCalendar(journey.calendar)
        contract = journey.by_id.get(self.config.contract_stage)
        self._contract_rank = contract.rank if contract else None
        self._activation = AnyOf(self.config.activation_events)
        self._first_actions: dict[str, AnyOf] = {}   # per receiving team

    # ---- the three calls AccountLogic makes ----------------------------------------
    def on_event(self, state: HandoffState, account: AccountView, event: LifecycleEvent,
                 transitions: list[StageTransition], emitted_at: datetime) -> list[Handoff]:
        out = self._first_action(state, account, event, emitted_at)
        self._note_receiver(state, account)
        mode = self.config.mode_for(self._segment(account))
        for tr in transitions:
            if tr.direction == "regression" or self._before_contract(tr.to_stage):
                state.named_opened = False   # a new contract will hand over again
            if self._is_named_boundary(mode, tr.to_stage):
                out += self._open_named(state, account, mode, tr.from_stage, tr.to_stage,
                                        tr.trigger_event_id, tr.occurred_at, tr.owner_id, emitted_at)
            elif self._changes_owner(tr):
                out += self._open(state, account, tr.from_owner_team, tr.to_owner_team or "", tr.from_stage,
                                  tr.to_stage, STAGE_CHANGE, tr.trigger_event_id, tr.occurred_at, tr.owner_id,
                                  emitted_at)
        if mode is not NamedEvent.CONTRACT_EXECUTION and self._activation.matches(event):
            stage = account.stage or self.config.activation_stage
            out += self._open_named(state, account, mode, stage, stage, event.event_id, event.occurred_at,
                                    account.crm_owner_id, emitted_at)
        return out

    def on_tick(self, state: HandoffState, account: AccountView, now: datetime,
                emitted_at: datetime) -> list[Handoff]:
        if all(h.due_at() > now for h in state.open):
            return []   # nothing is due: _advance would fire nothing and keep every handoff
        out: list[Handoff] = []
        for h in self._ordered(state):
            fired, alive = self._advance(h, now, emitted_at)
            out += fired
            if not alive:
                _drop(state, h)
        return out

    def next_deadline(self, state: HandoffState) -> datetime | None:
        return min((h.due_at() for h in state.open), default=None)

    # ---- opening -----------------------------------------------------------------------
    def _segment(self, account: AccountView) -> str:
        return account.segment_of(self.journey.segmentation)

    def _before_contract(self, stage_id: str) -> bool:
        stage = self.journey.by_id.get(stage_id)
        return (self._contract_rank is not None and stage in self.journey.path
                and stage.rank < self._contract_rank)

    def _is_named_boundary(self, mode: NamedEvent, stage: str) -> bool:
        contract = stage == self.config.contract_stage and mode is not NamedEvent.FIRST_ACTIVATION
        activation = stage == self.config.activation_stage and mode is not NamedEvent.CONTRACT_EXECUTION
        return contract or activation

    def _changes_owner(self, tr: StageTransition) -> bool:
        route = self.config.named_route
        return (tr.from_owner_team is not None and tr.to_owner_team is not None
                and tr.from_owner_team != tr.to_owner_team
                and tr.direction in self.config.directions
                # the named route hands over at its named event, not at the owner change
                and (tr.from_owner_team, tr.to_owner_team) != (route.from_, route.to))

    def _open_named(self, state: HandoffState, account: AccountView, mode: NamedEvent, from_stage: str | None,
                    to_stage: str, trigger_event_id: str, occurred_at: datetime, owner: str | None,
                    emitted_at: datetime) -> list[Handoff]:
        if state.named_opened:
            return []
        state.named_opened = True
        route = self.config.named_route
        return self._open(state, account, route.from_, route.to, from_stage, to_stage, mode.value,
                          trigger_event_id, occurred_at, owner, emitted_at)

    def _open(self, state: HandoffState, account: AccountView, from_team: str | None, to_team: str,
              from_stage: str | None, to_stage: str, handoff_event: str, trigger_event_id: str,
              occurred_at: datetime, owner: str | None, emitted_at: datetime) -> list[Handoff]:
        handoff_id = Handoff.make_id(account.account_id, to_team, trigger_event_id)
        if any(h.record.handoff_id == handoff_id for h in state.open):
            return []
        record = Handoff(
            handoff_id=handoff_id, version=1, account_id=account.account_id, from_team=from_team,
            to_team=to_team, from_owner=owner, from_stage=from_stage, to_stage=to_stage,
            handoff_event=handoff_event, segment=self._segment(account), trigger_event_id=trigger_event_id,
            occurred_at=occurred_at, status=HandoffStatus.OPENED,
            overlap_until=self.calendar.add(occurred_at, self.config.overlap_days, Unit.DAYS),
            emitted_at=emitted_at,
        )
        accept_by = self.calendar.after(occurred_at, self.config.team(to_team).accept_within)
        state.open.append(OpenHandoff(record=record, accept_by=accept_by))
        return [record]

    # ---- progress ------------------------------------------------------------------------
    def _ordered(self, state: HandoffState) -> list[OpenHandoff]:
        return sorted(state.open, key=lambda h: (h.due_at(), h.record.handoff_id))

    def _note_receiver(self, state: HandoffState, account: AccountView) -> None:
        """A new CRM owner while a handoff is open is the receiving owner (shown in its next version)."""
        for h in state.open:
            r = h.record
            if r.to_owner is None and account.crm_owner_id and account.crm_owner_id != r.from_owner:
                # A copy: the emitted record must not change under its consumer.
                h.record = r.model_copy(update={"to_owner": account.crm_owner_id})

    def _first_action(self, state: HandoffState, account: AccountView, event: LifecycleEvent,
                      emitted_at: datetime) -> list[Handoff]:
        out: list[Handoff] = []
        if not state.open:
            return out
        for h in self._ordered(state):
            r = h.record
            if (r.status not in (HandoffStatus.OPENED, HandoffStatus.DROPPED)
                    or event.occurred_at < r.occurred_at or event.event_id == r.trigger_event_id
                    or not self._first_action_of(r.to_team).matches(event)):
                continue
            # Same records whether or not a tick reached the acceptance deadline first.
            fired, alive = self._advance(h, event.occurred_at, emitted_at)
            out += fired
            if not alive:
                _drop(state, h)
                continue
            actor = event.attributes.get("owner_id")
            out.append(self._emit(h, HandoffStatus.ACCEPTED, emitted_at, first_action_at=event.occurred_at,
                                  closed_at=None, to_owner=str(actor) if actor else r.to_owner))
        return out

    def _first_action_of(self, team: str) -> AnyOf:
        found = self._first_actions.get(team)
        if found is None:
            found = self._first_actions[team] = AnyOf(self.config.team(team).first_action)
        return found

    def _advance(self, h: OpenHandoff, now: datetime, emitted_at: datetime) -> tuple[list[Handoff], bool]:
        """Fire what is due on one handoff by ``now``. Returns the records and whether it stays open."""
        out: list[Handoff] = []
        overlap_until = h.record.overlap_until or h.accept_by
        if h.record.status is HandoffStatus.OPENED and h.accept_by <= now and h.accept_by <= overlap_until:
            out.append(self._emit(h, HandoffStatus.DROPPED, emitted_at, closed_at=h.accept_by))
        if overlap_until > now:
            return out, True
        if h.record.status is HandoffStatus.ACCEPTED:
            out.append(self._emit(h, HandoffStatus.COMPLETED, emitted_at, closed_at=overlap_until))
        elif h.record.status is HandoffStatus.OPENED:
            out.append(self._emit(h, HandoffStatus.DROPPED, emitted_at, closed_at=overlap_until))
        return out, False

    @staticmethod
    def _emit(h: OpenHandoff, status: HandoffStatus, emitted_at: datetime, **changes: Any) -> Handoff:
        h.record = h.record.model_copy(
            update={"status": status, "version": h.record.version + 1, "emitted_at": emitted_at, **changes})
        return h.record


def _drop(state: HandoffState, handoff: OpenHandoff) -> None:
    state.open = [h for h in state.open if h is not handoff]
