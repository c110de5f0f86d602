"""SLA breaches and late recoveries."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from schemas.base import Record, UtcDatetime, stable_id


class SlaBreachStatus(StrEnum):
    BREACHED = "breached"    # the deadline passed without the expected event
    MET_LATE = "met_late"    # the expected event came after the deadline


class SlaBreach(Record):
    """Emitted at the deadline (``breached``), and again when the event finally comes
    (``met_late``, same ``breach_id``). Nothing is emitted for an SLA met in time."""

    breach_id: str
    record_id: str = Field(description="Unique per record: breach_id plus status; de-duplicate on this")
    status: SlaBreachStatus
    account_id: str
    sla_id: str
    sla_name: str
    owner_team: str
    severity: str
    started_at: UtcDatetime = Field(description="When the clock started (the start event's time)")
    start_event_id: str
    deadline: UtcDatetime
    met_at: UtcDatetime | None = None
    met_event_id: str | None = None
    late_by_seconds: float | None = None
    detected_at: UtcDatetime = Field(description="Clock reading (event-time watermark or wall clock) when detected")
    emitted_at: UtcDatetime

    @staticmethod
    def make_id(account_id: str, sla_id: str, start_event_id: str) -> str:
        return stable_id(account_id, sla_id, start_event_id, prefix="sla-")
