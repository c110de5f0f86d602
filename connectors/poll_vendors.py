"""Each vendor's list endpoint as a cursor strategy for the one polling loop (``connectors.poll``).

* Stripe ``GET /v1/events``: the list is newest first. Never polled: walk back with
  ``starting_after`` to the oldest event Stripe keeps (30 days), producing nothing
  until the last page, then produce it oldest first. From then on ask for what is
  newer than the newest event seen, ``ending_before=<newest>``; each page is
  reversed into time order and its first item becomes the new ``ending_before``.
* HubSpot ``POST /crm/v3/objects/{deals,companies,contacts}/search``, sorted by last
  modification ascending, filtered ``>= since``, and paged with ``paging.next.after``
  only through items sharing one timestamp. This is the CRM *search* endpoint rather
  than the plain list (``GET /crm/v3/objects/deals?after=``): the list walks objects
  by id, so it cannot see that an old deal changed stage without re-reading every
  object on every poll; search filtered on the modification date can.
* Zendesk ``GET /api/v2/incremental/ticket_events.json?start_time=``: the next
  ``start_time`` is the response's ``end_time``, ``end_of_stream`` says caught up;
  events at the boundary second come again and are dropped by id.
* Salesforce ``GET /services/data/vXX.X/query?q=SELECT … WHERE SystemModstamp >= :since
  ORDER BY SystemModstamp, Id``, then ``nextRecordsUrl`` until ``done``; an expired
  query locator is recovered by querying again from the watermark.
* Segment has no public API to pull events back (it pushes: webhooks destination,
  warehouses, S3). We poll a *Segment-spec NDJSON export endpoint* — one Segment call
  per line — that a warehouse/S3 export job or relay serves:
  ``GET <export_path>?cursor=<opaque>&limit=N``, answering NDJSON with headers
  ``X-Next-Cursor`` (the cursor after the last line) and ``X-Has-More: true|false``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from connectors.base import ParseError
from connectors.poll import Cursor, CursorStrategy, Page, PollConfig, PollRequest, PollResponse, past_watermark
from pipeline.settings import API_TOKEN_FIELDS, Settings

# Where a vendor's access token is read from when the command line gives none.
TOKEN_ENV: dict[str, str] = {v: Settings.env_name(f) for v, f in API_TOKEN_FIELDS.items()}


def _list_of(body: Any, key: str, what: str) -> list[dict[str, Any]]:
    items = body.get(key) if isinstance(body, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ParseError("invalid", f"{what}: expected a JSON object with a list {key!r}")
    return items


def _iso_ms(value: Any) -> int:
    """ISO-8601 (``Z``, ``+0000`` or ``+00:00``) → epoch milliseconds."""
    if not isinstance(value, str):
        raise ParseError("bad_timestamp", f"not a timestamp: {value!r}")
    text = value.replace("Z", "+00:00")
    if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ParseError("bad_timestamp", f"not a timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(parsed.timestamp() * 1000)


class _NoRecovery:
    def recover(self, response: PollResponse, cursor: Cursor) -> Cursor | None:
        return None


# --- Stripe -------------------------------------------------------------------------------------

@dataclass
class StripeEvents(_NoRecovery):
    page_size: int = 100
    vendor: str = "stripe"
    stream: str = "events"

    def request(self, cursor: Cursor) -> PollRequest:
        params = {"limit": str(self.page_size)}
        if cursor.get("newest"):
            params["ending_before"] = cursor["newest"]
        elif cursor.get("rewind_after"):
            params["starting_after"] = cursor["rewind_after"]
        return PollRequest("/v1/events", params)

    def page(self, response: PollResponse, cursor: Cursor) -> Page:
        body = response.json()
        data = _list_of(body, "data", "stripe list")
        has_more = bool(body.get("has_more"))
        if any(not isinstance(e.get("id"), str) for e in data):
            raise ParseError("missing_field", "stripe list item without an id")
        if cursor.get("newest"):  # forwards: the events just newer than `newest`, newest first
            return Page(list(reversed(data)), {"newest": data[0]["id"]} if data else dict(cursor), has_more)
        if has_more:  # still walking back to the oldest event
            return Page([], {"rewind_after": data[-1]["id"]}, True)
        # the oldest page: produce it oldest first; everything newer comes forwards from here, right away
        return Page(list(reversed(data)), {"newest": data[0]["id"]} if data else {}, bool(data))


# --- HubSpot ------------------------------------------------------------------------------------

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
class HubSpotObjects(_NoRecovery):
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
        results = _list_of(body, "results", f"hubspot {self.object_type} search")
        next_after = ((body.get("paging") or {}).get("next") or {}).get("after")
        fresh, moved = past_watermark(results, cursor, lambda o: _iso_ms(o.get("updatedAt")), lambda o: str(o.get("id")))
        if next_after and moved.get("since") == cursor.get("since", self.start_ms) and results:
            # a whole page at one timestamp: only the offset can get past it
            moved["after"] = str(next_after)
        return Page(fresh, moved or dict(cursor), bool(next_after))


# --- Zendesk ------------------------------------------------------------------------------------

@dataclass
class ZendeskTicketEvents(_NoRecovery):
    start_time: int = 0
    vendor: str = "zendesk"
    stream: str = "ticket_events"

    def request(self, cursor: Cursor) -> PollRequest:
        return PollRequest("/api/v2/incremental/ticket_events.json",
                           {"start_time": str(cursor.get("since", self.start_time))})

    def page(self, response: PollResponse, cursor: Cursor) -> Page:
        body = response.json()
        events = _list_of(body, "ticket_events", "zendesk incremental export")
        end_time = body.get("end_time")
        if not isinstance(end_time, int):
            raise ParseError("missing_field", "zendesk incremental export without an integer 'end_time'")
        fresh, moved = past_watermark(events, {"since": cursor.get("since", self.start_time), **cursor},
                                      lambda e: int(e.get("timestamp") or 0), lambda e: str(e.get("id")),
                                      new_since=end_time)
        return Page(fresh, moved, not body.get("end_of_stream", False))


# --- Salesforce ---------------------------------------------------------------------------------

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
        records = _list_of(body, "records", "salesforce query result")
        fresh, moved = past_watermark(records, cursor, lambda r: _iso_ms(r.get("SystemModstamp")),
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


# --- Segment ------------------------------------------------------------------------------------

@dataclass
class SegmentExport(_NoRecovery):
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


# --- per vendor ---------------------------------------------------------------------------------

def strategies_for(vendor: str, config: PollConfig) -> list[CursorStrategy]:
    """The streams to poll for ``vendor``, from ``config.page_size`` and ``config.options``.

    Options: hubspot ``objects`` (list) and ``start_ms``; salesforce ``objects`` (list,
    or mapping object → fields) and ``api_version``; zendesk ``start_time`` (unix s);
    segment ``export_path``.
    """
    opts, size = config.options, config.page_size
    if vendor == "stripe":
        return [StripeEvents(page_size=min(size, 100))]
    if vendor == "hubspot":
        return [HubSpotObjects(t, page_size=min(size, 200), start_ms=int(opts.get("start_ms", 0)))
                for t in opts.get("objects", list(HUBSPOT_OBJECTS))]
    if vendor == "zendesk":
        return [ZendeskTicketEvents(start_time=int(opts.get("start_time", 0)))]
    if vendor == "salesforce":
        objects = opts.get("objects", list(SALESFORCE_OBJECTS))
        items = objects.items() if isinstance(objects, dict) else ((o, []) for o in objects)
        return [SalesforceQuery(o, list(f), api_version=opts.get("api_version", "v60.0")) for o, f in items]
    if vendor == "segment":
        return [SegmentExport(export_path=opts.get("export_path", "/v1/export"), page_size=size)]
    raise ValueError(f"no polling strategy for {vendor!r}; known: {sorted(TOKEN_ENV)}")
