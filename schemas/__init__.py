"""The public contract: pydantic models of every record on every topic.

Consumers outside this repository depend on these shapes; change them only in
backward-compatible ways (add optional fields) and re-export JSON Schemas with
``lifecycle schemas export DIR``.
"""

from schemas.base import Record
from schemas.events import DeadLetter, IdentityLink, LifecycleEvent, Person, RawRecord, SourceKind
from schemas.accounts import AccountMessage
from schemas.identity import AccountMerged, IdentityDecision
from schemas.handoffs import Handoff, HandoffStatus
from schemas.sla import SlaBreach, SlaBreachStatus
from schemas.transitions import StageTransition
from schemas import topics

__all__ = [
    "Record",
    "RawRecord",
    "LifecycleEvent",
    "IdentityLink",
    "Person",
    "SourceKind",
    "DeadLetter",
    "AccountMessage",
    "AccountMerged",
    "IdentityDecision",
    "StageTransition",
    "Handoff",
    "HandoffStatus",
    "SlaBreach",
    "SlaBreachStatus",
    "topics",
]
