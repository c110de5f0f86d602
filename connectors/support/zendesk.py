"""Zendesk ticket activity → canonical support events, plus everything else Zendesk.

Four native shapes, each recognised by what only it has:

1. The incremental ticket-event export (``GET /api/v2/incremental/ticket_events``):
   one audit per item, ``{id, ticket_id, timestamp, created_at, updater_id, via,
   event_type: "Audit", child_events: [...]}``. Child events are flat: a
   ``Create`` child sets one field (``{"status": "new", "event_type": "Create"}``),
   a ``Change`` child carries the new value and ``previous_value``.
2. A Ticket Audits API item (``GET /api/v2/tickets/{id}/audits`` or ``/api/v2/ticket_audits``; a page
   ``{"audits": [...]}`` splits into its items): ``{id, ticket_id,
   created_at, author_id, via, events: [{type: "Create", field_name, value}, …]}``.
3. A native event webhook: ``{type: "zen:event-type:ticket.<what>", id, time,
   zendesk_event_version, subject: "zen:ticket:<id>", detail: <ticket>, event: <the change>}``.
4. A trigger webhook whose JSON body an admin builds from placeholders::

       {"event": "ticket.created" | "ticket.updated" | "ticket.solved" | "ticket.satisfaction_rated",
        "ticket": {"id", "subject", "status", "priority", "via", "created_at", "updated_at",
                   "organization_id", "organization": {"id", "name", "external_id"},
                   "requester": {"id", "name", "email"},
                   "satisfaction_rating": {"score", "comment"}}}

   Triggers have no event id, so the id hashes (ticket, event, updated_at).

Audits after a ticket's creation name only the ticket, so events carry
``zendesk.ticket:<id>`` and the creating audit (and every webhook) links the
ticket to its organization.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.base import Ignored, ParseError
from connectors.cursors import Cursor, CursorStrategy, NoRecovery, Page, PollRequest, PollResponse, list_of, past_watermark
from connectors.parsing import (
    VendorParser,
    as_number,
    as_str,
    content_id,
    crm_identifier,
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

_CHILD_META = {"id", "via", "via_reference_id", "event_type", "type", "previous_value", "field_name", "value",
               "comment_present", "comment_public", "audit_id", "created_at"}
_WEBHOOK_KINDS = {
    "ticket.created": "support.ticket_created",
    "ticket.updated": "support.ticket_updated",
    "ticket.solved": "support.ticket_solved",
    "ticket.satisfaction_rated": "support.satisfaction_rated",
}
_RATINGS = {"good", "bad"}
_NATIVE_PREFIX = "zen:event-type:"


def _is_native(payload: dict[str, Any]) -> bool:
    return str(payload.get("type") or "").startswith(_NATIVE_PREFIX)


def _children(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """An audit's child events: ``child_events`` (incremental export) or ``events`` (Ticket Audits API)."""
    children = payload.get("child_events", payload.get("events"))
    return [c for c in children if isinstance(c, dict)] if isinstance(children, list) else []


def _via(value: Any) -> str | None:
    return as_str(value.get("channel")) if isinstance(value, dict) else as_str(value)


def _fields(child: dict[str, Any]) -> dict[str, Any]:
    """The ticket field(s) one child event sets: flat export style, or audit style ``field_name``/``value``."""
    if "field_name" in child:
        return {str(child["field_name"]): child.get("value")}
    return {k: v for k, v in child.items() if k not in _CHILD_META}


def _score(value: Any, ticket_id: Any) -> str:
    score = (as_str(value) or "").lower()
    if score not in _RATINGS:
        raise ParseError("unsupported_type", f"zendesk ticket {ticket_id}: satisfaction {value!r} is not a rating")
    return score


