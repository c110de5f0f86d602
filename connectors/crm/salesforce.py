"""Salesforce: Change Data Capture (CometD and Pub/Sub shapes) and sObject records → canonical CRM events, plus everything else Salesforce.

Both CRMs reach us in two shapes: change notifications (HubSpot webhooks v3,
Salesforce Change Data Capture) that say *what changed*, and object snapshots
(HubSpot CRM v3 objects, Salesforce sObject records) polled from the APIs that
say *what is*. A snapshot's events are keyed by what they describe (the deal's
creation, the stage it reached), not by the poll, so polling the same object
again yields the same event ids and changes nothing downstream.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from connectors.base import Ignored, ParseError
from connectors.cursors import (
    Cursor,
    CursorStrategy,
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
    normalize_token,
    parse_time,
    person,
    require,
    segment_name,
)
from connectors.signing import HmacScheme, t_v1, ts_dot_body
from connectors.vendor import Vendor
from schemas.events import IdentityLink, LifecycleEvent, Person, SourceKind

# =========================================================================================
# Salesforce
# =========================================================================================
_SF_NAMESPACE = {"Account": "salesforce.account", "Lead": "salesforce.lead", "Contact": "salesforce.contact",
                 "Opportunity": "salesforce.opportunity"}
# Salesforce ids start with their object's key prefix.
_SF_PREFIX = {"001": "salesforce.account", "00Q": "salesforce.lead", "003": "salesforce.contact",
              "006": "salesforce.opportunity"}
_SF_IGNORED_CHANGES = frozenset({"DELETE", "GAP_DELETE", "UNDELETE"})
_SF_GAPS = ("GAP_CREATE", "GAP_UPDATE", "GAP_UNDELETE", "GAP_OVERFLOW")
_BITMAP = re.compile(r"^(?:(\d+)-)?0x([0-9A-Fa-f]+)$")
# An overflow event names no record: its recordIds hold Salesforce's empty record id.
_SF_EMPTY_ID = "000000000000000AAA"


@dataclass(frozen=True)
class CdcParts:
    """A change event as any delivery presents it: its fields, header, delivery metadata and schema."""

    fields: dict[str, Any]
    header: dict[str, Any]
    meta: dict[str, Any]
    schema: Any


def cdc_parts(payload: dict[str, Any]) -> CdcParts | None:
    """Plain ``{schema, payload, event}``; the CometD envelope ``{channel, data: {schema, payload,
    event}}``; or a Pub/Sub API event decoded from Avro (``ChangeEventHeader`` at the top)."""
    for body in (payload, payload.get("data") if isinstance(payload.get("channel"), str) else None):
        if isinstance(body, dict) and isinstance(dig(body, "payload.ChangeEventHeader"), dict):
            meta = body.get("event") if isinstance(body.get("event"), dict) else {}
            return CdcParts(body["payload"], body["payload"]["ChangeEventHeader"], meta, body.get("schema"))
    if isinstance(payload.get("ChangeEventHeader"), dict):
        meta = payload.get("event") if isinstance(payload.get("event"), dict) else {"replayId": payload.get("replayId")}
        return CdcParts(payload, payload["ChangeEventHeader"], meta, payload.get("schema"))
    return None


def _schema_field_names(schema: Any) -> list[str]:
    """Field names in order from an Avro record schema (dict or JSON text); [] when not given."""
    if isinstance(schema, str) and schema.lstrip().startswith("{"):
        try:
            schema = json.loads(schema)
        except ValueError:
            return []
    fields = schema.get("fields") if isinstance(schema, dict) else None
    if not isinstance(fields, list):
        return []
    return [str(f.get("name")) for f in fields if isinstance(f, dict)]


def changed_fields(header: dict[str, Any], fields: dict[str, Any], schema: Any) -> set[str]:
    """Field names a change set. Pub/Sub sends ``changedFields`` as bitmaps (``"0x400800"``: bit i is
    the schema's field i; ``"3-0x02"``: a sub-field of compound field 3). Decoded with the schema's
    field order when the event carries it; else the fields the payload gives values for."""
    raw = [str(f) for f in header.get("changedFields") or []]
    if not any(_BITMAP.match(f) for f in raw):
        return set(raw)
    order = _schema_field_names(schema)
    if not order:
        return {k for k, v in fields.items() if k != "ChangeEventHeader" and v is not None}
    names = set()
    for entry in raw:
        match = _BITMAP.match(entry)
        if not match:
            names.add(entry)
            continue
        parent, bits = match.group(1), int(match.group(2), 16)
        if parent is not None:
            if int(parent) < len(order):
                names.add(order[int(parent)])
            continue
        names.update(order[i] for i in range(min(bits.bit_length(), len(order))) if bits >> i & 1)
    return names


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
        return full_name(name.get("FirstName"), name.get("LastName"))
    return as_str(name) or full_name(fields.get("FirstName"), fields.get("LastName"))


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
        return cdc_parts(payload) is not None

    def native_id(self, payload: dict[str, Any]) -> str | None:
        parts = cdc_parts(payload)
        if parts is not None:
            replay = as_str(dig(parts.meta, "replayId"))
            if replay:
                return replay
            header = parts.header
            key, seq = as_str(header.get("transactionKey")), as_str(header.get("sequenceNumber"))
            return f"{key}:{seq}" if key and seq else None
        entity, record_id = as_str(dig(payload, "attributes.type")), as_str(payload.get("Id"))
        version = as_str(payload.get("SystemModstamp") or payload.get("LastModifiedDate") or payload.get("CreatedDate"))
        return f"{entity}-{record_id}-{version}" if entity and record_id and version else None

    def key(self, payload: dict[str, Any]) -> str:
        parts = cdc_parts(payload)
        if parts is not None:
            fields, header = parts.fields, parts.header
            record_ids = [r for r in header.get("recordIds") or [] if r != _SF_EMPTY_ID] or [None]
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
        raise ParseError("unsupported_type", "salesforce payload is neither a CDC event (plain, CometD or Pub/Sub) "
                                             "nor an sObject record")

    # ---- the two shapes ------------------------------------------------------------------
    def _cdc(self, payload: dict[str, Any], ingested_at: datetime) -> list[LifecycleEvent]:
        parts = cdc_parts(payload)
        assert parts is not None
        fields, header = parts.fields, parts.header
        event_id = self.native_id(payload)
        if event_id is None:
            raise ParseError("missing_field", "salesforce CDC event has no 'event.replayId' nor transactionKey")
        entity = str(require(header, "entityName", f"salesforce CDC {event_id}"))
        change = str(require(header, "changeType", f"salesforce CDC {event_id}")).upper()
        if change in _SF_IGNORED_CHANGES:
            raise Ignored(change, f"{entity} {header.get('recordIds')} ({event_id})")
        if change in _SF_GAPS:
            # Salesforce's contract: a gap event carries no field values; the subscriber re-reads the records.
            raise ParseError("enrichment_failed", f"salesforce {change} on {entity} ({event_id}) needs the records "
                                                  "re-read from the REST API and was not enriched")
        if change not in ("CREATE", "UPDATE"):
            raise ParseError("unsupported_type", f"salesforce CDC {entity} {change} is not mapped ({event_id})")
        record_ids = [as_str(r) for r in require(header, "recordIds", f"salesforce CDC {event_id}") or []]
        if not record_ids or not all(record_ids):
            raise ParseError("missing_field", f"salesforce CDC {event_id} has no record ids")
        when = parse_time(require(header, "commitTimestamp", f"salesforce CDC {event_id}"), "commitTimestamp", "ms")
        changed = changed_fields(header, fields, parts.schema)
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
            raise Ignored(f"{r.entity}.{r.change}", f"salesforce {r.entity} records have no lifecycle meaning")
        planned, ids, links, who = handler(r)
        if not planned:
            raise Ignored(f"{r.entity}.{r.change}", f"{r.id}: {sorted(r.changed)} carries no lifecycle change")
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
                 "segment": segment_name(f.get("Segment__c")), "owner_id": as_str(f.get("OwnerId")),
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
            "raw_stage": raw_stage, "deal_type": deal_type(f.get("Type")), "segment": segment_name(f.get("Segment__c")),
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


# --- polling: SOQL by SystemModstamp------------------------------------------------------------------------------

SALESFORCE_OBJECTS: dict[str, list[str]] = {
    "Account": ["Id", "Name", "Website", "Type", "Industry", "OwnerId", "CreatedDate", "LastModifiedDate",
                "SystemModstamp"],
    "Opportunity": ["Id", "AccountId", "Name", "StageName", "Amount", "CloseDate", "IsClosed", "IsWon", "OwnerId",
                    "CreatedDate", "LastModifiedDate", "SystemModstamp"],
    "Contact": ["Id", "AccountId", "Email", "FirstName", "LastName", "OwnerId", "CreatedDate", "LastModifiedDate",
                "SystemModstamp"],
    "Lead": ["Id", "Email", "Company", "Status", "IsConverted", "ConvertedAccountId", "OwnerId", "CreatedDate",
             "LastModifiedDate", "SystemModstamp"],
}


def _soql_datetime(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class SalesforceQuery:
    sobject: str
    fields: list[str] = field(default_factory=list)
    api_version: str = "v60.0"
    vendor: str = "salesforce"
    stream: str = ""

    def __post_init__(self) -> None:
        self.stream = self.stream or self.sobject
        self.fields = self.fields or SALESFORCE_OBJECTS.get(self.sobject, ["Id", "SystemModstamp"])
        if "SystemModstamp" not in self.fields:
            self.fields = [*self.fields, "SystemModstamp"]

    def soql(self, since_ms: int | None) -> str:
        where = f" WHERE SystemModstamp >= {_soql_datetime(since_ms)}" if since_ms is not None else ""
        return f"SELECT {', '.join(self.fields)} FROM {self.sobject}{where} ORDER BY SystemModstamp ASC, Id ASC"

    def request(self, cursor: Cursor) -> PollRequest:
        if cursor.get("next_url"):
            return PollRequest(cursor["next_url"])
        return PollRequest(f"/services/data/{self.api_version}/query", {"q": self.soql(cursor.get("since"))})

    def page(self, response: PollResponse, cursor: Cursor) -> Page:
        body = response.json()
        records = list_of(body, "records", "salesforce query result")
        fresh, moved = past_watermark(records, cursor, lambda r: iso_ms(r.get("SystemModstamp")),
                                      lambda r: str(r.get("Id")))
        done = bool(body.get("done", True))
        next_url = body.get("nextRecordsUrl")
        if not done and next_url:
            moved["next_url"] = next_url
        return Page(fresh, moved or {k: v for k, v in cursor.items() if k != "next_url"}, not done)

    def recover(self, response: PollResponse, cursor: Cursor) -> Cursor | None:
        # Query locators expire (15 min idle); the watermark alone resumes without a gap.
        if cursor.get("next_url") and response.status in (400, 404):
            return {k: v for k, v in cursor.items() if k != "next_url"}
        return None


def _poll(options: Mapping[str, Any], page_size: int) -> list[CursorStrategy]:
    """Options: ``objects`` (list, or mapping object → fields) and ``api_version``."""
    objects = options.get("objects", list(SALESFORCE_OBJECTS))
    items = objects.items() if isinstance(objects, dict) else ((o, []) for o in objects)
    return [SalesforceQuery(o, list(f), api_version=options.get("api_version", "v60.0")) for o, f in items]


# --- enrichment: gap events are re-read ---------------------------------------------------------
# An overflow names the entity, not the records: re-read what changed around its commit.
OVERFLOW_WINDOW = timedelta(minutes=5)


class SalesforceEnrichment:
    """``GAP_*`` change events → the records, re-read with one SOQL query."""

    def __init__(self, api_version: str = "v60.0"):
        self.api_version = api_version

    def request(self, payload: dict[str, Any]) -> PollRequest | None:
        parts = cdc_parts(payload)
        if parts is None or str(parts.header.get("changeType") or "").upper() not in _SF_GAPS:
            return None
        entity = as_str(parts.header.get("entityName"))
        if not entity or not entity.isidentifier():
            return None
        query = SalesforceQuery(entity, api_version=self.api_version)
        ids = [i for i in (as_str(r) for r in parts.header.get("recordIds") or []) if i and i.isalnum()]
        if ids and str(parts.header.get("changeType")).upper() != "GAP_OVERFLOW":
            where = "Id IN (" + ", ".join(f"'{i}'" for i in ids) + ")"
        else:
            commit = parse_time(parts.header.get("commitTimestamp"), "commitTimestamp", "ms")
            since = (commit - OVERFLOW_WINDOW).astimezone(timezone.utc)
            where = f"SystemModstamp >= {since.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z"
        soql = f"SELECT {', '.join(query.fields)} FROM {entity} WHERE {where} ORDER BY SystemModstamp ASC, Id ASC"
        return PollRequest(f"/services/data/{self.api_version}/query", {"q": soql})

    def complete(self, payload: dict[str, Any], body: Any) -> list[dict[str, Any]]:
        records = list_of(body, "records", "salesforce re-read")
        if not records:
            raise ParseError("enrichment_failed", "salesforce re-read found none of the records")
        return records


PARSER = SalesforceParser()
# Salesforce itself signs nothing we can check: our relay convention, the Stripe format under our own header.
SIGNATURE = HmacScheme("salesforce", "X-Salesforce-Signature", ts_dot_body, parse_header=t_v1,
                       doc="relay convention: 't=<unix>,v1=<hex HMAC-SHA256 of \"{t}.{body}\">'")
SALESFORCE = Vendor(
    name="salesforce", source=SourceKind.CRM, parser=PARSER, signature=SIGNATURE,
    poll=_poll, enrichment=SalesforceEnrichment(),
    namespaces={"salesforce.account": "account", "salesforce.opportunity": "deal", "salesforce.lead": "person",
                "salesforce.contact": "person"},
)
