"""The parser contract every vendor implements, and the registry transports use.

A transport never knows a vendor's shape: it hands the delivery body to
``parser.split`` and gets native payloads back, one per raw record, each with a
stable id and an ordering key. The pipeline's normalize agent later calls
``parser.parse`` on each raw record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from schemas.events import LifecycleEvent, RawRecord, SourceKind


class ParseError(Exception):
    """A payload that cannot become canonical events.

    ``reason`` is a short category from a bounded set (it is a metric label and
    the dead letter's ``reason``): ``not_json``, ``not_an_object``,
    ``missing_field``, ``bad_timestamp``, ``unknown_vendor``, ``unsupported_type``,
    ``test_mode``, ``invalid``.
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


_REGISTRY: dict[str, SourceParser] = {}


def register(parser: SourceParser) -> SourceParser:
    _REGISTRY[parser.vendor] = parser
    return parser


def parser_for(vendor: str) -> SourceParser:
    _load_builtin_parsers()
    try:
        return _REGISTRY[vendor]
    except KeyError:
        raise ParseError("unknown_vendor", f"no parser for vendor {vendor!r}; known: {sorted(_REGISTRY)}") from None


def vendors() -> list[str]:
    _load_builtin_parsers()
    return sorted(_REGISTRY)


def _load_builtin_parsers() -> None:
    # Importing the source modules registers their parsers.
    if not _REGISTRY:
        import connectors.billing  # noqa: F401
        import connectors.crm  # noqa: F401
        import connectors.product  # noqa: F401
        import connectors.support  # noqa: F401


def to_raw_records(vendor: str, body: Any, transport: str, received_at: datetime) -> list[RawRecord]:
    """Wrap a delivery body into raw records; raises ParseError if it has no usable shape."""
    parser = parser_for(vendor)
    return [
        RawRecord(source=parser.source, vendor=vendor, event_id=parser.event_id(p),
                  received_at=received_at, transport=transport, payload=p)
        for p in parser.split(body)
    ]


def parse_raw(raw: RawRecord) -> list[LifecycleEvent]:
    """The normalize step: a raw record → canonical events, or ParseError."""
    return parser_for(raw.vendor).parse(raw.payload, raw.received_at)
