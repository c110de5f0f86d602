"""What flows on the account-keyed topic (``lifecycle.account-events``).

One envelope for the three things an account's owner must see in order: its
resolved events, timer ticks, and identity merges that move history between
accounts. Internal to the pipeline, but versioned like the rest of the contract.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.base import Record, UtcDatetime
from schemas.events import LifecycleEvent
from schemas.identity import AccountMerged


class AccountMessage(Record):
    type: Literal["event", "tick", "merge_out", "merge_in"]
    account_id: str
    event: LifecycleEvent | None = None
    now: UtcDatetime | None = Field(default=None, description="For ticks: the clock reading to fire up to")
    merge: AccountMerged | None = None
    journal: list[LifecycleEvent] = Field(default_factory=list, description="For merge_in: the absorbed account's events")


class AccountBatch(Record):
    """One message on ``lifecycle.account-events``: messages for accounts of ONE partition,
    in order. Batching is what makes the account hop cheap: Faust's per-message cost is
    paid once per batch, and each account's state is written to its changelog once per
    batch instead of once per event."""

    messages: list[AccountMessage]
