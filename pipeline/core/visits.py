"""What the SLA and handoff trackers read of an account: its stage visits and a narrow view.

A leaf: ``core.state`` holds the trackers' states inside ``AccountState``, so the trackers
cannot import ``AccountState`` back without a cycle. They type against ``AccountView``,
which ``AccountState`` satisfies as it is.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict

from pipeline.core.journey import Segmentation
from schemas.base import UtcDatetime


class StageVisit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: str
    entered_at: UtcDatetime
    trigger_event_id: str
    inferred: bool = False


class AccountView(Protocol):
    """The account fields an SLA or handoff rule may depend on."""

    @property
    def account_id(self) -> str: ...

    @property
    def stage(self) -> str | None: ...

    @property
    def crm_owner_id(self) -> str | None: ...

    @property
    def history(self) -> list[StageVisit]: ...

    def segment_of(self, segmentation: Segmentation) -> str: ...
