"""Which vendor an export came from, told from its first record's shape (``lifecycle run``).

Each vendor's payloads carry marks no other vendor's do: Stripe's ``"object": "event"``,
Salesforce's change-event header or sObject ``attributes``, Segment's ``messageId`` with a call
type, Zendesk's ``ticket``/``organization`` objects or ``zen:`` event types, HubSpot's
``subscriptionType``/``portalId`` or CRM-object ``properties``.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import ijson


def vendor_of_payload(payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return None
    if payload.get("object") == "event" and "data" in payload:
        return "stripe"
    inner = payload.get("payload") if isinstance(payload.get("payload"), dict) else payload
    if "ChangeEventHeader" in inner or isinstance(payload.get("attributes"), dict):
        return "salesforce"
    if "messageId" in payload and payload.get("type") in {"track", "identify", "group", "page", "screen", "alias"}:
        return "segment"
    if (any(k in payload for k in ("ticket", "ticket_id", "organization", "audit"))
            or str(payload.get("type", "")).startswith("zen:")):
        return "zendesk"
    if "subscriptionType" in payload or "portalId" in payload or isinstance(payload.get("properties"), dict):
        return "hubspot"
    return None


def vendor_of_export(path: Path) -> str | None:
    """The vendor of an NDJSON or JSON-array export (plain or .gz), or None if its first record
    does not say (or it is RawRecord JSONL, which names its vendor per line)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as stream:
        head = stream.read(1)
        while head and head.isspace():
            head = stream.read(1)
        if head == b"[":
            stream.seek(0)
            first = next(iter(ijson.items(stream, "item")), None)
        else:
            line = head + stream.readline()
            first = json.loads(line) if line.strip() else None
    if isinstance(first, dict) and "payload" in first and "vendor" in first and "source" in first:
        return None  # RawRecord JSONL
    return vendor_of_payload(first)
