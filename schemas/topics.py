"""Every topic the pipeline reads or writes, in one place.

Raw topics carry ``RawRecord``; the rest carry the model named beside them.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.accounts import AccountBatch
from schemas.events import DeadLetter, RawRecord, SourceKind
from schemas.identity import AccountMerged, IdentityDecision
from schemas.handoffs import Handoff
from schemas.sla import SlaBreach
from schemas.transitions import StageTransition
from schemas.base import Record


@dataclass(frozen=True)
class TopicSpec:
    name: str
    models: tuple[type[Record], ...]  # a value is one of these (told apart by a ``type`` field if several)
    doc: str


RAW = {kind: f"lifecycle.raw.{kind.value}" for kind in SourceKind}
RAW_CRM = RAW[SourceKind.CRM]
RAW_BILLING = RAW[SourceKind.BILLING]
RAW_PRODUCT = RAW[SourceKind.PRODUCT]
RAW_SUPPORT = RAW[SourceKind.SUPPORT]

ACCOUNT_EVENTS = "lifecycle.account-events"  # resolved events and ticks, keyed by account id
STAGE_TRANSITIONS = "lifecycle.stage-transitions"
HANDOFFS = "lifecycle.handoffs"
SLA_BREACHES = "lifecycle.sla-breaches"
DEAD_LETTER = "lifecycle.dead-letter"
IDENTITY = "lifecycle.identity"               # identity decisions and account merges

PUBLIC: tuple[TopicSpec, ...] = (
    *(TopicSpec(name, (RawRecord,), f"Native {kind.value} payloads from connectors") for kind, name in RAW.items()),
    TopicSpec(STAGE_TRANSITIONS, (StageTransition,), "Every stage change of every account"),
    TopicSpec(HANDOFFS, (Handoff,), "Handoffs between owning teams, re-emitted on each status change"),
    TopicSpec(SLA_BREACHES, (SlaBreach,), "SLA deadlines missed, and late recoveries"),
    TopicSpec(IDENTITY, (IdentityDecision, AccountMerged), "Identity decisions and account merges (audit trail)"),
    TopicSpec(DEAD_LETTER, (DeadLetter,), "Input that could not be used, with the reason"),
    TopicSpec(ACCOUNT_EVENTS, (AccountBatch,), "Internal: resolved events, ticks and merges, batched per partition"),
)


def all_topic_names() -> list[str]:
    return [spec.name for spec in PUBLIC]
