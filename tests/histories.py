"""Multi-source account histories in the vendors' native shapes, shared by the unit tests
(through the offline driver) and the end-to-end tests on the broker, so both check the
same bytes.

Each history is a list of ``RawRecord`` in the order a person would see them happen.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from pipeline.journey import JourneyDefinition, load_journey
from pipeline.offline import OfflinePipeline, RawInput, ReplayOutput, ReplayStats
from schemas import topics as T
from schemas.events import RawRecord, SourceKind
from tests.integration import native as n

T0 = datetime(2025, 3, 3, 15, 0, tzinfo=timezone.utc)   # a Monday, 10:00 in New York


def day(d: float) -> datetime:
    return T0 + timedelta(days=d)


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _hubspot(event_id: int, payload: dict[str, Any]) -> RawRecord:
    return RawRecord(source=SourceKind.CRM, vendor="hubspot", event_id=str(event_id), received_at=T0,
                     transport="webhook", payload=payload)


def hubspot_contact_stage(contact_id: int, stage: str, at: datetime, event_id: int) -> RawRecord:
    """A webhooks v3 ``contact.propertyChange`` of ``lifecyclestage`` (HubSpot's documented shape)."""
    return _hubspot(event_id, {
        "eventId": event_id, "subscriptionId": 2881001, "portalId": 62515, "appId": 1160452,
        "occurredAt": _ms(at), "subscriptionType": "contact.propertyChange", "attemptNumber": 0,
        "objectId": contact_id, "changeSource": "CRM_UI", "propertyName": "lifecyclestage",
        "propertyValue": stage})


def hubspot_association(from_id: int, to_id: int, association: str, at: datetime, event_id: int) -> RawRecord:
    """A webhooks v3 ``*.associationChange`` (e.g. ``CONTACT_TO_COMPANY``)."""
    subject = association.split("_TO_")[0].lower()
    return _hubspot(event_id, {
        "eventId": event_id, "subscriptionId": 2881002, "portalId": 62515, "appId": 1160452,
        "occurredAt": _ms(at), "subscriptionType": f"{subject}.associationChange", "attemptNumber": 0,
        "changeSource": "USER", "associationType": association, "fromObjectId": from_id, "toObjectId": to_id,
        "associationRemoved": False, "isPrimaryAssociation": True})


def hubspot_deal_created(deal_id: int, at: datetime, event_id: int) -> RawRecord:
    """A webhooks v3 ``deal.creation``: the deal exists, no company association yet."""
    return _hubspot(event_id, {
        "eventId": event_id, "subscriptionId": 2881003, "portalId": 62515, "appId": 1160452,
        "occurredAt": _ms(at), "subscriptionType": "deal.creation", "attemptNumber": 0,
        "objectId": deal_id, "changeSource": "CRM_UI"})


def contact_first(company: int, contact: int) -> list[RawRecord]:
    """A contact becomes MQL (day 0) then SQL (day 2) before anyone links it to a company;
    it is associated with its company on day 5, and the company's deal is won on day 10."""
    return [
        hubspot_contact_stage(contact, "marketingqualifiedlead", day(0), contact * 10 + 1),
        hubspot_contact_stage(contact, "salesqualifiedlead", day(2), contact * 10 + 2),
        hubspot_association(contact, company, "CONTACT_TO_COMPANY", day(5), contact * 10 + 3),
        n.hubspot_deal_won(f"d{company}", str(company), created=day(6), won=day(10)),
    ]


def deal_before_company(company: int, deal: int) -> list[RawRecord]:
    """A deal is created (day 1) before it is associated with its company (day 3)."""
    return [
        hubspot_deal_created(deal, day(1), deal * 10 + 1),
        hubspot_association(deal, company, "DEAL_TO_COMPANY", day(3), deal * 10 + 2),
    ]


def _stripe(event_type: str, event_id: str, obj: dict[str, Any], at: datetime) -> RawRecord:
    payload = {"id": f"evt_{event_id}", "object": "event", "api_version": "2024-06-20", "created": int(at.timestamp()),
               "livemode": True, "pending_webhooks": 1, "type": event_type, "data": {"object": obj}}
    return RawRecord(source=SourceKind.BILLING, vendor="stripe", event_id=f"evt_{event_id}", received_at=at,
                     transport="webhook", payload=payload)


def self_serve(customer: str, at: datetime = T0) -> list[RawRecord]:
    """A self-serve signup: a Stripe customer with a card, subscribed by card
    (``collection_method: charge_automatically``); no CRM record at all."""
    ts = int(at.timestamp())
    cust = {"id": customer, "object": "customer", "created": ts, "email": f"founder@{customer}.example",
            "livemode": True, "metadata": {}, "name": "Tiny Startup",
            "invoice_settings": {"default_payment_method": f"pm_{customer}"}}
    sub = {"id": f"sub_{customer}", "object": "subscription", "status": "active", "created": ts + 60,
           "customer": customer, "collection_method": "charge_automatically",
           "default_payment_method": f"pm_{customer}", "current_period_start": ts + 60,
           "current_period_end": ts + 60 + 30 * 86400, "currency": "usd", "livemode": True, "metadata": {},
           "items": {"object": "list", "data": [{
               "id": f"si_{customer}", "object": "subscription_item", "quantity": 1,
               "price": {"id": "price_starter_monthly", "object": "price", "currency": "usd", "unit_amount": 4900,
                         "recurring": {"interval": "month", "interval_count": 1}}}]}}
    return [_stripe("customer.created", f"c_{customer}", cust, at),
            _stripe("customer.subscription.created", f"s_{customer}", sub, at + timedelta(minutes=1))]


def replay(records: list[RawRecord], now: datetime, journey: JourneyDefinition | None = None,
           partitions: int = 4, **options: Any) -> tuple[ReplayOutput, ReplayStats]:
    """The worker's steps over ``records`` (each raw topic one partition, in list order), offline,
    with the wall clock at ``now``: what a worker would publish."""
    sources: dict[tuple[str, int], list[RawInput]] = {}
    for record in records:
        topic = T.RAW[record.source]
        queue = sources.setdefault((topic, 0), [])
        queue.append(RawInput(topic, 0, len(queue), record.model_dump_json().encode()))
    pipeline = OfflinePipeline([journey or load_journey()], now=now, partitions=partitions, **options)
    (out,) = pipeline.run(sources)
    return out, pipeline.stats


def future_dated(company: int, at: datetime) -> RawRecord:
    """A HubSpot notification whose ``occurredAt`` is far ahead (a sender's broken clock)."""
    return n.hubspot_company_mql(str(company), at, f"future-{company}.example", event_id=company * 10 + 9)


def won_without_kickoff(company: int, won: datetime = T0 + timedelta(days=1)) -> list[RawRecord]:
    """A deal won (default: day 1) whose customer kickoff never happens: the kickoff SLA is pending."""
    return [n.hubspot_deal_won(f"d{company}", str(company), created=won - timedelta(days=1), won=won)]
