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
