"""SLA rules. PLACEHOLDER: the SLA work fills in the tracker."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.core.predicates import Criterion


class Anchor(BaseModel):
    """Where an SLA clock starts or what stops it: entering a stage, or an event."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: str | None = None
    event: Criterion | None = None

    @model_validator(mode="after")
    def _one(self) -> "Anchor":
        if (self.stage is None) == (self.event is None):
            raise ValueError("give exactly one of 'stage' or 'event'")
        return self


class SlaRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str
    owner: str
    severity: Literal["low", "medium", "high", "critical"] = "medium"
    kind: Literal["deadline", "inactivity", "before_date"] = "deadline"
    start: Anchor
    expect: Anchor
    within: str = Field(description="'5 business days', '24 hours', '1 hour', '30 days'")
    segments: tuple[str, ...] | None = None

    def stage_refs(self) -> set[str]:
        return {a.stage for a in (self.start, self.expect) if a.stage}

    def event_kinds(self) -> set[str]:
        return {a.event.kind for a in (self.start, self.expect) if a.event}


class SlaState(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SlaTracker:
    """PLACEHOLDER: opens deadlines on start anchors, closes them on expect anchors,
    fires breaches when ``now`` passes a deadline. Pure; all state in SlaState."""

    def __init__(self, journey: "object", calendar: "object | None" = None) -> None:
        self.journey = journey

    def on_event(self, state: SlaState, account: "object", event: "object", transitions: list, emitted_at: "object") -> list:
        return []

    def on_tick(self, state: SlaState, account: "object", now: "object", emitted_at: "object") -> list:
        return []

    def next_deadline(self, state: SlaState) -> "object | None":
        return None
