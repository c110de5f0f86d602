"""The stage-transition stream: what RevOps subscribes to."""

from __future__ import annotations

from pydantic import Field

from schemas.base import Record, UtcDatetime, stable_id


class StageTransition(Record):
    """An account moved from one lifecycle stage to another.

    ``transition_id`` is derived from account, target stage and triggering event,
    so at-least-once delivery, retries and replays emit the same id: consumers
    de-duplicate on it.
    """

    transition_id: str
    account_id: str
    from_stage: str | None = Field(description="None for the account's first stage")
    to_stage: str
    occurred_at: UtcDatetime = Field(description="Event time of the triggering event")
    trigger_event_id: str
    trigger_kind: str
    from_owner_team: str | None = None
    to_owner_team: str
    owner_id: str | None = Field(default=None, description="CRM owner of the account at the transition, if known")
    time_in_previous_stage_seconds: float | None = None
    inferred: bool = Field(default=False, description="True for an intermediate stage filled in on a jump")
    direction: str = Field(default="forward", description="forward, backward, regression, return, or merged")
    provisional: bool = Field(
        default=False, description="The account has no CRM account id yet and may later merge into one; "
                                   "its transitions are then re-played under the survivor's id")
    merged_into: str | None = Field(
        default=None, description="Set only on a direction=merged record: this account was merged into that "
                                  "one and its stream ends here (drop its transitions: the survivor re-played them)")
    emitted_at: UtcDatetime

    @staticmethod
    def make_id(account_id: str, to_stage: str, trigger_event_id: str) -> str:
        return stable_id(account_id, to_stage, trigger_event_id, prefix="tr-")
