"""HubSpot and Salesforce payloads → canonical CRM events.

Both CRMs reach us in two shapes: change notifications (HubSpot webhooks v3,
Salesforce Change Data Capture) that say *what changed*, and object snapshots
(HubSpot CRM v3 objects, Salesforce sObject records) polled from the APIs that
say *what is*. A snapshot's events are keyed by what they describe (the deal's
creation, the stage it reached), not by the poll, so polling the same object
again yields the same event ids and changes nothing downstream.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from connectors.base import ParseError, register
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
    ident,
    link,
    normalize_token,
    parse_time,
    person,
    require,
    unique,
)
from schemas.events import IdentityLink, LifecycleEvent, Person, SourceKind

Mapped = tuple[str, dict[str, Any]]


def _segment(value: Any) -> str | None:
    """``"Mid-Market"`` → ``mid_market``: the journey compares segments as identifiers."""
    text = as_str(value)
    return re.sub(r"[\s\-]+", "_", text.strip().lower()) if text else None


def _full_name(first: Any, last: Any) -> str | None:
    return " ".join(p for p in (as_str(first), as_str(last)) if p) or None


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
        "stage": normalize_token(raw_stage),
        "raw_stage": raw_stage,
        "deal_type": deal_type(props.get("deal_type") or props.get("dealtype")),
        "segment": _segment(props.get("segment")),
        "owner_id": as_str(props.get("hubspot_owner_id")),
        "promised_time_to_value": as_str(props.get("promised_time_to_value")),
        "close_date": as_str(props.get("closedate")),
    }


def _hs_deal_stage(deal_id: Any, stage: Any, props: dict[str, Any]) -> Mapped:
    attrs = _hs_deal_attrs(deal_id, {**props, "dealstage": stage})
    won = attrs["stage"] == "closedwon" or (stage == props.get("dealstage") and as_bool(props.get("hs_is_closed_won")))
    lost = attrs["stage"] == "closedlost" or (stage == props.get("dealstage") and not won
                                              and as_bool(props.get("hs_is_closed")))
    if won:
        return "crm.deal_won", {k: attrs[k] for k in ("deal_id", "amount", "currency", "close_date", "deal_type",
                                                      "segment", "owner_id", "promised_time_to_value", "stage",
                                                      "raw_stage", "deal_name")}
    if lost:
        return "crm.deal_lost", {"deal_id": attrs["deal_id"], "reason": as_str(props.get("closed_lost_reason")),
                                 "owner_id": attrs["owner_id"], "stage": attrs["stage"], "raw_stage": attrs["raw_stage"]}
    return "crm.deal_stage_changed", {k: attrs[k] for k in ("deal_id", "stage", "raw_stage", "amount", "owner_id")}


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
            attrs["segment"] = _segment(text)
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
        return isinstance(payload.get("properties"), dict) and "subscriptionType" not in payload

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
        obj_type = str(payload.get("subscriptionType") or "").partition(".")[0]
        if obj_type == "object":
            obj_type = _HS_TYPE_IDS.get(str(payload.get("objectTypeId")), "object")
        return (ident(_HS_NAMESPACE.get(obj_type, f"hubspot.{obj_type}"), payload.get("objectId"))
                or f"hubspot.event:{self.event_id(payload)}")

    def parse_object(self, payload: dict[str, Any], ingested_at: datetime) -> list[LifecycleEvent]:
        if self._is_snapshot(payload):
            return self._snapshot(payload, ingested_at)
        if "subscriptionType" in payload or "eventId" in payload:
            return self._notification(payload, ingested_at)
        raise ParseError("unsupported_type", "hubspot payload is neither a webhook notification nor a CRM object")

    # ---- webhooks v3 -------------------------------------------------------------------
    def _notification(self, p: dict[str, Any], ingested_at: datetime) -> list[LifecycleEvent]:
        event_id = as_str(require(p, "eventId", "hubspot notification"))
        subscription = str(require(p, "subscriptionType", f"hubspot notification {event_id}"))
        occurred_at = parse_time(require(p, "occurredAt", f"hubspot notification {event_id}"), "occurredAt", "ms")
        obj_type, _, action = subscription.partition(".")
        if obj_type == "object":
            obj_type = _HS_TYPE_IDS.get(str(p.get("objectTypeId")), str(p.get("objectTypeId")))
        if obj_type not in _HS_NAMESPACE or action not in ("creation", "propertyChange", "associationChange"):
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
                raise ParseError("unsupported_type",
                                 f"hubspot {subscription} of property {prop!r} is not mapped ({event_id})")
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
            raise ParseError("unsupported_type", f"hubspot association {association!r} does not involve a company")
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
            who = person(oid, props.get("email"), _full_name(props.get("firstname"), props.get("lastname")),
                         as_str(props.get("hs_buying_role")))
        else:
            ids = [*companies, oid, *contacts]
            links = [link(oid, c, "hubspot deal association deal_to_company") for c in companies]

        planned: list[tuple[str, dict[str, Any], datetime, str, str]] = []  # kind, attrs, time, vendor id, suffix
        if obj_type == "company":
            attrs = {"name": as_str(props.get("name")), "domain": (ids[1] or "").removeprefix("domain:") or None,
                     "segment": _segment(props.get("segment")), "owner_id": as_str(props.get("hubspot_owner_id")),
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
                attrs["stage"] = normalize_token(first.get("value"))
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
            when = self._value_time(obj_type, prop, mapped[0], str(value), props) or updated
            if mapped[0] == "crm.deal_stage_changed" and when <= created:
                continue  # the stage the deal was created in: opportunity_created says it
            out.append((mapped[0], mapped[1], when, base, f"{prop}:{as_str(value)}"))
        return out

    @staticmethod
    def _value_time(obj_type: str, prop: str, kind: str, value: str, props: dict[str, Any]) -> datetime | None:
        """When the current value was set, from HubSpot's own date-entered properties, if fetched."""
        if prop == "dealstage":
            fields = (["closedate"] if kind in ("crm.deal_won", "crm.deal_lost") else []) + [f"hs_date_entered_{value}"]
        elif prop == "lifecyclestage":
            fields = [f"hs_lifecyclestage_{value.lower()}_date"]
        else:
            return None
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


