"""Segment spec calls (track, identify, group, page, screen, alias) → canonical product events.

The account in product analytics is the Segment *group* (a workspace); calls
name it either as a group call's ``groupId`` or, for B2B tracking, in
``context.groupId``. A group call is where the product asserts which user
belongs to which workspace and, through its traits, which CRM company it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.base import ParseError
from connectors.cursors import Cursor, CursorStrategy, NoRecovery, Page, PollRequest, PollResponse
from connectors.parsing import (
    VendorParser,
    as_str,
    crm_links,
    dig,
    domain_id,
    first_time,
    ident,
    link,
    person,
    require,
)
from connectors.signing import HmacScheme
from connectors.vendor import Vendor
from schemas.events import LifecycleEvent, SourceKind

# Segment's own event time first; the send/receive times only when a library gave none.
_TIME_FIELDS = ("timestamp", "originalTimestamp", "sentAt", "receivedAt")
_KINDS = {"track": "product.track", "identify": "product.identify", "group": "product.group",
          "page": "product.page", "screen": "product.page", "alias": "product.identify"}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class SegmentParser(VendorParser):
    vendor = "segment"
    source = SourceKind.PRODUCT
    containers = ("batch",)

    def split(self, body: Any) -> list[dict[str, Any]]:
        items = super().split(body)
        if isinstance(body, dict) and isinstance(body.get("batch"), list):
            # A batch's own sentAt/context apply to calls that do not carry theirs.
            shared = {k: body[k] for k in ("sentAt", "context") if k in body}
            items = [{**shared, **item} for item in items]
        return items

    def native_id(self, payload: dict[str, Any]) -> str | None:
        return as_str(payload.get("messageId"))

    def key(self, payload: dict[str, Any]) -> str:
        group = self._group_id(payload)
        return (ident("segment.group", group) or ident("segment.user", payload.get("userId"))
                or ident("segment.anonymous", payload.get("anonymousId"))
                or f"segment.message:{self.event_id(payload)}")

    @staticmethod
    def _group_id(payload: dict[str, Any]) -> Any:
        return payload.get("groupId") if payload.get("type") == "group" else dig(payload, "context.groupId")

    def parse_object(self, payload: dict[str, Any], ingested_at: datetime) -> list[LifecycleEvent]:
        call = as_str(payload.get("type"))
        if call is None:
            raise ParseError("missing_field", "segment call has no 'type'")
        kind = _KINDS.get(call)
        if kind is None:
            raise ParseError("unsupported_type", f"segment call type {call!r} is not a spec call")
        message_id = str(require(payload, "messageId", f"segment {call} call"))
        occurred_at = first_time(payload, _TIME_FIELDS)
        if occurred_at is None:
            raise ParseError("missing_field", f"segment {call} {message_id} has no timestamp")
        occurred_at, corrected = _corrected_time(payload, occurred_at, ingested_at)

        user = ident("segment.user", payload.get("userId"))
        anonymous = ident("segment.anonymous", payload.get("anonymousId"))
        group = ident("segment.group", self._group_id(payload))
        traits = _dict(payload.get("traits")) or _dict(dig(payload, "context.traits"))
        email = traits.get("email") if call != "group" else dig(payload, "context.traits.email")
        who = person(user or anonymous, email, traits.get("name") if call != "group" else None)
        domain = domain_id(email=email)
        links = []
        attrs: dict[str, Any]

        if call == "track":
            attrs = {"event": require(payload, "event", f"segment track {message_id}"),
                     "properties": _dict(payload.get("properties"))}
        elif call in ("page", "screen"):
            attrs = {"name": as_str(payload.get("name")), "category": as_str(payload.get("category")),
                     "properties": _dict(payload.get("properties")), "call": call}
        elif call == "identify":
            attrs = {"traits": traits}
            links.append(link(user, anonymous, "segment identify userId+anonymousId"))
        elif call == "group":
            require(payload, "groupId", f"segment group {message_id}")
            group_traits = _dict(payload.get("traits"))
            attrs = {"traits": group_traits, "group_name": as_str(group_traits.get("name"))}
            links.append(link(user or anonymous, group, "segment group call userId→groupId"))
            links.extend(crm_links(group, group_traits, "segment group traits"))
            who = person(user or anonymous, email)
            domain = (domain_id(website=group_traits.get("website") or group_traits.get("domain"))
                      or domain_id(email=group_traits.get("email")))
        else:  # alias: its only effect is the identity link
            previous = as_str(require(payload, "previousId", f"segment alias {message_id}"))
            if user is None:
                raise ParseError("missing_field", f"segment alias {message_id} has no 'userId'")
            namespace = "segment.anonymous" if previous == as_str(payload.get("anonymousId")) else "segment.user"
            attrs = {"traits": {}, "alias": True, "previous_id": previous}
            links.append(link(user, ident(namespace, previous), "segment alias previousId"))

        if corrected:
            attrs["time_corrected"] = True
        return [self.event(kind, message_id, occurred_at, ingested_at, [group, domain, user, anonymous],
                           links=links, person=who, attributes=attrs)]


def _corrected_time(payload: dict[str, Any], occurred_at: datetime, ingested_at: datetime) -> tuple[datetime, bool]:
    """Segment's policy for client clocks: a call can only have happened before it was received,
    so a time after ``receivedAt`` (else our ingestion time) is a device clock running ahead.
    Segment's own correction applies, ``receivedAt - (sentAt - timestamp)``, capped at the
    receive time; without ``sentAt`` the receive time is the best estimate."""
    received = first_time(payload, ("receivedAt",)) or ingested_at
    if occurred_at <= received:
        return occurred_at, False
    sent = first_time(payload, ("sentAt",))
    fixed = received - (sent - occurred_at) if sent is not None else received
    return min(fixed, received), True


PARSER = SegmentParser()


# --- polling: a Segment-spec NDJSON export (Segment has no pull API)---------------------------------------------------------------------------------

@dataclass
class SegmentExport(NoRecovery):
    export_path: str = "/v1/export"
    page_size: int = 1000
    vendor: str = "segment"
    stream: str = "export"

    def request(self, cursor: Cursor) -> PollRequest:
        params = {"limit": str(self.page_size)}
        if cursor.get("cursor"):
            params["cursor"] = cursor["cursor"]
        return PollRequest(self.export_path, params)

    def page(self, response: PollResponse, cursor: Cursor) -> Page:
        next_cursor = response.headers.get("X-Next-Cursor")
        if next_cursor is None:
            raise ParseError("missing_field", "segment export response without an X-Next-Cursor header")
        lines = [line for line in response.body.split(b"\n") if line.strip()]  # each decoded by the sink
        more = response.headers.get("X-Has-More", "false").strip().lower() == "true"
        return Page(lines, {"cursor": next_cursor}, more)


def _poll(options: Mapping[str, Any], page_size: int) -> list[CursorStrategy]:
    """Options: ``export_path``."""
    return [SegmentExport(export_path=options.get("export_path", "/v1/export"), page_size=page_size)]


SIGNATURE = HmacScheme("segment", "X-Signature", lambda r, ts: r.body, digest="sha1", timestamped=False,
                       doc="hex HMAC-SHA1 of the body with the destination's shared secret (no timestamp)")
SEGMENT = Vendor(
    name="segment", source=SourceKind.PRODUCT, parser=PARSER, signature=SIGNATURE,
    poll=_poll, namespaces={"segment.group": "account", "segment.user": "person", "segment.anonymous": "anonymous"},
)
