"""Handoff rules. PLACEHOLDER: the handoff work fills in the tracker."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class HandoffConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    overlap_days: int = 45

    def event_kinds(self) -> set[str]:
        return set()


class HandoffState(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HandoffTracker:
    """PLACEHOLDER: opens a handoff when the owner team changes across a transition,
    tracks first action, overlap window, completion or drop. Pure; state in HandoffState."""

    def __init__(self, journey: "object") -> None:
        self.journey = journey

    def on_event(self, state: HandoffState, account: "object", event: "object", transitions: list, emitted_at: "object") -> list:
        return []

    def on_tick(self, state: HandoffState, account: "object", now: "object", emitted_at: "object") -> list:
        return []

    def next_deadline(self, state: HandoffState) -> "object | None":
        return None
