"""CloudEvents 1.0 Kafka binary-mode headers for the output records (the value stays the JSON it is).

Each output record carries ``ce_specversion``, ``ce_id`` (the record's deterministic id, so a
re-delivered duplicate has the same one), ``ce_source`` (the pipeline deployment), ``ce_type``,
``ce_time`` (the record's event time), ``ce_subject`` (the account id) and
``content-type: application/json``. Consumers that speak CloudEvents (Knative, Dapr, the SDKs'
Kafka bindings) read them without knowing our schemas; the types are listed in :data:`TYPES`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from schemas.base import Record
from schemas.handoffs import Handoff, HandoffStatus
from schemas.identity import AccountMerged, IdentityDecision
from schemas.sla import SlaBreach, SlaBreachStatus
from schemas.transitions import StageTransition

SPEC_VERSION = "1.0"
TYPE_PREFIX = "org.lifecyclepipeline.lifecycle"
CONTENT_TYPE = "application/json"

# What each record type says, as (ce_type, ce_id, ce_time, ce_subject) of a record.
_ATTRIBUTES: dict[type[Record], Callable[[Any], tuple[str, str, datetime, str]]] = {
    StageTransition: lambda r: ("stage.transitioned", r.transition_id, r.occurred_at, r.account_id),
    Handoff: lambda r: (f"handoff.{r.status.value}", f"{r.handoff_id}:{r.version}", r.occurred_at, r.account_id),
    SlaBreach: lambda r: (f"sla.{r.status.value}", r.record_id, r.detected_at, r.account_id),
    IdentityDecision: lambda r: ("identity.decided", r.decision_id, r.decided_at, r.account_id),
    AccountMerged: lambda r: ("account.merged", r.merge_id, r.decided_at, r.into_account),
}

# Every ce_type the pipeline emits, with the record type that carries it (README, schema export).
TYPES: dict[str, type[Record]] = {
    f"{TYPE_PREFIX}.stage.transitioned": StageTransition,
    **{f"{TYPE_PREFIX}.handoff.{s.value}": Handoff for s in HandoffStatus},
    **{f"{TYPE_PREFIX}.sla.{s.value}": SlaBreach for s in SlaBreachStatus},
    f"{TYPE_PREFIX}.identity.decided": IdentityDecision,
    f"{TYPE_PREFIX}.account.merged": AccountMerged,
}


def source_for(app_id: str) -> str:
    """``ce_source``: which deployment emitted the record (a URI reference)."""
    return f"/lifecycle-pipeline/{app_id}"


def ce_type(record: Record) -> str:
    return f"{TYPE_PREFIX}.{_ATTRIBUTES[type(record)](record)[0]}"


def ce_headers(record: Record, source: str) -> list[tuple[str, bytes]]:
    """The binary-mode headers of one output record."""
    kind, ident, time, subject = _ATTRIBUTES[type(record)](record)
    return [
        ("ce_specversion", SPEC_VERSION.encode()),
        ("ce_id", ident.encode()),
        ("ce_source", source.encode()),
        ("ce_type", f"{TYPE_PREFIX}.{kind}".encode()),
        ("ce_time", time.isoformat().replace("+00:00", "Z").encode()),
        ("ce_subject", subject.encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]
