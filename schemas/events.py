"""Records entering the pipeline: raw vendor payloads, canonical events, dead letters."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from schemas.base import Record, UtcDatetime, stable_id


class SourceKind(StrEnum):
    """The four systems that each hold part of the customer record."""

    CRM = "crm"
    BILLING = "billing"
    PRODUCT = "product"
    SUPPORT = "support"


class RawRecord(Record):
    """One native vendor payload, as a connector received it, on ``lifecycle.raw.<source>``.

    ``payload`` is the vendor's own JSON object, untouched (a HubSpot webhook
    notification, a Stripe event, a Segment call, a Zendesk ticket event);
    parsing into canonical events happens in the pipeline so a parser fix can be
    replayed over history.
    """

    source: SourceKind
    vendor: str = Field(description="hubspot, salesforce, stripe, segment, zendesk, ...")
    event_id: str = Field(description="The vendor's own event id where it has one, else a content hash")
    received_at: UtcDatetime
    transport: Literal["webhook", "file", "poll", "sample"] = "webhook"
    payload: dict[str, Any]


class Person(Record):
    """The human behind an event: events carry the person, stages belong to the account."""

    id: str = Field(description="Namespaced person id, e.g. 'hubspot.contact:51'")
    email: str | None = None
    name: str | None = None
    role: str | None = Field(default=None, description="economic_buyer, user, champion, executive_sponsor, owner ...")


class IdentityLink(Record):
    """An explicit assertion by a source that two identifiers are the same account."""

    a: str
    b: str
    reason: str = Field(description="Why the source says so, e.g. 'stripe customer metadata.hubspot_company_id'")


class LifecycleEvent(Record):
    """The canonical event every source is parsed into.

    ``identifiers`` are namespaced ids (``namespace:value``) of the account-level
    objects this event touches, the most specific first, e.g.
    ``["stripe.customer:cus_9", "domain:acme.com"]``. ``account_id`` is filled in by
    identity resolution inside the pipeline, never by a connector.
    """

    event_id: str
    source: SourceKind
    vendor: str
    kind: str = Field(description="'<source>.<what happened>', e.g. 'crm.deal_won', 'billing.invoice_paid'")
    occurred_at: UtcDatetime = Field(description="Event time, from the source")
    ingested_at: UtcDatetime = Field(description="When a connector received it")
    identifiers: list[str] = Field(min_length=1)
    links: list[IdentityLink] = Field(default_factory=list)
    person: Person | None = None
    account_id: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)

    @staticmethod
    def make_id(vendor: str, vendor_event_id: str, suffix: str = "") -> str:
        """Stable id: the vendor's own id where it has one, so re-delivery is idempotent."""
        return f"{vendor}:{vendor_event_id}{'#' + suffix if suffix else ''}"


class DeadLetter(Record):
    """Input the pipeline could not use, kept with the reason and the original bytes."""

    dead_letter_id: str
    stage: str = Field(description="Which step refused it: connector, decode, parse, resolve, engine ...")
    reason: str = Field(description="Short machine-friendly category, a bounded set (used as a metric label)")
    detail: str = Field(description="Human-readable explanation")
    source_topic: str | None = None
    source: str | None = None
    vendor: str | None = None
    original: str = Field(description="The original bytes, decoded as UTF-8 with replacement")
    original_base64: str | None = Field(default=None, description="Set when the bytes were not valid UTF-8")
    failed_at: UtcDatetime

    @classmethod
    def build(cls, *, stage: str, reason: str, detail: str, original: bytes | str, failed_at: datetime,
              source_topic: str | None = None, source: str | None = None, vendor: str | None = None,
              origin_ref: str = "") -> "DeadLetter":
        """The one way to make a dead letter: keeps the original bytes and derives a
        deterministic id (from where it came and what it was), so a replayed failure
        dead-letters under the same id."""
        raw = original.encode() if isinstance(original, str) else bytes(original)
        try:
            text, b64 = raw.decode("utf-8"), None
        except UnicodeDecodeError:
            text, b64 = raw.decode("utf-8", "replace"), base64.b64encode(raw).decode()
        return cls(
            dead_letter_id=stable_id(stage, reason, source_topic, origin_ref, hashlib.blake2b(raw, digest_size=12).hexdigest(), prefix="dl-"),
            stage=stage, reason=reason, detail=detail[:2000], source_topic=source_topic, source=source,
            vendor=vendor, original=text, original_base64=b64, failed_at=failed_at,
        )
