"""HubSpot: webhooks v3 and CRM v3 objects → canonical CRM events, plus everything else HubSpot.

Both CRMs reach us in two shapes: change notifications (HubSpot webhooks v3,
Salesforce Change Data Capture) that say *what changed*, and object snapshots
(HubSpot CRM v3 objects, Salesforce sObject records) polled from the APIs that
say *what is*. A snapshot's events are keyed by what they describe (the deal's
creation, the stage it reached), not by the poll, so polling the same object
again yields the same event ids and changes nothing downstream.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.base import Ignored, ParseError
from connectors.cursors import (
    Cursor,
    CursorStrategy,
    NoRecovery,
    Page,
    PollRequest,
    PollResponse,
    iso_ms,
    list_of,
    past_watermark,
)
from connectors.parsing import (
    VendorParser,
    activity_type,
    as_bool,
    as_number,
    as_str,
    deal_type,
    dig,
    domain_id,
    first_time,
    full_name,
    ident,
    link,
    parse_time,
    person,
    require,
    segment_name,
    unique,
)
from connectors.signing import HmacScheme
from connectors.vendor import Vendor
from schemas.events import IdentityLink, LifecycleEvent, Person, SourceKind

Mapped = tuple[str, dict[str, Any]]


# =========================================================================================
# HubSpot
# =========================================================================================
_HS_NAMESPACE = {"company": "hubspot.company", "contact": "hubspot.contact", "deal": "hubspot.deal"}
# Generic webhook subscriptions (object.*) name the type by id.
_HS_TYPE_IDS = {"0-1": "contact", "0-2": "company", "0-3": "deal", "0-46": "note", "0-27": "task",
                "0-47": "meeting", "0-48": "call", "0-49": "email"}
# Engagement objects, recognised by the properties only they have, with their title property.
_HS_ACTIVITIES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("meeting", ("hs_meeting_title", "hs_meeting_start_time", "hs_meeting_outcome"), "hs_meeting_title"),
    ("call", ("hs_call_title", "hs_call_body", "hs_call_direction"), "hs_call_title"),
    ("email", ("hs_email_subject", "hs_email_direction"), "hs_email_subject"),
    ("note", ("hs_note_body",), "hs_note_body"),
    ("task", ("hs_task_subject", "hs_task_status"), "hs_task_subject"),
)
_HS_TRACKED = {"company": ("lifecyclestage", "hs_lead_status", "hubspot_owner_id"),
               "contact": ("lifecyclestage", "hs_lead_status", "hubspot_owner_id"),
               "deal": ("dealstage", "hubspot_owner_id")}
_HS_QUALIFICATION = {"marketingqualifiedlead": "mql", "salesqualifiedlead": "sql"}
_HS_ENGAGEMENTS = frozenset(name for name, _, _ in _HS_ACTIVITIES)
# Actions with no lifecycle meaning: counted as ignored, never dead-lettered.
_HS_IGNORED_ACTIONS = frozenset({"deletion", "privacyDeletion", "merge", "restore"})


def _subscription(payload: dict[str, Any]) -> str | None:
    """``contact.creation`` …: webhooks v3 name it ``subscriptionType``; a documented variant, ``eventType``."""
    return as_str(payload.get("subscriptionType")) or as_str(payload.get("eventType"))


def _hs_object_type(props: dict[str, Any]) -> str | None:
    """CRM v3 objects do not name their type; their default properties do."""
    if "dealname" in props or "dealstage" in props:
        return "deal"
    for name, markers, _ in _HS_ACTIVITIES:
        if any(m in props for m in markers):
            return name
    if "hs_activity_type" in props:
        return "meeting"
    if any(p in props for p in ("email", "firstname", "lastname")):
        return "contact"
    if "domain" in props or "name" in props:
        return "company"
    return None


def _hs_deal_attrs(deal_id: Any, props: dict[str, Any]) -> dict[str, Any]:
    raw_stage = as_str(props.get("dealstage"))
    return {
        "deal_id": as_str(deal_id),
        "deal_name": as_str(props.get("dealname")),
        "amount": as_number(props.get("amount")),
        "currency": as_str(props.get("deal_currency_code")),
        "stage": raw_stage,          # HubSpot stage ids verbatim (custom pipelines use GUIDs)
        "raw_stage": raw_stage,
        "pipeline": as_str(props.get("pipeline")),
        "deal_type": deal_type(props.get("deal_type") or props.get("dealtype")),
        "segment": segment_name(props.get("segment")),
        "owner_id": as_str(props.get("hubspot_owner_id")),
        "promised_time_to_value": as_str(props.get("promised_time_to_value")),
        "close_date": as_str(props.get("closedate")),
    }


def _hs_deal_stage(deal_id: Any, stage: Any, props: dict[str, Any]) -> Mapped:
    attrs = _hs_deal_attrs(deal_id, {**props, "dealstage": stage})
    # The default pipeline's ids say it; other pipelines' ids are mapped by the journey (deal_stages).
    won = attrs["stage"] == "closedwon" or (stage == props.get("dealstage") and as_bool(props.get("hs_is_closed_won")))
    lost = attrs["stage"] == "closedlost" or (stage == props.get("dealstage") and not won
                                              and as_bool(props.get("hs_is_closed")))
    if won:
        return "crm.deal_won", {k: attrs[k] for k in ("deal_id", "amount", "currency", "close_date", "deal_type",
                                                      "segment", "owner_id", "promised_time_to_value", "stage",
                                                      "raw_stage", "deal_name", "pipeline")}
    if lost:
        return "crm.deal_lost", {"deal_id": attrs["deal_id"], "reason": as_str(props.get("closed_lost_reason")),
                                 "owner_id": attrs["owner_id"], "stage": attrs["stage"], "raw_stage": attrs["raw_stage"],
                                 "pipeline": attrs["pipeline"]}
    return "crm.deal_stage_changed", {k: attrs[k] for k in ("deal_id", "stage", "raw_stage", "amount", "owner_id",
                                                            "pipeline")}


def _hs_property_change(obj_type: str, obj_id: Any, prop: str, value: Any, previous: Any = None,
                        props: dict[str, Any] | None = None) -> Mapped | None:
    """One property's new value → (kind, attributes); ``None`` when the property has no lifecycle meaning."""
    text = as_str(value)
    if prop == "lifecyclestage" and obj_type in ("company", "contact"):
        stage = (text or "").lower()
        if stage in _HS_QUALIFICATION:
            return "crm.lead_qualified", {"qualification": _HS_QUALIFICATION[stage], "raw_value": text,
                                          "property": prop, "object": obj_type}
        return "crm.lifecycle_stage_changed", {"lifecycle_stage": stage or None, "raw_value": text, "object": obj_type}
    if prop == "hs_lead_status" and obj_type in ("company", "contact"):
        return "crm.lead_status_changed", {"status": text, "owner_id": as_str((props or {}).get("hubspot_owner_id")),
                                           "object": obj_type}
    if prop == "hubspot_owner_id":
        return "crm.owner_changed", {"object": obj_type, "owner_id": text, "previous_owner_id": as_str(previous)}
    if prop == "dealstage" and obj_type == "deal":
        return _hs_deal_stage(obj_id, value, props or {})
    if obj_type == "company":
        attrs: dict[str, Any] = {"changed": [prop]}
        if prop == "name":
            attrs["name"] = text
        if prop in ("domain", "website"):
            attrs["domain"] = (domain_id(website=text) or "").removeprefix("domain:") or None
        if prop == "segment":
            attrs["segment"] = segment_name(text)
        return "crm.company_updated", attrs
    return None