# =========================================================================================
# Salesforce
# =========================================================================================
_SF_NAMESPACE = {"Account": "salesforce.account", "Lead": "salesforce.lead", "Contact": "salesforce.contact",
                 "Opportunity": "salesforce.opportunity"}
# Salesforce ids start with their object's key prefix.
_SF_PREFIX = {"001": "salesforce.account", "00Q": "salesforce.lead", "003": "salesforce.contact",
              "006": "salesforce.opportunity"}
# Id tag of a snapshot event that describes this version of the record (a company's
# current facts) rather than one thing that happened to it.
_PER_VERSION = "@version"


def _sf_ref(value: Any) -> str | None:
    """A polymorphic reference (WhatId, WhoId) → its namespaced id, by key prefix."""
    text = as_str(value)
    namespace = _SF_PREFIX.get(text[:3]) if text else None
    return f"{namespace}:{text}" if namespace else None


def _sf_qualification(status: Any) -> str | None:
    text = (as_str(status) or "").upper()
    if "MQL" in text or "MARKETING QUALIFIED" in text:
        return "mql"
    if "SQL" in text or "SALES QUALIFIED" in text:
        return "sql"
    return None


def _sf_name(fields: dict[str, Any]) -> str | None:
    name = fields.get("Name")
    if isinstance(name, dict):  # CDC sends compound names as objects
        return _full_name(name.get("FirstName"), name.get("LastName"))
    return as_str(name) or _full_name(fields.get("FirstName"), fields.get("LastName"))


class _SfRecord:
    """One Salesforce record as either shape presents it: what changed, and when."""

    def __init__(self, entity: str, record_id: str, fields: dict[str, Any], change: str,
                 changed: set[str], when: datetime, created: datetime | None):
        self.entity, self.id, self.fields, self.change = entity, record_id, fields, change
        self.changed, self.when, self.created = changed, when, created

    def touched(self, name: str) -> bool:
        """Was ``name`` set by this change? (Creates and snapshots set every field they carry.)"""
        return name in self.changed if self.change == "update" else self.fields.get(name) is not None


