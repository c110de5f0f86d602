"""Canonical events for tests, built the way parsers build them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from itertools import count
from typing import Any

from schemas.events import LifecycleEvent, SourceKind

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)  # a Monday
_seq = count(1)


def at(days: float = 0, hours: float = 0) -> datetime:
    return T0 + timedelta(days=days, hours=hours)


def ev(kind: str, when: datetime | float = 0, *, account: str = "hubspot.company:1", event_id: str | None = None,
       **attributes: Any) -> LifecycleEvent:
    occurred = when if isinstance(when, datetime) else at(when)
    source = SourceKind(kind.split(".", 1)[0])
    return LifecycleEvent(
        event_id=event_id or f"test:{next(_seq)}",
        source=source,
        vendor={"crm": "hubspot", "billing": "stripe", "product": "segment", "support": "zendesk"}[source.value],
        kind=kind,
        occurred_at=occurred,
        ingested_at=occurred,
        identifiers=[account],
        attributes=attributes,
    )
