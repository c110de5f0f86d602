"""Stripe Event objects → canonical billing events.

A Stripe event is ``{id: "evt_…", object: "event", type, created (unix s),
livemode, data: {object, previous_attributes}}``. Subscription amounts are kept
in minor units per billing interval, as Stripe gives them. Both the classic
shape (``current_period_*`` and ``plan`` on the subscription, ``subscription``
on the invoice) and the 2025 one (periods on subscription items, invoice
``parent.subscription_details``) are read. Test-mode events are parsed like
live ones with ``livemode: false``: whether to use them is the pipeline's call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, ClassVar

from connectors.base import Ignored, ParseError
from connectors.cursors import Cursor, CursorStrategy, NoRecovery, Page, PollRequest, PollResponse, list_of
from connectors.parsing import (
    VendorParser,
    as_bool,
    as_number,
    as_str,
    crm_links,
    dig,
    domain_id,
    email_domain,
    first_time,
    ident,
    iso,
    parse_time,
    person,
    require,
)
from connectors.signing import HmacScheme, t_v1, ts_dot_body
from connectors.vendor import Vendor
from schemas.events import IdentityLink, LifecycleEvent, Person, SourceKind

_Handled = tuple[dict[str, Any], list[str | None], list[IdentityLink], Person | None]


def _object_id(value: Any) -> str | None:
    """Stripe references are ids, or the object itself when the caller expanded them."""
    return as_str(value.get("id")) if isinstance(value, dict) else as_str(value)


def _price(item: Any) -> dict[str, Any]:
    """The price of an item or invoice line: ``price``/``plan`` (classic), or since 2025-03-31 ("basil")
    ``pricing.price_details.price`` on invoice lines (an object only when expanded)."""
    price = dig(item, "price") or dig(item, "plan") or dig(item, "pricing.price_details.price") or {}
    return price if isinstance(price, dict) else {}


# A billing period's length in days → its interval (Stripe bills whole calendar months/years).
_PERIOD_DAYS = ((1, 1, "day"), (7, 7, "week"), (28, 31, "month"), (365, 366, "year"))


def _line_interval(line: Any) -> tuple[str | None, bool]:
    """(interval, inferred): the line's price says it, else the length of its billing period does."""
    stated = _interval(_price(line))
    if stated:
        return stated, False
    start, end = as_number(dig(line, "period.start")), as_number(dig(line, "period.end"))
    if start is None or end is None or end <= start:
        return None, False
    days = round((end - start) / 86400)
    return next((name for low, high, name in _PERIOD_DAYS if low <= days <= high), None), True


def _items(sub: dict[str, Any]) -> list[dict[str, Any]]:
    items = dig(sub, "items.data") or []
    return [i for i in items if isinstance(i, dict)]


def _amount(sub: dict[str, Any]) -> int | float | None:
    """Amount per interval in minor units: Σ unit_amount × quantity over the items, else the legacy plan."""
    items = _items(sub)
    if items:
        total: float = 0
        for item in items:
            price = _price(item)
            unit = as_number(price.get("unit_amount", price.get("amount")))
            if unit is None:
                return None
            total += unit * (as_number(item.get("quantity")) or 1)
        return as_number(total)
    plan = sub.get("plan")
    unit = as_number(plan.get("amount", plan.get("unit_amount"))) if isinstance(plan, dict) else None
    return as_number(unit * (as_number(sub.get("quantity")) or 1)) if unit is not None else None


def _previous_amount(sub: dict[str, Any], previous: dict[str, Any]) -> int | float | None:
    """The amount before an update: ``previous_attributes`` hold only what changed, so overlay them."""
    if not {"items", "plan", "quantity"} & previous.keys():
        return None
    before = {**sub, **previous}
    if "items" not in previous:
        items = _items(sub)
        if len(items) == 1:
            # A single-price subscription's top-level plan/quantity mirror its one item.
            item = dict(items[0])
            if "quantity" in previous:
                item["quantity"] = previous["quantity"]
            if isinstance(previous.get("plan"), dict):
                item["price"] = previous["plan"]
            before["items"] = {"data": [item]}
        else:
            before.pop("items", None)
    return _amount(before)


def _first_price(sub: dict[str, Any]) -> dict[str, Any]:
    items = _items(sub)
    return _price(items[0]) if items else (sub.get("plan") if isinstance(sub.get("plan"), dict) else {})


def _interval(price: dict[str, Any]) -> str | None:
    return as_str(dig(price, "recurring.interval") or price.get("interval"))


def _period(sub: dict[str, Any], edge: str) -> datetime | None:
    # Classic API: on the subscription; since 2025-03-31: on each item.
    return first_time(sub, (f"current_period_{edge}", f"items.data.0.current_period_{edge}"))