class ZendeskParser(VendorParser):
    vendor = "zendesk"
    source = SourceKind.SUPPORT
    # An incremental export page holds ``ticket_events``; a Ticket Audits API page (account-wide or one
    # ticket's) holds ``audits``: either splits into one audit per raw record.
    containers = ("ticket_events", "audits")

    def native_id(self, payload: dict[str, Any]) -> str | None:
        if _is_native(payload):
            return as_str(payload.get("id"))
        if isinstance(payload.get("ticket"), dict):
            ticket_id = as_str(dig(payload, "ticket.id"))
            if ticket_id is None:
                return None
            return content_id([ticket_id, payload.get("event"), dig(payload, "ticket.updated_at")])
        return as_str(payload.get("id"))

    def key(self, payload: dict[str, Any]) -> str:
        ticket = payload.get("detail") if _is_native(payload) else payload.get("ticket")
        if isinstance(ticket, dict):
            org = ticket.get("organization_id") or dig(ticket, "organization.id")
            return ident("zendesk.organization", org) or ident("zendesk.ticket", ticket.get("id")) or self.event_id(payload)
        for child in _children(payload):
            if isinstance(child, dict) and _fields(child).get("organization_id"):
                return f"zendesk.organization:{as_str(_fields(child)['organization_id'])}"
        return ident("zendesk.ticket", payload.get("ticket_id")) or f"zendesk.event:{self.event_id(payload)}"

    def parse_object(self, payload: dict[str, Any], ingested_at: datetime) -> list[LifecycleEvent]:
        if _is_native(payload):
            return self._native(payload, ingested_at)
        if "ticket" in payload:
            return self._webhook(payload, ingested_at)
        if "ticket_id" in payload and isinstance(payload.get("child_events", payload.get("events")), list):
            return self._audit(payload, ingested_at)
        raise ParseError("unsupported_type", "zendesk payload is none of: event webhook (zen:event-type:…), "
                                             "trigger webhook body, ticket audit, incremental ticket event")

    # ---- native event webhook ------------------------------------------------------------
    def _native(self, payload: dict[str, Any], ingested_at: datetime) -> list[LifecycleEvent]:
        event_type = str(payload["type"])
        what = event_type.removeprefix(_NATIVE_PREFIX)
        event_id = as_str(require(payload, "id", f"zendesk {event_type}"))
        ticket = payload.get("detail")
        if not isinstance(ticket, dict):
            raise ParseError("missing_field", f"zendesk {event_type} {event_id} has no 'detail' ticket")
        change = payload.get("event") if isinstance(payload.get("event"), dict) else {}
        current = (as_str(change.get("current")) or "").lower() or None
        previous = (as_str(change.get("previous")) or "").lower() or None
        fields = {k: v.lower() if k in ("status", "priority") and isinstance(v, str) else v
                  for k, v in ticket.items()}
        if what == "ticket.created":
            kind = "support.ticket_created"
        elif what == "ticket.status_changed" and current == "solved":
            kind = "support.ticket_solved"
        elif what in ("ticket.status_changed", "ticket.priority_changed", "ticket.comment_added"):
            kind = "support.ticket_updated"
            if what == "ticket.status_changed":
                fields.update(status=current, previous_status=previous)
        else:
            raise Ignored(event_type, f"ticket {ticket.get('id')} ({event_id})")
        ticket_id = require(ticket, "id", f"zendesk {event_type} {event_id} detail")
        occurred_at = first_time(payload, ("time",)) or first_time(ticket, ("updated_at",))
        if occurred_at is None:
            raise ParseError("missing_field", f"zendesk {event_type} {event_id} has no 'time'")
        org = ident("zendesk.organization", ticket.get("organization_id"))
        tid = ident("zendesk.ticket", ticket_id)
        requester = ident("zendesk.user", ticket.get("requester_id"))
        attrs = self._attrs(kind, ticket_id, {**fields, "via": _via(ticket.get("via"))})
        if what == "ticket.priority_changed":
            attrs["previous_priority"] = previous
        if what == "ticket.comment_added":
            attrs["changes"] = ["comment_added"]
        return [self.event(kind, event_id, occurred_at, ingested_at, [org, tid, requester],
                           links=[link(tid, org, "zendesk ticket organization_id")], attributes=attrs)]

    # ---- trigger webhook ----------------------------------------------------------------
    def _webhook(self, payload: dict[str, Any], ingested_at: datetime) -> list[LifecycleEvent]:
        ticket = payload["ticket"]
        if not isinstance(ticket, dict):
            raise ParseError("not_an_object", "zendesk webhook 'ticket' must be an object")
        ticket_id = require(ticket, "id", "zendesk webhook ticket")
        event = as_str(payload.get("event"))
        kind = _WEBHOOK_KINDS.get(event or "")
        if kind is None:
            raise Ignored(str(event), f"trigger webhook for ticket {ticket_id}")
        fields = ("created_at", "updated_at") if kind == "support.ticket_created" else ("updated_at",)
        occurred_at = first_time(ticket, fields)
        if occurred_at is None:
            raise ParseError("missing_field", f"zendesk webhook ticket {ticket_id} has no 'updated_at'")

        org_id = ticket.get("organization_id") or dig(ticket, "organization.id")
        org = ident("zendesk.organization", org_id)
        tid = ident("zendesk.ticket", ticket_id)
        requester = ident("zendesk.user", dig(ticket, "requester.id") or ticket.get("requester_id"))
        email = dig(ticket, "requester.email")
        links = [link(tid, org, "zendesk ticket organization_id"),
                 link(org, crm_identifier(dig(ticket, "organization.external_id")),
                      "zendesk organization external_id")]
        attrs = self._attrs(kind, ticket_id, {
            "status": ticket.get("status"), "previous_status": ticket.get("previous_status"),
            "priority": ticket.get("priority"), "subject": ticket.get("subject"), "via": _via(ticket.get("via")),
            "score": dig(ticket, "satisfaction_rating.score"), "comment": dig(ticket, "satisfaction_rating.comment"),
        })
        return [self.event(kind, self.event_id(payload), occurred_at, ingested_at,
                           [org, domain_id(email=email), tid, requester], links=links,
                           person=person(requester, email, dig(ticket, "requester.name"), "requester"),
                           attributes=attrs)]

    @staticmethod
    def _attrs(kind: str, ticket_id: Any, f: dict[str, Any]) -> dict[str, Any]:
        """The documented attributes of ``kind`` from a flat dict of ticket fields."""
        attrs: dict[str, Any] = {"ticket_id": as_str(ticket_id)}
        if kind == "support.ticket_created":
            attrs.update(status=as_str(f.get("status")), priority=as_str(f.get("priority")),
                         subject=as_str(f.get("subject")), via=f.get("via"))
        elif kind == "support.ticket_updated":
            attrs.update(status=as_str(f.get("status")), previous_status=as_str(f.get("previous_status")),
                         priority=as_str(f.get("priority")))
        elif kind == "support.ticket_solved":
            attrs.update(priority=as_str(f.get("priority")))
        else:
            attrs.update(score=_score(f.get("score"), ticket_id), comment=as_str(f.get("comment")))
        return attrs

    # ---- incremental export audit ------------------------------------------------------
    def _audit(self, payload: dict[str, Any], ingested_at: datetime) -> list[LifecycleEvent]:
        audit_id = as_str(require(payload, "id", "zendesk ticket event"))
        ticket_id = require(payload, "ticket_id", f"zendesk ticket event {audit_id}")
        if payload.get("event_type") not in (None, "Audit"):
            raise Ignored(str(payload.get("event_type")), f"zendesk ticket event {audit_id}")
        occurred_at = first_time(payload, ("created_at", "timestamp"))
        if occurred_at is None:
            raise ParseError("missing_field", f"zendesk ticket event {audit_id} has no 'created_at'/'timestamp'")
        children = _children(payload)

        created: dict[str, Any] = {}
        changed: dict[str, Any] = {}
        previous: dict[str, Any] = {}
        rating: dict[str, Any] = {}
        types: set[str] = set()
        for child in children:
            if not isinstance(child, dict):
                continue
            kind = as_str(child.get("event_type") or child.get("type")) or "Unknown"
            types.add(kind)
            if kind == "Create":
                created.update(_fields(child))
            elif kind == "Change":
                for name, value in _fields(child).items():
                    changed[name] = value
                    previous[name] = child.get("previous_value")
            elif kind == "SatisfactionRating":
                rating = {"score": child.get("score"), "comment": child.get("body") or child.get("comment")}
        if changed.get("satisfaction_score") is not None and not rating:
            rating = {"score": changed["satisfaction_score"], "comment": changed.get("satisfaction_comment")}

        fields = {**created, **changed}
        org = ident("zendesk.organization", fields.get("organization_id"))
        tid = ident("zendesk.ticket", ticket_id)
        ids = [org, tid, ident("zendesk.user", fields.get("requester_id"))]
        links = [link(tid, org, "zendesk ticket organization_id")]

        planned: list[tuple[str, str, dict[str, Any]]] = []  # kind, id suffix, ticket fields
        if created:
            planned.append(("support.ticket_created", "created", {**created, "via": _via(payload.get("via"))}))
        elif as_str(changed.get("status")) == "solved":
            planned.append(("support.ticket_solved", "solved", fields))
        elif "status" in changed or "priority" in changed:
            planned.append(("support.ticket_updated", "updated", {**fields, "previous_status": previous.get("status")}))
        if (as_str(rating.get("score")) or "").lower() in _RATINGS:
            planned.append(("support.satisfaction_rated", "satisfaction", rating))
        events = []
        for kind, suffix, ticket_fields in planned or [("support.ticket_updated", "updated", {})]:
            attrs = self._attrs(kind, ticket_id, ticket_fields)
            if not planned:
                # Comments, tag edits, notifications: still activity on the ticket, kept as an update.
                attrs["changes"] = sorted(types)
            if kind == "support.ticket_updated" and "priority" in changed:
                attrs["previous_priority"] = as_str(previous.get("priority"))
            attrs["updater_id"] = as_number(payload.get("updater_id"))
            events.append(self.event(kind, audit_id, occurred_at, ingested_at, ids, links=links, attributes=attrs,
                                     suffix=suffix))
        return events


