"""Per-account state kept in the Faust table: the engine's, the SLA tracker's and
the handoff tracker's, in one value so one table write per event keeps them in step."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from pipeline.core.handoffs import HandoffState
from pipeline.core.sla import SlaState
from pipeline.core.visits import StageVisit
from schemas.accounts import AccountMessage
from schemas.base import UtcDatetime
from schemas.events import LifecycleEvent

from pipeline.core.journey import Segmentation

JOURNAL_KEPT = 300    # events that mattered to the journey, re-played into the survivor on a merge
RECENT_IDS = 64       # idempotency window: re-deliveries after a crash replay the last uncommitted batch
DIGEST_BYTES = 8      # an id in the window: its 63-bit digest, big-endian
IGNORED_KEPT = 20


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
    # Billing interval per subscription id, from the billing events that state it (newest last), so an
    # invoice that does not state it still counts by its subscription's (see core.account).
    plan_intervals: dict[str, str] = Field(default_factory=dict)
    segment: str | None = None    # as stated on an event (the CRM deal's); see segment_of
    facts: list[str] = Field(default_factory=list)  # the journey's segmentation facts seen (bounded by the journey)
    events_seen: int = 0
    journal_len: int = 0  # events ever appended to the journal (see journal_key)
    # The idempotency window: the last RECENT_IDS event ids' digests, packed, oldest first. Packed
    # because it is in every state write: as 64 Python ints it took 2.8 kB of memory per account
    # and, the ints scattered across the heap, about 40% of the state's serialization.
    recent_event_ids: bytes = b""
    history: list[StageVisit] = Field(default_factory=list)
    ignored: list[IgnoredMove] = Field(default_factory=list)
    merged_into: str | None = None
    sla: SlaState = Field(default_factory=SlaState)
    handoffs: HandoffState = Field(default_factory=HandoffState)
    # A merge into this account is under way: everything for it waits here, in order,
    # until the absorbed account's journal arrives (so the outcome never depends on
    # how fast another partition forwards it).
    awaiting_merge: str | None = None
    held: list[AccountMessage] = Field(default_factory=list)  # as written before held_len (still read)
    held_len: int = 0             # messages waiting in held slots (see held_key), after ``held``
    held_at: list[int] = Field(default_factory=list)   # per held message: the partition's clock-log length then
    blocked_at: int = 0                                # the clock-log length when the wait began
    early_merges: dict[str, list[LifecycleEvent]] = Field(default_factory=dict)

    @field_validator("recent_event_ids", mode="before")
    @classmethod
    def _read_window(cls, value: Any) -> Any:
        """The window's JSON form is base64; states written before it was packed hold a list of
        the digests as integers (the same digests, so a re-delivery across the upgrade is still seen)."""
        if isinstance(value, str):
            return base64.b64decode(value, validate=True)
        if isinstance(value, list):
            return b"".join(digest.to_bytes(DIGEST_BYTES, "big") for digest in value)
        return value

    @field_serializer("recent_event_ids", when_used="json")
    def _write_window(self, window: bytes) -> str:
        return base64.b64encode(window).decode()

    def remember(self, event_id: str) -> bool:
        """Record an event id; False if it was already seen (a re-delivery). Kept as a
        stable 63-bit digest: the window is in every state write."""
        digest = window_digest(event_id)
        window = self.recent_event_ids
        at = window.find(digest)
        while at > 0 and at % DIGEST_BYTES:   # a match across two digests is not one
            at = window.find(digest, at + 1)
        if at >= 0:
            return False
        self.recent_event_ids = (window + digest)[-RECENT_IDS * DIGEST_BYTES:]
        return True

    def segment_of(self, segmentation: Segmentation) -> str:
        """The segment SLAs and handoffs go by: stated, else derived from facts, else the default."""
        return segmentation.segment_of(self.segment, self.facts)

    def note_ignored(self, move: IgnoredMove) -> None:
        self.ignored.append(move)
        if len(self.ignored) > IGNORED_KEPT:
            del self.ignored[0]


def window_digest(event_id: str) -> bytes:
    """An event id as the idempotency window keeps it: its 63-bit digest, ``DIGEST_BYTES`` big-endian."""
    return (int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "big") >> 1
            ).to_bytes(DIGEST_BYTES, "big")


def journal_key(account_id: str, index: int) -> str:
    """The journal is a ring of ``JOURNAL_KEPT`` slots per account, one table key each:
    appending an event writes one small value, never the whole journal."""
    return f"{account_id}|{index % JOURNAL_KEPT}"


def held_key(account_id: str, index: int) -> str:
    """One message waiting for a merge, in the partition's progress table: holding it writes
    one small value, never the whole queue with the account's state (the queue of an account
    awaiting a merge grows with every message for it until the journal arrives)."""
    return f"{account_id}|held|{index}"


def journal_keys(state: AccountState) -> list[str]:
    """The keys of the account's kept journal, oldest first."""
    n = state.journal_len
    return [journal_key(state.account_id, i) for i in range(max(0, n - JOURNAL_KEPT), n)]