def _subscription_attrs(sub: dict[str, Any]) -> dict[str, Any]:
    price = _first_price(sub)
    return {
        "subscription_id": require(sub, "id", "stripe subscription"),
        "status": as_str(sub.get("status")),
        "plan_id": as_str(price.get("id")),
        "plan_interval": _interval(price),
        "amount": _amount(sub),
        "currency": as_str(sub.get("currency") or price.get("currency")),
        "quantity": as_number(sub.get("quantity") or dig(sub, "items.data.0.quantity")),
        "current_period_start": iso(_period(sub, "start")),
        "current_period_end": iso(_period(sub, "end")),
        "cancel_at_period_end": as_bool(sub.get("cancel_at_period_end")),
        # charge_automatically (a card or debit on file: self-serve checkouts) or send_invoice
        "collection_method": as_str(sub.get("collection_method")),
    }


def _classify(sub: dict[str, Any], previous: dict[str, Any]) -> tuple[str, int | float | None]:
    """What a subscription update was, from Stripe's ``previous_attributes``.

    A price/quantity change is expansion or contraction by the amount; a status
    change is a status change; a new billing period is a renewal.
    """
    prev_amount = _previous_amount(sub, previous)
    amount = _amount(sub)
    if prev_amount is not None and amount is not None and prev_amount != amount:
        return ("expansion" if amount > prev_amount else "contraction"), prev_amount
    if "status" in previous:
        return "status_change", prev_amount
    if ("current_period_start" in previous or "current_period_end" in previous
            or dig(previous, "items.data.0.current_period_start") is not None):
        return "renewal", prev_amount
    return "other", prev_amount


class StripeParser(VendorParser):
    vendor = "stripe"
    source = SourceKind.BILLING
    containers = ("data",)

    def split(self, body: Any) -> list[dict[str, Any]]:
        # A list page is {"object": "list", "data": [...]}; an event's own "data" is an object.
        if isinstance(body, dict) and body.get("object") != "list":
            return [body]
        return super().split(body)

    def native_id(self, payload: dict[str, Any]) -> str | None:
        return as_str(payload.get("id"))

    def key(self, payload: dict[str, Any]) -> str:
        obj = dig(payload, "data.object")
        if isinstance(obj, dict):
            if obj.get("object") == "customer" and as_str(obj.get("id")):
                return f"stripe.customer:{obj['id']}"
            customer = _object_id(obj.get("customer"))
            if customer:
                return f"stripe.customer:{customer}"
            if as_str(obj.get("id")):
                return f"stripe.{obj.get('object') or 'object'}:{obj['id']}"
        return f"stripe.event:{self.event_id(payload)}"

    def parse_object(self, payload: dict[str, Any], ingested_at: datetime) -> list[LifecycleEvent]:
        event_id = str(require(payload, "id", "stripe event"))
        if payload.get("object") not in (None, "event"):
            raise ParseError("unsupported_type", f"stripe {payload.get('object')!r} {event_id} is not an Event object")
        event_type = str(require(payload, "type", f"stripe event {event_id}"))
        handler = self._handlers.get(event_type)
        if handler is None:
            # charge.succeeded, payment_intent.*, …: normal traffic with no lifecycle meaning.
            raise Ignored(event_type, event_id)
        occurred_at = parse_time(require(payload, "created", f"stripe event {event_id}"), "created")
        obj = dig(payload, "data.object")
        if not isinstance(obj, dict):
            raise ParseError("missing_field", f"stripe event {event_id} has no 'data.object'")
        previous = dig(payload, "data.previous_attributes") or {}
        livemode = as_bool(payload.get("livemode"))
        if livemode is None:
            livemode = as_bool(obj.get("livemode"))
        method, kind = handler
        attrs, identifiers, links, who = method(self, kind, obj, previous if isinstance(previous, dict) else {})
        attrs["livemode"] = livemode
        # invoice.paid and invoice.payment_succeeded announce one payment: one canonical id (the
        # invoice's), so the account's event-id dedupe counts it once whichever comes first.
        vendor_id, suffix = (f"invoice-{attrs['invoice_id']}", "paid") if kind == "billing.invoice_paid" else (event_id, "")
        return [self.event(kind, vendor_id, occurred_at, ingested_at, identifiers,
                           links=links, person=who, attributes=attrs, suffix=suffix)]

    # ---- per type: (kind, data.object, previous_attributes) → (attributes, identifiers, links, person)
    def _customer_refs(self, obj: dict[str, Any]) -> tuple[str | None, list[IdentityLink]]:
        """The customer's identifier, plus CRM links from its metadata when it is ``obj`` or expanded."""
        customer = obj if obj.get("object") == "customer" else obj.get("customer")
        cid = ident("stripe.customer", _object_id(customer))
        if not cid:
            raise ParseError("missing_field", f"stripe {obj.get('object') or 'object'} {obj.get('id')} has no customer")
        links = crm_links(cid, customer.get("metadata"), "stripe customer metadata") if isinstance(customer, dict) else []
        if customer is not obj:
            # Subscriptions and invoices often carry the CRM id in their own metadata too.
            links += crm_links(cid, obj.get("metadata"), f"stripe {obj.get('object') or 'object'} metadata")
        return cid, links

    def _customer(self, kind: str, obj: dict[str, Any], previous: dict[str, Any]) -> _Handled:
        cid, links = self._customer_refs(obj)
        email = obj.get("email")
        attrs = {"customer_id": as_str(obj.get("id")), "email_domain": email_domain(email),
                 "name": as_str(obj.get("name"))}
        return attrs, [cid, domain_id(email=email)], links, person(cid, email, obj.get("name"), "billing_contact")

    def _subscription(self, kind: str, obj: dict[str, Any], previous: dict[str, Any]) -> _Handled:
        cid, links = self._customer_refs(obj)
        attrs = _subscription_attrs(obj)
        if kind == "billing.subscription_updated":
            change, prev_amount = _classify(obj, previous)
            attrs.update(change=change, previous_amount=prev_amount, previous_status=as_str(previous.get("status")))
        elif kind == "billing.subscription_canceled":
            attrs.update(canceled_at=iso(first_time(obj, ("canceled_at", "ended_at"))),
                         cancellation_reason=as_str(dig(obj, "cancellation_details.reason")),
                         cancellation_feedback=as_str(dig(obj, "cancellation_details.feedback")))
        return attrs, [cid], links, None

    def _invoice(self, kind: str, obj: dict[str, Any], previous: dict[str, Any]) -> _Handled:
        invoice_id = require(obj, "id", "stripe invoice")
        cid, links = self._customer_refs(obj)
        line = next((li for li in dig(obj, "lines.data") or [] if isinstance(li, dict)
                     and (_price(li) or dig(li, "pricing.price_details") or li.get("period"))), {})
        interval, inferred = _line_interval(line)
        attrs: dict[str, Any] = {
            "invoice_id": invoice_id,
            "subscription_id": _object_id(obj.get("subscription"))
            or as_str(dig(obj, "parent.subscription_details.subscription")),
            "currency": as_str(obj.get("currency")),
            "billing_reason": as_str(obj.get("billing_reason")),
            "collection_method": as_str(obj.get("collection_method")),
            "plan_interval": interval,
            "plan_id": as_str(_price(line).get("id") or dig(line, "pricing.price_details.price")),
        }
        if inferred:
            attrs["plan_interval_inferred"] = True
        if kind == "billing.invoice_paid":
            attrs.update(amount_paid=as_number(obj.get("amount_paid")),
                         period_start=iso(first_time(obj, ("lines.data.0.period.start", "period_start"))),
                         period_end=iso(first_time(obj, ("lines.data.0.period.end", "period_end"))))
        else:
            attrs.update(amount_due=as_number(obj.get("amount_due")),
                         attempt_count=as_number(obj.get("attempt_count")))
        email = obj.get("customer_email")
        return attrs, [cid, domain_id(email=email)], links, person(cid, email, obj.get("customer_name"),
                                                                   "billing_contact")

    _handlers: ClassVar[dict[str, tuple[Callable[..., _Handled], str]]] = {
        "customer.created": (_customer, "billing.customer_created"),
        "customer.subscription.created": (_subscription, "billing.subscription_created"),
        "customer.subscription.updated": (_subscription, "billing.subscription_updated"),
        "customer.subscription.deleted": (_subscription, "billing.subscription_canceled"),
        "invoice.paid": (_invoice, "billing.invoice_paid"),
        "invoice.payment_succeeded": (_invoice, "billing.invoice_paid"),
        "invoice.payment_failed": (_invoice, "billing.invoice_payment_failed"),
    }


