"""What flows on the account-keyed topic (``lifecycle.account-events``).

One envelope for the three things an account's owner must see in order: its
resolved events, timer ticks, and identity merges that move history between
accounts. Internal to the pipeline, but versioned like the rest of the contract.
"""

from __future__ import annotations

import functools
from typing import Literal

from pydantic import Field

from schemas.base import Record, UtcDatetime
from schemas.events import LifecycleEvent
from schemas.identity import AccountMerged
from schemas.raw_batch import partition_for


@functools.lru_cache(maxsize=1 << 16)
def partition_of(account_id: str, partitions: int) -> int:
    """The account topic's partition of an account: Kafka's default (murmur2) partitioner of
    its id, so a keyed send and a batch routed by the pipeline agree. Remembered for the most
    recent accounts: every account message is numbered and routed by it."""
    return partition_for(account_id.encode(), partitions)


class AccountMessage(Record):
    """``event``: a resolved event. ``clock``: the ingest step is caught up and the clock
    reads ``now`` (for the whole partition). ``tick``: kept only inside an account's held
    queue. ``merge_out`` / ``merge_wait``: the identity step merged ``merge.from_account``
    into ``merge.into_account`` at this point of the input; ``merge_in`` carries the
    absorbed account's journal from its partition to the survivor's.

    ``origin`` and ``seq`` number each sender's messages to one partition 1, 2, 3, …
    (``ingest/p`` or ``accounts-<p>/p``), so a partition applies each message once however
    often a restart re-sends it, and never applies one after a missing one
    (``pipeline.core.numbering``). Earlier versions numbered per sender (``ingest``,
    ``accounts-<p>``); such messages are still deduplicated."""

    type: Literal["event", "tick", "clock", "merge_out", "merge_wait", "merge_in"]
    account_id: str
    origin: str | None = None
    seq: int | None = None
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