def _hs_associated(payload: dict[str, Any], plural: str) -> list[str]:
    """Associated ids; HubSpot lists an object once per association label, so dedupe."""
    results = dig(payload, f"associations.{plural}.results") or []
    return unique(as_str(r.get("id")) for r in results if isinstance(r, dict))


class HubSpotParser(VendorParser):
    """HubSpot webhook notifications (JSON arrays of them) and CRM v3 objects (``{"results": [...]}`` pages)."""

    vendor = "hubspot"
    source = SourceKind.CRM
    containers = ("results",)

    @staticmethod
    def _is_snapshot(payload: dict[str, Any]) -> bool:
        return isinstance(payload.get("properties"), dict) and _subscription(payload) is None

    def native_id(self, payload: dict[str, Any]) -> str | None:
        if self._is_snapshot(payload):
            obj_id = as_str(payload.get("id"))
            obj_type = _hs_object_type(payload["properties"]) or "object"
            version = as_str(payload.get("updatedAt") or payload.get("createdAt"))
            return f"{obj_type}-{obj_id}-{version}" if obj_id and version else None
        return as_str(payload.get("eventId"))

    def key(self, payload: dict[str, Any]) -> str:
        if self._is_snapshot(payload):
            obj_type = _hs_object_type(payload["properties"])
            companies = [payload.get("id")] if obj_type == "company" else _hs_associated(payload, "companies")
            companies = companies or [payload["properties"].get("associatedcompanyid")]
            return (ident("hubspot.company", companies[0])
                    or ident(_HS_NAMESPACE.get(obj_type or "", f"hubspot.{obj_type}"), payload.get("id"))
                    or f"hubspot.object:{self.event_id(payload)}")
        association = str(payload.get("associationType") or "").upper()
        if "COMPANY" in association:
            side = "fromObjectId" if association.startswith("COMPANY") else "toObjectId"
            return ident("hubspot.company", payload.get(side)) or self.event_id(payload)
        obj_type = (_subscription(payload) or "").partition(".")[0]
        if obj_type == "object":
            obj_type = _HS_TYPE_IDS.get(str(payload.get("objectTypeId")), "object")
        return (ident(_HS_NAMESPACE.get(obj_type, f"hubspot.{obj_type}"), payload.get("objectId"))
                or f"hubspot.event:{self.event_id(payload)}")

    def parse_object(self, payload: dict[str, Any], ingested_at: datetime) -> list[LifecycleEvent]:
        if self._is_snapshot(payload):
            return self._snapshot(payload, ingested_at)
        if _subscription(payload) is not None or "eventId" in payload:
            return self._notification(payload, ingested_at)
        raise ParseError("unsupported_type", "hubspot payload is neither a webhook notification nor a CRM object")

    # ---- webhooks v3 -------------------------------------------------------------------
    def _notification(self, p: dict[str, Any], ingested_at: datetime) -> list[LifecycleEvent]:
        event_id = as_str(require(p, "eventId", "hubspot notification"))
        subscription = _subscription(p)
        if subscription is None:
            raise ParseError("missing_field", f"hubspot notification {event_id} has no 'subscriptionType'/'eventType'")
        occurred_at = parse_time(require(p, "occurredAt", f"hubspot notification {event_id}"), "occurredAt", "ms")
        obj_type, _, action = subscription.partition(".")
        if obj_type == "object":
            obj_type = _HS_TYPE_IDS.get(str(p.get("objectTypeId")), str(p.get("objectTypeId")))
        if action in _HS_IGNORED_ACTIONS:
            raise Ignored(subscription, f"{obj_type} {p.get('objectId')} ({event_id})")
        if obj_type in _HS_ENGAGEMENTS and action == "creation":
            # "A meeting was created" says nothing of what it is for: only the object does.
            raise ParseError("enrichment_failed", f"hubspot {obj_type} {p.get('objectId')} creation ({event_id}) "
                                                  "needs the object from the CRM API and was not enriched")
        if obj_type not in _HS_NAMESPACE or action not in ("creation", "propertyChange", "associationChange"):
            if "." in subscription and action:
                raise Ignored(subscription, f"object type {obj_type} ({event_id})")
            raise ParseError("unsupported_type", f"hubspot subscriptionType {subscription!r} is not mapped ({event_id})")
        if action == "associationChange":
            return self._association(p, event_id, subscription, occurred_at, ingested_at)

        obj_id = require(p, "objectId", f"hubspot {subscription} {event_id}")
        oid = ident(_HS_NAMESPACE[obj_type], obj_id)
        ids: list[str | None] = [oid]
        who = person(oid) if obj_type == "contact" else None
        if action == "creation":
            kind, attrs = {
                "company": ("crm.company_updated", {"changed": [], "created": True}),
                "contact": ("crm.contact_created", {"lifecycle_stage": None, "owner_id": None}),
                "deal": ("crm.opportunity_created", {"deal_id": as_str(obj_id)}),
            }[obj_type]
        else:
            prop = str(require(p, "propertyName", f"hubspot {subscription} {event_id}"))
            value = p.get("propertyValue")
            mapped = _hs_property_change(obj_type, obj_id, prop, value)
            if mapped is None:
                raise Ignored(subscription, f"property {prop!r} has no lifecycle meaning ({event_id})")
            kind, attrs = mapped
            if prop in ("domain", "website"):
                ids.append(domain_id(website=value))
        attrs["change_source"] = as_str(p.get("changeSource"))
        return [self.event(kind, event_id, occurred_at, ingested_at, ids, person=who, attributes=attrs)]

    def _association(self, p: dict[str, Any], event_id: str, subscription: str, occurred_at: datetime,
                     ingested_at: datetime) -> list[LifecycleEvent]:
        association = str(require(p, "associationType", f"hubspot {subscription} {event_id}")).upper()
        match = re.match(r"^([A-Z]+)_TO_([A-Z]+)", association)
        sides = (match.group(1).lower(), match.group(2).lower()) if match else ("", "")
        if "company" not in sides or not all(s in _HS_NAMESPACE for s in sides):
            raise Ignored(subscription, f"association {association!r} does not involve a company")
        a = ident(_HS_NAMESPACE[sides[0]], require(p, "fromObjectId", f"hubspot {subscription} {event_id}"))
        b = ident(_HS_NAMESPACE[sides[1]], require(p, "toObjectId", f"hubspot {subscription} {event_id}"))
        removed = bool(as_bool(p.get("associationRemoved")))
        company, other = (a, b) if sides[0] == "company" else (b, a)
        attrs = {"changed": ["associations"], "association_type": association, "association_removed": removed,
                 "primary": as_bool(p.get("isPrimaryAssociation")), "change_source": as_str(p.get("changeSource"))}
        links = [] if removed else [link(a, b, f"hubspot {subscription} {association}")]
        return [self.event("crm.company_updated", event_id, occurred_at, ingested_at, [company, other],
                           links=links, attributes=attrs)]

    # ---- CRM v3 objects ----------------------------------------------------------------
    def _snapshot(self, p: dict[str, Any], ingested_at: datetime) -> list[LifecycleEvent]:
        props: dict[str, Any] = p["properties"]
        obj_id = as_str(require(p, "id", "hubspot object"))
        obj_type = _hs_object_type(props)
        if obj_type is None:
            raise ParseError("unsupported_type", f"hubspot object {obj_id}: cannot tell its type from its properties")
        created = parse_time(p.get("createdAt") or props.get("createdate") or props.get("hs_createdate"),
                             "createdAt")
        updated = first_time(p, ("updatedAt",)) or created
        base = f"{obj_type}-{obj_id}"
        companies = [ident("hubspot.company", c) for c in _hs_associated(p, "companies")]
        deals = [ident("hubspot.deal", d) for d in _hs_associated(p, "deals")]
        contacts = [ident("hubspot.contact", c) for c in _hs_associated(p, "contacts")]

        if obj_type not in _HS_NAMESPACE:
            return [self._activity(p, obj_type, obj_id, created, ingested_at, companies + deals + contacts)]

        oid = ident(_HS_NAMESPACE[obj_type], obj_id)
        links: list[IdentityLink | None] = []
        who: Person | None = None
        if obj_type == "company":
            ids = [oid, domain_id(website=props.get("domain") or props.get("website"))]
        elif obj_type == "contact":
            companies = companies or [ident("hubspot.company", props.get("associatedcompanyid"))]
            ids = [*companies, domain_id(email=props.get("email")), oid]
            links = [link(oid, c, "hubspot contact association contact_to_company") for c in companies]
            who = person(oid, props.get("email"), full_name(props.get("firstname"), props.get("lastname")),
                         as_str(props.get("hs_buying_role")))
        else:
            ids = [*companies, oid, *contacts]
            links = [link(oid, c, "hubspot deal association deal_to_company") for c in companies]

        planned: list[tuple[str, dict[str, Any], datetime, str, str]] = []  # kind, attrs, time, vendor id, suffix
        if obj_type == "company":
            attrs = {"name": as_str(props.get("name")), "domain": (ids[1] or "").removeprefix("domain:") or None,
                     "segment": segment_name(props.get("segment")), "owner_id": as_str(props.get("hubspot_owner_id")),
                     "changed": sorted(props)}
            planned.append(("crm.company_updated", attrs, updated, self.event_id(p), ""))
        elif obj_type == "contact":
            attrs = {"lifecycle_stage": as_str(props.get("lifecyclestage")),
                     "owner_id": as_str(props.get("hubspot_owner_id"))}
            planned.append(("crm.contact_created", attrs, created, base, "created"))
        else:
            attrs = {k: v for k, v in _hs_deal_attrs(obj_id, props).items() if k not in ("raw_stage", "close_date")}
            # A snapshot shows today's stage; the one the deal was created in is known
            # from its history, or when it has not changed since creation.
            history = [e for e in dig(p, "propertiesWithHistory.dealstage") or [] if isinstance(e, dict)]
            if history:
                first = min(history, key=lambda e: parse_time(e.get("timestamp"), "dealstage.timestamp", "ms"))
                attrs["stage"] = as_str(first.get("value"))
            elif updated > created:
                attrs["stage"] = None
            planned.append(("crm.opportunity_created", attrs, created, base, "created"))
        planned += self._property_events(p, obj_type, obj_id, props, created, updated, base)
        return [self.event(kind, vid, when, ingested_at, ids, links=links, person=who, attributes=attrs,
                           suffix=suffix) for kind, attrs, when, vid, suffix in planned]

    def _property_events(self, p: dict[str, Any], obj_type: str, obj_id: str, props: dict[str, Any],
                         created: datetime, updated: datetime, base: str
                         ) -> list[tuple[str, dict[str, Any], datetime, str, str]]:
        """Tracked property changes: one per ``propertiesWithHistory`` entry, else the current value."""
        out = []
        history = p.get("propertiesWithHistory") if isinstance(p.get("propertiesWithHistory"), dict) else {}
        for prop in _HS_TRACKED[obj_type]:
            entries = [e for e in history.get(prop) or [] if isinstance(e, dict)]
            if entries:
                timed = sorted(((parse_time(e.get("timestamp"), f"propertiesWithHistory.{prop}.timestamp", "ms"),
                                 e.get("value")) for e in entries), key=lambda tv: tv[0])
                previous = None
                for when, value in timed:
                    initial = when <= created and prop in ("dealstage", "hubspot_owner_id")
                    mapped = None if initial else _hs_property_change(obj_type, obj_id, prop, value, previous, props)
                    if mapped:
                        stamp = int(when.timestamp() * 1000)
                        out.append((mapped[0], mapped[1], when, base, f"{prop}:{as_str(value)}@{stamp}"))
                    previous = value
                continue
            value = props.get(prop)
            if value in (None, "") or prop == "hubspot_owner_id":
                continue  # an owner without history is an attribute, not a change we saw
            mapped = _hs_property_change(obj_type, obj_id, prop, value, None, props)
            if mapped is None:
                continue
            when = self._value_time(obj_type, prop, mapped[0], str(value), props)
            if when is None:
                # Only the object's last modification is known: say so rather than pass it off as the entry time.
                when = updated
                mapped[1]["time_estimated"] = True
            if mapped[0] == "crm.deal_stage_changed" and when <= created:
                continue  # the stage the deal was created in: opportunity_created says it
            out.append((mapped[0], mapped[1], when, base, f"{prop}:{as_str(value)}"))
        return out

    @staticmethod
    def _value_time(obj_type: str, prop: str, kind: str, value: str, props: dict[str, Any]) -> datetime | None:
        """When the current value was set, from HubSpot's own date-entered properties, if fetched.

        ``hs_v2_date_entered_<id>`` (current portals), ``hs_date_entered_<id>`` (older
        ones); property names cannot hold a GUID's hyphens, so they appear as underscores.
        """
        ids = dict.fromkeys((value, value.replace("-", "_"))) if prop == "dealstage" else dict.fromkeys((value.lower(),))
        if prop not in ("dealstage", "lifecyclestage"):
            return None
        fields = [f"{p}{i}" for p in ("hs_v2_date_entered_", "hs_date_entered_") for i in ids]
        if prop == "lifecyclestage":
            fields.append(f"hs_lifecyclestage_{value.lower()}_date")
        elif kind in ("crm.deal_won", "crm.deal_lost"):
            fields.append("closedate")
        return first_time(props, fields, "ms")

    def _activity(self, p: dict[str, Any], medium: str, obj_id: str, created: datetime, ingested_at: datetime,
                  ids: list[str | None]) -> LifecycleEvent:
        props = p["properties"]
        title_prop = next(t for name, _, t in _HS_ACTIVITIES if name == medium)
        subject = as_str(props.get(title_prop))
        when = first_time(props, ("hs_timestamp", "hs_meeting_start_time"), "ms") or created
        attrs = {
            "activity_type": activity_type(props.get("hs_activity_type"), subject,
                                           medium=medium if medium != "task" else "note"),
            "subject": subject,
            "owner_id": as_str(props.get("hubspot_owner_id")),
            "medium": medium,
            "outcome": as_str(props.get("hs_meeting_outcome") or props.get("hs_call_disposition")),
        }
        return self.event("crm.activity_logged", f"{medium}-{obj_id}", when, ingested_at, ids, attributes=attrs)


