"""Native vendor payloads for integration tests, in the shapes the vendors send.

Each builder returns a ``RawRecord`` as a connector would produce it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from schemas.events import RawRecord, SourceKind


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def raw(vendor: str, source: SourceKind, event_id: str, payload: dict[str, Any], at: datetime) -> RawRecord:
    return RawRecord(source=source, vendor=vendor, event_id=event_id, received_at=datetime.now(timezone.utc),
                     transport="webhook", payload=payload)


def hubspot_company_mql(company_id: str, at: datetime, domain: str, event_id: int) -> RawRecord:
    """A HubSpot webhooks v3 notification: company lifecycle stage → MQL."""
    payload = {"eventId": event_id, "subscriptionId": 2881778, "portalId": 62515, "appId": 1160452,
               "occurredAt": _ms(at), "subscriptionType": "company.propertyChange", "attemptNumber": 0,
               "objectId": int(company_id), "changeSource": "CRM_UI", "propertyName": "lifecyclestage",
               "propertyValue": "marketingqualifiedlead"}
    return raw("hubspot", SourceKind.CRM, str(event_id), payload, at)


def hubspot_deal_won(deal_id: str, company_id: str, created: datetime, won: datetime, segment: str = "Enterprise",
                     promised: str | None = None) -> RawRecord:
    """A HubSpot CRM v3 deal object (as polled), closed won, associated with its company."""
    props = {"dealname": f"Deal {deal_id}", "dealstage": "closedwon", "amount": "48000", "pipeline": "default",
             "closedate": _iso(won), "createdate": _iso(created), "segment": segment, "hubspot_owner_id": "7001",
             "hs_lastmodifieddate": _iso(won), "deal_type": "newbusiness"}
    if promised:
        props["promised_time_to_value"] = promised
    payload = {"id": deal_id, "properties": props, "createdAt": _iso(created), "updatedAt": _iso(won),
               "archived": False,
               "associations": {"companies": {"results": [{"id": company_id, "type": "deal_to_company"}]}}}
    return raw("hubspot", SourceKind.CRM, f"deal-{deal_id}@{_ms(won)}", payload, won)


def hubspot_meeting(meeting_id: str, company_id: str, at: datetime, title: str = "Customer kickoff") -> RawRecord:
    """A HubSpot meeting engagement object, associated with the company."""
    props = {"hs_meeting_title": title, "hs_meeting_start_time": _iso(at), "hs_timestamp": _iso(at),
             "hs_meeting_outcome": "COMPLETED", "hubspot_owner_id": "8001", "hs_createdate": _iso(at)}
    payload = {"id": meeting_id, "properties": props, "createdAt": _iso(at), "updatedAt": _iso(at), "archived": False,
               "associations": {"companies": {"results": [{"id": company_id, "type": "meeting_event_to_company"}]}}}
    return raw("hubspot", SourceKind.CRM, f"meeting-{meeting_id}", payload, at)


def stripe_subscription_created(event_id: str, customer: str, company_id: str | None, at: datetime,
                                interval: str = "year") -> RawRecord:
    """A Stripe ``customer.subscription.created`` event whose customer names the CRM company."""
    ts = int(at.timestamp())
    sub = {"id": f"sub_{event_id}", "object": "subscription", "status": "active", "created": ts,
           "current_period_start": ts, "current_period_end": ts + (365 if interval == "year" else 30) * 86400,
           "customer": {"id": customer, "object": "customer", "email": "billing@example-corp.com",
                        "metadata": {"hubspot_company_id": company_id} if company_id else {}},
           "currency": "usd", "livemode": True,
           "items": {"object": "list", "data": [{"id": f"si_{event_id}", "object": "subscription_item",
                                                 "price": {"id": "price_team", "object": "price", "currency": "usd",
                                                           "unit_amount": 48000,
                                                           "recurring": {"interval": interval, "interval_count": 1}},
                                                 "quantity": 1}]},
           "metadata": {}}
    payload = {"id": f"evt_{event_id}", "object": "event", "api_version": "2024-06-20", "created": ts,
               "livemode": True, "type": "customer.subscription.created", "data": {"object": sub}}
    return raw("stripe", SourceKind.BILLING, f"evt_{event_id}", payload, at)


def segment_group(message_id: str, group_id: str, company_id: str, at: datetime) -> RawRecord:
    payload = {"type": "group", "messageId": message_id, "userId": f"u-{group_id}", "groupId": group_id,
               "traits": {"name": "Example Corp", "website": "https://example-corp.com",
                          "crm_company_id": company_id},
               "timestamp": _iso(at), "sentAt": _iso(at)}
    return raw("segment", SourceKind.PRODUCT, message_id, payload, at)


def segment_track(message_id: str, group_id: str, event: str, at: datetime) -> RawRecord:
    payload = {"type": "track", "messageId": message_id, "userId": f"u-{group_id}", "event": event,
               "properties": {}, "context": {"groupId": group_id}, "timestamp": _iso(at), "sentAt": _iso(at)}
    return raw("segment", SourceKind.PRODUCT, message_id, payload, at)


def zendesk_ticket(ticket_id: int, org_id: int, at: datetime, email: str) -> RawRecord:
    payload = {"event": "ticket.created",
               "ticket": {"id": ticket_id, "status": "new", "priority": "normal", "subject": "SSO setup",
                          "organization_id": org_id, "requester": {"id": 9000 + ticket_id, "email": email},
                          "created_at": _iso(at), "updated_at": _iso(at)}}
    return raw("zendesk", SourceKind.SUPPORT, f"zd-{ticket_id}", payload, at)


def stripe_customer_created(event_id: str, customer: str, email: str, at: datetime,
                            metadata: dict[str, str] | None = None) -> RawRecord:
    ts = int(at.timestamp())
    obj = {"id": customer, "object": "customer", "created": ts, "email": email, "livemode": True,
           "metadata": metadata or {}, "name": "Late Link Ltd"}
    payload = {"id": f"evt_{event_id}", "object": "event", "api_version": "2024-06-20", "created": ts,
               "livemode": True, "type": "customer.created", "data": {"object": obj}}
    return raw("stripe", SourceKind.BILLING, f"evt_{event_id}", payload, at)


def hubspot_company(company_id: str, domain: str, created: datetime, updated: datetime) -> RawRecord:
    """A HubSpot CRM v3 company object (as polled), with its web domain."""
    props = {"name": "Late Link Ltd", "domain": domain, "createdate": _iso(created),
             "hs_lastmodifieddate": _iso(updated)}
    payload = {"id": company_id, "properties": props, "createdAt": _iso(created), "updatedAt": _iso(updated),
               "archived": False}
    return raw("hubspot", SourceKind.CRM, f"company-{company_id}@{_ms(updated)}", payload, updated)