class SalesforceParser(VendorParser):
    """Change Data Capture events (several ``recordIds`` → one event each) and plain sObject records."""

    vendor = "salesforce"
    source = SourceKind.CRM
    containers = ("records",)

    @staticmethod
    def _is_cdc(payload: dict[str, Any]) -> bool:
        return isinstance(dig(payload, "payload.ChangeEventHeader"), dict)

    def native_id(self, payload: dict[str, Any]) -> str | None:
        if self._is_cdc(payload):
            replay = as_str(dig(payload, "event.replayId"))
            if replay:
                return replay
            header = dig(payload, "payload.ChangeEventHeader")
            key, seq = as_str(header.get("transactionKey")), as_str(header.get("sequenceNumber"))
            return f"{key}:{seq}" if key and seq else None
        entity, record_id = as_str(dig(payload, "attributes.type")), as_str(payload.get("Id"))
        version = as_str(payload.get("SystemModstamp") or payload.get("LastModifiedDate") or payload.get("CreatedDate"))
        return f"{entity}-{record_id}-{version}" if entity and record_id and version else None

    def key(self, payload: dict[str, Any]) -> str:
        if self._is_cdc(payload):
            fields = payload["payload"]
            header = fields["ChangeEventHeader"]
            record_ids = header.get("recordIds") or [None]
            entity = as_str(header.get("entityName")) or ""
        else:
            fields = payload
            record_ids = [payload.get("Id")]
            entity = as_str(dig(payload, "attributes.type")) or ""
        account = (fields.get("AccountId") or fields.get("ConvertedAccountId")
                   or (record_ids[0] if entity == "Account" else None))
        return (ident("salesforce.account", account)
                or ident(_SF_NAMESPACE.get(entity, f"salesforce.{entity.lower()}"), record_ids[0])
                or f"salesforce.event:{self.event_id(payload)}")

    def parse_object(self, payload: dict[str, Any], ingested_at: datetime) -> list[LifecycleEvent]:
        if self._is_cdc(payload):
            return self._cdc(payload, ingested_at)
        if isinstance(payload.get("attributes"), dict):
            return self._sobject(payload, ingested_at)
        raise ParseError("unsupported_type", "salesforce payload is neither a CDC event nor an sObject record")

    # ---- the two shapes ------------------------------------------------------------------
    def _cdc(self, payload: dict[str, Any], ingested_at: datetime) -> list[LifecycleEvent]:
        fields = payload["payload"]
        header = fields["ChangeEventHeader"]
        event_id = self.native_id(payload)
        if event_id is None:
            raise ParseError("missing_field", "salesforce CDC event has no 'event.replayId' nor transactionKey")
        entity = str(require(header, "entityName", f"salesforce CDC {event_id}"))
        change = str(require(header, "changeType", f"salesforce CDC {event_id}")).upper()
        if change not in ("CREATE", "UPDATE"):
            raise ParseError("unsupported_type", f"salesforce CDC {entity} {change} is not mapped ({event_id})")
        record_ids = [as_str(r) for r in require(header, "recordIds", f"salesforce CDC {event_id}") or []]
        if not record_ids or not all(record_ids):
            raise ParseError("missing_field", f"salesforce CDC {event_id} has no record ids")
        when = parse_time(require(header, "commitTimestamp", f"salesforce CDC {event_id}"), "commitTimestamp", "ms")
        changed = {str(f) for f in header.get("changedFields") or []}
        events = []
        for record_id in record_ids:
            record = _SfRecord(entity, str(record_id), fields, change.lower(), changed, when,
                               when if change == "CREATE" else None)
            # One CDC event can stand for the same change on several records.
            prefix = str(record_id) if len(record_ids) > 1 else ""
            for kind, attrs, at, tag, ids, links, who in self._record_events(record):
                suffix = ":".join(s for s in (prefix, tag) if s)
                events.append(self.event(kind, event_id, at, ingested_at, ids, links=links, person=who,
                                         attributes=attrs, suffix=suffix))
        return events

    def _sobject(self, payload: dict[str, Any], ingested_at: datetime) -> list[LifecycleEvent]:
        entity = str(require(payload, "attributes.type", "salesforce record"))
        record_id = str(require(payload, "Id", f"salesforce {entity}"))
        created = parse_time(require(payload, "CreatedDate", f"salesforce {entity} {record_id}"), "CreatedDate")
        modified = first_time(payload, ("LastModifiedDate", "SystemModstamp")) or created
        record = _SfRecord(entity, record_id, payload, "snapshot", set(), modified, created)
        base = f"{entity}-{record_id}"
        return [self.event(kind, self.event_id(payload) if tag == _PER_VERSION else base, at, ingested_at, ids,
                           links=links, person=who, attributes=attrs, suffix="" if tag == _PER_VERSION else tag)
                for kind, attrs, at, tag, ids, links, who in self._record_events(record)]

    # ---- per entity: a record → [(kind, attrs, time, id tag, identifiers, links, person)] ----------
    def _record_events(self, r: _SfRecord) -> list[tuple[str, dict[str, Any], datetime, str, list[str | None],
                                                          list[IdentityLink | None], Person | None]]:
        handler = {"Lead": self._lead, "Contact": self._contact, "Account": self._account,
                   "Opportunity": self._opportunity, "Event": self._activity, "Task": self._activity}.get(r.entity)
        if handler is None:
            raise ParseError("unsupported_type", f"salesforce {r.entity} records are not mapped")
        planned, ids, links, who = handler(r)
        if not planned:
            raise ParseError("unsupported_type", f"salesforce {r.entity} {r.change} of {sorted(r.changed)} "
                                                 "carries no lifecycle change")
        return [(kind, attrs, at, tag, ids, links, who) for kind, attrs, at, tag in planned]

    @staticmethod
    def _owner_change(r: _SfRecord, obj: str) -> list[tuple[str, dict[str, Any], datetime, str]]:
        if r.change == "update" and "OwnerId" in r.changed:
            return [("crm.owner_changed", {"object": obj, "owner_id": as_str(r.fields.get("OwnerId")),
                                           "previous_owner_id": None}, r.when, "owner")]
        return []

    def _lead(self, r: _SfRecord) -> Any:
        f = r.fields
        lid = ident("salesforce.lead", r.id)
        account = ident("salesforce.account", f.get("ConvertedAccountId"))
        ids = [account, domain_id(email=f.get("Email"), website=f.get("Website")), lid]
        links = [link(lid, account, "salesforce Lead.ConvertedAccountId"),
                 link(ident("salesforce.contact", f.get("ConvertedContactId")), account,
                      "salesforce Lead.ConvertedContactId"),
                 link(ident("salesforce.opportunity", f.get("ConvertedOpportunityId")), account,
                      "salesforce Lead.ConvertedOpportunityId")]
        who = person(lid, f.get("Email"), _sf_name(f), as_str(f.get("Title")))
        owner = as_str(f.get("OwnerId"))
        planned = []
        if r.change != "update":
            planned.append(("crm.contact_created", {"lifecycle_stage": as_str(f.get("Status")), "owner_id": owner},
                            r.created or r.when, "created"))
        status = as_str(f.get("Status"))
        # A create's raw status is on contact_created; a status event needs a qualification or a later change.
        if r.touched("Status") and status and (r.change == "update" or _sf_qualification(status)
                                                or r.when > (r.created or r.when)):
            qualification = _sf_qualification(status)
            if qualification:
                planned.append(("crm.lead_qualified", {"qualification": qualification, "raw_value": status,
                                                       "property": "Status", "owner_id": owner},
                                r.when, f"status:{normalize_token(status)}"))
            else:
                planned.append(("crm.lead_status_changed", {"status": status, "owner_id": owner},
                                r.when, f"status:{normalize_token(status)}"))
        if r.touched("IsConverted") and as_bool(f.get("IsConverted")):
            planned.append(("crm.lead_qualified", {"qualification": "sql", "raw_value": "converted",
                                                   "property": "IsConverted", "owner_id": owner}, r.when, "converted"))
        planned += self._owner_change(r, "contact")
        return planned, ids, links, who

    def _contact(self, r: _SfRecord) -> Any:
        f = r.fields
        cid = ident("salesforce.contact", r.id)
        account = ident("salesforce.account", f.get("AccountId"))
        planned = []
        if r.change != "update":
            planned.append(("crm.contact_created", {"lifecycle_stage": None, "owner_id": as_str(f.get("OwnerId"))},
                            r.created or r.when, "created"))
        planned += self._owner_change(r, "contact")
        return (planned, [account, domain_id(email=f.get("Email")), cid],
                [link(cid, account, "salesforce Contact.AccountId")],
                person(cid, f.get("Email"), _sf_name(f), as_str(f.get("Title"))))

    def _account(self, r: _SfRecord) -> Any:
        f = r.fields
        aid = ident("salesforce.account", r.id)
        domain = domain_id(website=f.get("Website"))
        attrs = {"name": _sf_name(f), "domain": (domain or "").removeprefix("domain:") or None,
                 "segment": _segment(f.get("Segment__c")), "owner_id": as_str(f.get("OwnerId")),
                 "changed": sorted(r.changed - {"LastModifiedDate", "SystemModstamp"}) if r.change == "update" else []}
        planned = [("crm.company_updated", attrs, r.when, _PER_VERSION if r.change == "snapshot" else "")]
        if r.change == "update" and not set(attrs["changed"]) - {"OwnerId"}:
            planned = []
        planned += self._owner_change(r, "company")
        return planned, [aid, domain], [], None

    def _opportunity(self, r: _SfRecord) -> Any:
        f = r.fields
        oid = ident("salesforce.opportunity", r.id)
        account = ident("salesforce.account", f.get("AccountId"))
        raw_stage = as_str(f.get("StageName"))
        attrs = {
            "deal_id": r.id, "deal_name": _sf_name(f), "amount": as_number(f.get("Amount")),
            "currency": as_str(f.get("CurrencyIsoCode")), "stage": normalize_token(raw_stage),
            "raw_stage": raw_stage, "deal_type": deal_type(f.get("Type")), "segment": _segment(f.get("Segment__c")),
            "owner_id": as_str(f.get("OwnerId")),
            "promised_time_to_value": as_str(f.get("Promised_Time_To_Value__c")),
            "close_date": as_str(f.get("CloseDate")),
        }
        planned = []
        if r.change != "update":
            created = {k: v for k, v in attrs.items() if k != "close_date"}
            if r.change == "snapshot" and r.when > (r.created or r.when):
                created.update(stage=None, raw_stage=None)  # today's stage, not the one it was created in
            planned.append(("crm.opportunity_created", created, r.created or r.when, "created"))
        won = as_bool(f.get("IsWon")) is True and (r.touched("IsWon") or r.touched("StageName"))
        lost = (not won and as_bool(f.get("IsClosed")) is True and as_bool(f.get("IsWon")) is not True
                and (r.touched("IsClosed") or r.touched("StageName")))
        if won:
            planned.append(("crm.deal_won", {k: attrs[k] for k in (
                "deal_id", "amount", "currency", "close_date", "deal_type", "segment", "owner_id",
                "promised_time_to_value", "stage", "raw_stage", "deal_name")}, r.when, f"stage:{attrs['stage']}"))
        elif lost:
            planned.append(("crm.deal_lost", {"deal_id": r.id, "reason": as_str(f.get("Loss_Reason__c")),
                                              "owner_id": attrs["owner_id"], "stage": attrs["stage"],
                                              "raw_stage": raw_stage}, r.when, f"stage:{attrs['stage']}"))
        elif raw_stage and r.touched("StageName") and (r.change == "update" or r.when > (r.created or r.when)):
            planned.append(("crm.deal_stage_changed", {k: attrs[k] for k in (
                "deal_id", "stage", "raw_stage", "amount", "owner_id")}, r.when, f"stage:{attrs['stage']}"))
        planned += self._owner_change(r, "deal")
        return planned, [account, oid], [link(oid, account, "salesforce Opportunity.AccountId")], None

    def _activity(self, r: _SfRecord) -> Any:
        f = r.fields
        if r.change == "update":
            return [], [], [], None
        subject = as_str(f.get("Subject"))
        medium = "call" if f.get("TaskSubtype") == "Call" else "email" if f.get("TaskSubtype") == "Email" else (
            "meeting" if r.entity == "Event" else "note")
        attrs = {"activity_type": activity_type(f.get("Type"), subject, f.get("TaskSubtype"), medium=medium),
                 "subject": subject, "owner_id": as_str(f.get("OwnerId")), "medium": medium}
        when = first_time(f, ("ActivityDateTime", "StartDateTime", "CompletedDateTime")) or r.created or r.when
        account = ident("salesforce.account", f.get("AccountId"))
        ids = [account, _sf_ref(f.get("WhatId")), _sf_ref(f.get("WhoId"))]
        return [("crm.activity_logged", attrs, when, "")], ids, [], None


HUBSPOT = register(HubSpotParser())
SALESFORCE = register(SalesforceParser())