# --- polling: CRM search, by last modification---------------------------------------------------------------------------------

HUBSPOT_OBJECTS: dict[str, tuple[str, list[str]]] = {
    # object type → (its last-modified property, properties to fetch)
    "deals": ("hs_lastmodifieddate", ["dealname", "dealstage", "pipeline", "amount", "closedate", "createdate",
                                      "hubspot_owner_id", "associatedcompanyid", "hs_lastmodifieddate"]),
    "companies": ("hs_lastmodifieddate", ["name", "domain", "website", "lifecyclestage", "hs_lead_status",
                                          "hubspot_owner_id", "createdate", "hs_lastmodifieddate"]),
    "contacts": ("lastmodifieddate", ["email", "firstname", "lastname", "lifecyclestage", "hs_lead_status",
                                      "hubspot_owner_id", "associatedcompanyid", "createdate", "lastmodifieddate"]),
}


@dataclass
class HubSpotObjects(NoRecovery):
    object_type: str
    page_size: int = 100
    start_ms: int = 0
    vendor: str = "hubspot"
    stream: str = ""

    def __post_init__(self) -> None:
        self.stream = self.stream or self.object_type
        self.modified_property, self.properties = HUBSPOT_OBJECTS[self.object_type]

    def request(self, cursor: Cursor) -> PollRequest:
        since = cursor.get("since", self.start_ms)
        body: dict[str, Any] = {
            "filterGroups": [{"filters": [{"propertyName": self.modified_property, "operator": "GTE",
                                           "value": str(since)}]}],
            "sorts": [{"propertyName": self.modified_property, "direction": "ASCENDING"}],
            "properties": self.properties,
            "limit": self.page_size,
        }
        if cursor.get("after"):
            body["after"] = cursor["after"]
        return PollRequest(f"/crm/v3/objects/{self.object_type}/search", method="POST", json=body)

    def page(self, response: PollResponse, cursor: Cursor) -> Page:
        body = response.json()
        results = list_of(body, "results", f"hubspot {self.object_type} search")
        next_after = ((body.get("paging") or {}).get("next") or {}).get("after")
        fresh, moved = past_watermark(results, cursor, lambda o: iso_ms(o.get("updatedAt")), lambda o: str(o.get("id")))
        if next_after and moved.get("since") == cursor.get("since", self.start_ms) and results:
            # a whole page at one timestamp: only the offset can get past it
            moved["after"] = str(next_after)
        return Page(fresh, moved or dict(cursor), bool(next_after))


