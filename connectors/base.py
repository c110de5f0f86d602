"""The parser contract every vendor implements, and the two outcomes besides events.

A leaf: it imports no other connector module. The vendors are listed in
``connectors.registry``.

A transport never knows a vendor's shape: it hands the delivery body to
``parser.split`` and gets native payloads back, one per raw record, each with a
stable id and an ordering key. The pipeline's normalize agent later calls
``parser.parse`` on each raw record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from schemas.events import LifecycleEvent, SourceKind


class ParseError(Exception):
    """A payload that cannot become canonical events.

    ``reason`` is a short category from a bounded set (it is a metric label and
    the dead letter's ``reason``): ``not_json``, ``not_an_object``,
    ``missing_field``, ``bad_timestamp``, ``unknown_vendor``, ``unsupported_type``,
    ``test_mode``, ``enrichment_failed``, ``invalid``.
    """

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Ignored(Exception):
    """A well-formed payload with no lifecycle meaning (a deletion, ``charge.succeeded``, a
    property nobody maps): counted by vendor and type, never dead-lettered. The dead-letter
    topic is for what a person must look at."""

    def __init__(self, type_: str, detail: str = ""):
        super().__init__(f"ignored {type_}: {detail}")
        self.type = type_
        self.detail = detail


@runtime_checkable
class SourceParser(Protocol):
    vendor: str
    source: SourceKind

    def split(self, body: Any) -> list[dict[str, Any]]:
        """One delivery (webhook body, file item, API page item) → native payloads, one per record."""

    def event_id(self, payload: dict[str, Any]) -> str:
        """The vendor's own event id where it has one; else a content hash."""

    def key(self, payload: dict[str, Any]) -> str:
        """Ordering key on the raw topic (the account-level object id the payload is about)."""

    def parse(self, payload: dict[str, Any], ingested_at: datetime) -> list[LifecycleEvent]:
        """Native payload → canonical events (possibly none: e.g. an ignorable notification)."""