PARSER = ZendeskParser()


# --- polling: incremental ticket events---------------------------------------------------------------------------------

@dataclass
class ZendeskTicketEvents(NoRecovery):
    start_time: int = 0
    vendor: str = "zendesk"
    stream: str = "ticket_events"

    def request(self, cursor: Cursor) -> PollRequest:
        return PollRequest("/api/v2/incremental/ticket_events.json",
                           {"start_time": str(cursor.get("since", self.start_time))})

    def page(self, response: PollResponse, cursor: Cursor) -> Page:
        body = response.json()
        events = list_of(body, "ticket_events", "zendesk incremental export")
        end_time = body.get("end_time")
        if not isinstance(end_time, int):
            raise ParseError("missing_field", "zendesk incremental export without an integer 'end_time'")
        fresh, moved = past_watermark(events, {"since": cursor.get("since", self.start_time), **cursor},
                                      lambda e: int(e.get("timestamp") or 0), lambda e: str(e.get("id")),
                                      new_since=end_time)
        return Page(fresh, moved, not body.get("end_of_stream", False))


def _poll(options: Mapping[str, Any], page_size: int) -> list[CursorStrategy]:
    """Options: ``start_time`` (unix seconds)."""
    return [ZendeskTicketEvents(start_time=int(options.get("start_time", 0)))]


