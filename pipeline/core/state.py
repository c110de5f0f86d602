"""Per-account state kept in the Faust table: the engine's, the SLA tracker's and
the handoff tracker's, in one value so one table write per event keeps them in step."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pipeline.core.handoffs import HandoffState
from pipeline.core.sla import SlaState
from schemas.base import UtcDatetime
from schemas.events import LifecycleEvent

JOURNAL_KEPT = 300    # events that mattered to the journey, re-played into the survivor on a merge
RECENT_IDS = 256      # idempotency window: duplicates are re-deliveries, which arrive close together
IGNORED_KEPT = 50


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
    journal: list[LifecycleEvent] = Field(default_factory=list)
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

    def keep(self, event: LifecycleEvent) -> None:
        self.journal.append(event)
        if len(self.journal) > JOURNAL_KEPT:
            del self.journal[0]

    def note_ignored(self, move: IgnoredMove) -> None:
        self.ignored.append(move)
        if len(self.ignored) > IGNORED_KEPT:
            del self.ignored[0]
