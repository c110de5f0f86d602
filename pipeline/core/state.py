"""Per-account state kept in the Faust table: the engine's, the SLA tracker's and
the handoff tracker's, in one value so one table write per event keeps them in step."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pipeline.core.handoffs import HandoffState
from pipeline.core.sla import SlaState
from schemas.base import UtcDatetime
from schemas.events import LifecycleEvent

JOURNAL_KEPT = 300    # events that mattered to the journey, re-played into the survivor on a merge
RECENT_IDS = 64       # idempotency window: re-deliveries after a crash replay the last uncommitted batch
IGNORED_KEPT = 20


class StageVisit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: str
    entered_at: UtcDatetime
    trigger_event_id: str
    inferred: bool = False


class IgnoredMove(BaseModel):
    """An event that matched a stage but did not move the account, and why (kept for audit)."""

    model_config = ConfigDict(extra="forbid")

    event_id: str
    occurred_at: UtcDatetime
    target: str
    reason: str


class AccountState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: str
    stage: str | None = None
    stage_entered_at: UtcDatetime | None = None
    last_event_at: UtcDatetime | None = None
    first_event_at: UtcDatetime | None = None
    crm_owner_id: str | None = None
    segment: str | None = None
    events_seen: int = 0
    recent_event_ids: list[str] = Field(default_factory=list)
    history: list[StageVisit] = Field(default_factory=list)
    ignored: list[IgnoredMove] = Field(default_factory=list)
    merged_into: str | None = None
    sla: SlaState = Field(default_factory=SlaState)
    handoffs: HandoffState = Field(default_factory=HandoffState)

    def remember(self, event_id: str) -> bool:
        """Record an event id; False if it was already seen (a re-delivery)."""
        if event_id in self.recent_event_ids:
            return False
        self.recent_event_ids.append(event_id)
        if len(self.recent_event_ids) > RECENT_IDS:
            del self.recent_event_ids[: len(self.recent_event_ids) - RECENT_IDS]
        return True

    def note_ignored(self, move: IgnoredMove) -> None:
        self.ignored.append(move)
        if len(self.ignored) > IGNORED_KEPT:
            del self.ignored[0]


class Journal(BaseModel):
    """The account's business-significant events, kept apart from ``AccountState`` so the
    hot per-event state write stays small; read only when the account is merged away."""

    model_config = ConfigDict(extra="forbid")

    events: list[LifecycleEvent] = Field(default_factory=list)

    def extend(self, events: list[LifecycleEvent]) -> None:
        self.events.extend(events)
        if len(self.events) > JOURNAL_KEPT:
            del self.events[: len(self.events) - JOURNAL_KEPT]
