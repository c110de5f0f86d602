"""Every vendor, in one explicit tuple, and the lookups transports and the pipeline use.

No import-order-dependent registration: importing this module imports every vendor
module, so ``parser_for("stripe")`` works whatever was imported first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from connectors.base import ParseError, SourceParser
from connectors.billing.stripe import STRIPE
from connectors.crm.hubspot import HUBSPOT
from connectors.crm.salesforce import SALESFORCE
from connectors.cursors import CursorStrategy
from connectors.product.segment import SEGMENT
from connectors.support.zendesk import ZENDESK
from connectors.vendor import Vendor
from schemas.events import LifecycleEvent, RawRecord, SourceKind

VENDORS: tuple[Vendor, ...] = (HUBSPOT, SALESFORCE, STRIPE, SEGMENT, ZENDESK)
_BY_NAME: dict[str, Vendor] = {v.name: v for v in VENDORS}


def vendor(name: str) -> Vendor:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ParseError("unknown_vendor", f"no vendor {name!r}; known: {vendors()}") from None


def vendors() -> list[str]:
    return sorted(_BY_NAME)


def parser_for(name: str) -> SourceParser:
    return vendor(name).parser


class PollSettings(Protocol):
    options: dict[str, Any]
    page_size: int


def strategies_for(name: str, config: PollSettings) -> list[CursorStrategy]:
    """The streams to poll for a vendor, from a ``PollConfig`` (each vendor's ``_poll`` documents its options)."""
    if name not in _BY_NAME:
        raise ValueError(f"no polling strategy for {name!r}; known: {vendors()}")
    return vendor(name).poll(config.options, config.page_size)


def identity_tiers() -> dict[str, str]:
    """Namespace → what it names, over every vendor (a CRM's accounts are ``crm_account``):
    the identity core's default configuration (``IdentityConfig.namespaces``)."""
    return {ns: "crm_account" if tier == "account" and v.source is SourceKind.CRM else tier
            for v in VENDORS for ns, tier in v.namespaces.items()}


def anchor_preference() -> tuple[str, ...]:
    """Account-level namespaces in vendor order (CRMs first): the default preference for naming an account."""
    return tuple(ns for v in VENDORS for ns, tier in v.namespaces.items() if tier == "account")


def is_test_mode(raw: RawRecord, events: list[LifecycleEvent]) -> bool:
    """The vendor's own rule for test-mode traffic (Stripe: ``livemode: false``)."""
    rule = vendor(raw.vendor).test_mode
    return any(rule(e) for e in events)


def to_raw_records(vendor_name: str, body: Any, transport: str, received_at: datetime) -> list[RawRecord]:
    """Wrap a delivery body into raw records; raises ParseError if it has no usable shape."""
    parser = parser_for(vendor_name)
    return [
        RawRecord(source=parser.source, vendor=vendor_name, event_id=parser.event_id(p),
                  received_at=received_at, transport=transport, payload=p)
        for p in parser.split(body)
    ]


def parse_raw(raw: RawRecord) -> list[LifecycleEvent]:
    """The normalize step: a raw record → canonical events, or ParseError / Ignored."""
    return parser_for(raw.vendor).parse(raw.payload, raw.received_at)
