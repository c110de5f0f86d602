"""Handoffs between owning teams, and their health as it evolves."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from schemas.base import Record, UtcDatetime, stable_id


class HandoffStatus(StrEnum):
    OPENED = "opened"          # owner team changed; receiving team has not acted yet
    ACCEPTED = "accepted"      # receiving team's first action seen
    COMPLETED = "completed"    # overlap window ended with the receiving team active
    DROPPED = "dropped"        # no first action within the acceptance window


class Handoff(Record):
    """One handoff's current health. Re-emitted on every status change with the same
    ``handoff_id`` and a growing ``version``: consumers keep the highest version."""

    handoff_id: str
    version: int = 1
    account_id: str
    from_team: str | None
    to_team: str
    from_owner: str | None = None
    to_owner: str | None = None
    from_stage: str | None = None
    to_stage: str
    handoff_event: str = Field(description="Named handoff event for the segment: contract_execution, first_activation, either ...")
    segment: str | None = None
    trigger_event_id: str
    occurred_at: UtcDatetime
    status: HandoffStatus = HandoffStatus.OPENED
    first_action_at: UtcDatetime | None = None
    overlap_until: UtcDatetime | None = Field(default=None, description="Until when the sending owner stays on the account")
    closed_at: UtcDatetime | None = None
    emitted_at: UtcDatetime

    @staticmethod
    def make_id(account_id: str, to_team: str, trigger_event_id: str) -> str:
        return stable_id(account_id, to_team, trigger_event_id, prefix="ho-")