# --- enrichment: webhooks that name a ticket without describing it ----------------------------
_TICKET_FACTS = ("status", "updated_at", "organization_id")


class ZendeskEnrichment:
    """An id-only trigger body (``{"event", "ticket": {"id"}}``) or an event webhook whose ``detail``
    lacks the organization → the ticket from ``GET /api/v2/tickets/{id}.json``."""

    def request(self, payload: dict[str, Any]) -> PollRequest | None:
        if _is_native(payload):
            ticket = payload.get("detail")
            complete = not isinstance(ticket, dict) or "organization_id" in ticket
        else:
            ticket = payload.get("ticket")
            complete = not isinstance(ticket, dict) or any(f in ticket for f in _TICKET_FACTS)
        ticket_id = as_str(ticket.get("id")) if isinstance(ticket, dict) else None
        if complete or not ticket_id or not ticket_id.isdigit():
            return None
        return PollRequest(f"/api/v2/tickets/{ticket_id}.json")

    def complete(self, payload: dict[str, Any], body: Any) -> list[dict[str, Any]]:
        fetched = body.get("ticket") if isinstance(body, dict) else None
        if not isinstance(fetched, dict) or not fetched.get("id"):
            raise ParseError("enrichment_failed", "zendesk tickets API answered without a ticket")
        if _is_native(payload):
            return [{**payload, "detail": {**payload["detail"], **fetched}}]
        return [{**payload, "ticket": {**payload["ticket"], **fetched}}]


SIGNATURE = HmacScheme("zendesk", "X-Zendesk-Webhook-Signature", lambda r, ts: (ts or "").encode() + r.body,
                       encoding="base64", timestamp_header="X-Zendesk-Webhook-Signature-Timestamp",
                       timestamp_unit="iso", doc="base64 HMAC-SHA256 of timestamp + body")
ZENDESK = Vendor(
    name="zendesk", source=SourceKind.SUPPORT, parser=PARSER, signature=SIGNATURE,
    poll=_poll, enrichment=ZendeskEnrichment(),
    namespaces={"zendesk.organization": "account", "zendesk.user": "person"},
)