def _poll(options: Mapping[str, Any], page_size: int) -> list[CursorStrategy]:
    """Options: ``objects`` (default: deals, companies, contacts) and ``start_ms``."""
    return [HubSpotObjects(t, page_size=min(page_size, 200), start_ms=int(options.get("start_ms", 0)))
            for t in options.get("objects", list(HUBSPOT_OBJECTS))]


# --- enrichment: notifications whose meaning is in the object ------------------------------------
# The default pipeline's stage ids say won/lost themselves; any other id needs the deal.
_DEFAULT_STAGES = frozenset({"appointmentscheduled", "qualifiedtobuy", "presentationscheduled",
                             "decisionmakerboughtin", "contractsent", "closedwon", "closedlost"})
_PLURAL = {"meeting": "meetings", "call": "calls", "email": "emails", "note": "notes", "task": "tasks",
           "deal": "deals"}
_ENRICH_PROPERTIES = {
    "meetings": ["hs_meeting_title", "hs_meeting_start_time", "hs_meeting_outcome", "hs_activity_type",
                 "hs_timestamp", "hubspot_owner_id", "hs_createdate"],
    "calls": ["hs_call_title", "hs_call_body", "hs_call_direction", "hs_call_disposition", "hs_activity_type",
              "hs_timestamp", "hubspot_owner_id", "hs_createdate"],
    "emails": ["hs_email_subject", "hs_email_direction", "hs_timestamp", "hubspot_owner_id", "hs_createdate"],
    "notes": ["hs_note_body", "hs_timestamp", "hubspot_owner_id", "hs_createdate"],
    "tasks": ["hs_task_subject", "hs_task_status", "hs_timestamp", "hubspot_owner_id", "hs_createdate"],
    "deals": ["dealname", "dealstage", "pipeline", "amount", "deal_currency_code", "closedate", "createdate",
              "hs_is_closed_won", "hs_is_closed", "hubspot_owner_id", "dealtype", "segment"],
}