PARSER = StripeParser()


# --- polling: /v1/events----------------------------------------------------------------------------------

@dataclass
class StripeEvents(NoRecovery):
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
        data = list_of(body, "data", "stripe list")
        has_more = bool(body.get("has_more"))
        if any(not isinstance(e.get("id"), str) for e in data):
            raise ParseError("missing_field", "stripe list item without an id")
        if cursor.get("newest"):  # forwards: the events just newer than `newest`, newest first
            return Page(list(reversed(data)), {"newest": data[0]["id"]} if data else dict(cursor), has_more)
        if has_more:  # still walking back to the oldest event
            return Page([], {"rewind_after": data[-1]["id"]}, True)
        # the oldest page: produce it oldest first; everything newer comes forwards from here, right away
        return Page(list(reversed(data)), {"newest": data[0]["id"]} if data else {}, bool(data))


def _poll(options: Mapping[str, Any], page_size: int) -> list[CursorStrategy]:
    return [StripeEvents(page_size=min(page_size, 100))]


def _test_mode(event: LifecycleEvent) -> bool:
    return event.attributes.get("livemode") is False


SIGNATURE = HmacScheme("stripe", "Stripe-Signature", ts_dot_body, parse_header=t_v1,
                       doc="hex HMAC-SHA256 of '{t}.{body}', header 't=…,v1=…[,v1=…]'")
STRIPE = Vendor(
    name="stripe", source=SourceKind.BILLING, parser=PARSER, signature=SIGNATURE,
    poll=_poll, test_mode=_test_mode, namespaces={"stripe.customer": "account"},
)