class HubSpotEnrichment:
    """Engagement creations (meeting ``0-47`` …) and custom-pipeline stage changes → the CRM v3 object."""

    def request(self, payload: dict[str, Any]) -> PollRequest | None:
        subscription = _subscription(payload)
        if subscription is None or HubSpotParser._is_snapshot(payload):
            return None
        obj_type, _, action = subscription.partition(".")
        if obj_type == "object":
            obj_type = _HS_TYPE_IDS.get(str(payload.get("objectTypeId")), "")
        obj_id = as_str(payload.get("objectId"))
        if not obj_id:
            return None
        if obj_type in _HS_ENGAGEMENTS and action == "creation":
            plural = _PLURAL[obj_type]
            properties = _ENRICH_PROPERTIES[plural]
        elif (obj_type == "deal" and action == "propertyChange" and payload.get("propertyName") == "dealstage"
              and as_str(payload.get("propertyValue")) not in _DEFAULT_STAGES):
            plural = "deals"
            stage = as_str(payload.get("propertyValue")) or ""
            properties = [*_ENRICH_PROPERTIES[plural], f"hs_v2_date_entered_{stage.replace('-', '_')}"]
        else:
            return None
        params = {"properties": ",".join(properties), "associations": "companies,contacts,deals"}
        if plural == "deals":
            params["propertiesWithHistory"] = "dealstage"
        return PollRequest(f"/crm/v3/objects/{plural}/{obj_id}", params)

    def complete(self, payload: dict[str, Any], body: Any) -> list[dict[str, Any]]:
        if not (isinstance(body, dict) and isinstance(body.get("properties"), dict) and body.get("id")):
            raise ParseError("enrichment_failed", "hubspot CRM API answered without an object")
        return [body]


# HubSpot v3: the URI is signed with these percent-escapes decoded (and only these).
_HUBSPOT_DECODE = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$", "%27": "'",
                   "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"}


def hubspot_uri(uri: str) -> str:
    out = uri
    for escaped, char in _HUBSPOT_DECODE.items():
        out = out.replace(escaped, char).replace(escaped.lower(), char)
    return out


PARSER = HubSpotParser()
SIGNATURE = HmacScheme(
    "hubspot", "X-HubSpot-Signature-v3",
    lambda r, ts: (r.method.upper() + hubspot_uri(r.uri)).encode() + r.body + (ts or "").encode(),
    encoding="base64", timestamp_header="X-HubSpot-Request-Timestamp", timestamp_unit="ms",
    doc="base64 HMAC-SHA256 of method + uri + body + timestamp(ms), client secret")
HUBSPOT = Vendor(
    name="hubspot", source=SourceKind.CRM, parser=PARSER, signature=SIGNATURE,
    poll=_poll, enrichment=HubSpotEnrichment(),
    namespaces={"hubspot.company": "account", "hubspot.deal": "deal", "hubspot.contact": "person"},
)
