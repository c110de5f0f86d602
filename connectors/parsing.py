"""Helpers every vendor parser shares: field access, timestamps, identifiers, the parser base.

Vendors disagree on everything small (epoch seconds vs milliseconds vs ISO
strings, ``"true"`` vs ``true``, ids as numbers or strings); these helpers make
each disagreement one decision, taken once, that raises a ``ParseError`` with
a bounded reason instead of a stray ``KeyError``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, ClassVar

import orjson

from connectors.base import ParseError
from schemas.base import stable_id
from schemas.events import IdentityLink, LifecycleEvent, Person, SourceKind

_MISSING = object()
_EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
_LATEST = datetime(2100, 1, 1, tzinfo=timezone.utc)
_EMAIL = re.compile(r"^[^@\s]+@([^@\s]+\.[^@\s]+)$")
_EMAIL_ANYWHERE = re.compile(r"[^@\s<>\"']+@[^@\s<>\"']+\.[A-Za-z]{2,}")
# Salesforce ids: 15 or 18 alphanumeric characters; account ids start with 001.
_SALESFORCE_ACCOUNT = re.compile(r"^001[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?$")
_EPOCH = re.compile(r"\d+(\.\d+)?")
_PATHS: dict[str, tuple[str, ...]] = {}   # dotted path → its parts (parsers use a fixed set)


# ---- field access ---------------------------------------------------------------------
def require_object(payload: Any, what: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise ParseError("not_an_object", f"{what} payload must be a JSON object, got {type(payload).__name__}")
    return payload


def dig(obj: Any, dotted: str, default: Any = None) -> Any:
    """``dig(p, "data.object.id")``: nested get that tolerates missing levels and nulls."""
    value = obj
    parts = _PATHS.get(dotted)
    if parts is None:
        parts = tuple(dotted.split("."))
        if len(_PATHS) < 4096:
            _PATHS[dotted] = parts
    for part in parts:
        if type(value) is dict:   # the common case, ahead of the ABC checks below
            value = value.get(part, _MISSING)
        elif isinstance(value, Mapping):
            value = value.get(part, _MISSING)
        elif isinstance(value, Sequence) and not isinstance(value, str) and part.isdigit():
            index = int(part)
            value = value[index] if index < len(value) else _MISSING
        else:
            return default
        if value is _MISSING or value is None:
            return default
    return value


def require(obj: Any, dotted: str, what: str) -> Any:
    """A field the payload cannot be used without; empty strings count as missing."""
    value = dig(obj, dotted)
    if value is None or value == "":
        raise ParseError("missing_field", f"{what} has no {dotted!r}")
    return value


def as_str(value: Any) -> str | None:
    """Ids arrive as numbers from one vendor and strings from another; compare them as strings."""
    if value is None or value == "" or isinstance(value, (dict, list)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def as_number(value: Any) -> int | float | None:
    """CRM amounts are strings ("12000.00"); keep integers integral."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        number: float | int = value
    else:
        try:
            number = float(str(value).replace(",", ""))
        except ValueError:
            return None
    if isinstance(number, float) and number.is_integer():
        return int(number)
    return number


# ---- time ----------------------------------------------------------------------------
def parse_time(value: Any, field: str, epoch: str = "s") -> datetime:
    """An ISO-8601 string with an offset, or epoch ``s``/``ms`` (number or numeric string).

    Naive ISO strings are refused: four vendors' clocks make a guessed zone a
    silent hour-scale error. The plausible range catches seconds/milliseconds mix-ups.
    """
    if value is None or value == "":
        raise ParseError("missing_field", f"no {field!r}")
    if isinstance(value, bool):
        raise ParseError("bad_timestamp", f"{field!r} is a boolean, not a time")
    when: datetime
    if isinstance(value, (int, float)) or (isinstance(value, str) and _EPOCH.fullmatch(value)):
        seconds = float(value) / (1000.0 if epoch == "ms" else 1.0)
        try:
            when = datetime.fromtimestamp(seconds, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise ParseError("bad_timestamp", f"{field!r}={value!r} is out of range") from None
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ParseError("bad_timestamp", f"{field!r}={value!r} is not an ISO-8601 time") from None
        if when.tzinfo is None:
            raise ParseError("bad_timestamp", f"{field!r}={value!r} has no UTC offset")
        when = when.astimezone(timezone.utc)
    else:
        raise ParseError("bad_timestamp", f"{field!r} must be a string or number, got {type(value).__name__}")
    if not _EARLIEST <= when < _LATEST:
        raise ParseError("bad_timestamp", f"{field!r}={value!r} is outside 2000..2100 (wrong epoch unit?)")
    return when


def first_time(obj: Any, fields: Sequence[str], epoch: str = "s") -> datetime | None:
    """The first of ``fields`` present, parsed; ``None`` if none is present (a bad one still raises)."""
    for name in fields:
        value = dig(obj, name)
        if value is not None and value != "":
            return parse_time(value, name, epoch)
    return None


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


# ---- identity --------------------------------------------------------------------------
def ident(namespace: str, value: Any) -> str | None:
    """``namespace:value`` or ``None`` when the value is missing."""
    text = as_str(value)
    return f"{namespace}:{text}" if text else None


def unique(ids: Iterable[str | None]) -> list[str]:
    """Drop missing and repeated identifiers, keeping the first (most specific) order."""
    seen: dict[str, None] = {}
    for i in ids:
        if i:
            seen.setdefault(i, None)
    return list(seen)


def email_domain(email: Any) -> str | None:
    if not isinstance(email, str):
        return None
    match = _EMAIL.match(email.strip().lower())
    return match.group(1).rstrip(".") if match else None


def web_domain(url: Any) -> str | None:
    """``https://www.Acme.io/pricing`` → ``acme.io``."""
    if not isinstance(url, str) or not url.strip():
        return None
    host = url.strip().lower()
    host = re.sub(r"^[a-z][a-z0-9+.-]*://", "", host)
    host = re.split(r"[/?#:]", host, maxsplit=1)[0]
    host = host.removeprefix("www.")
    return host if "." in host and " " not in host else None


def domain_id(*, email: Any = None, website: Any = None) -> str | None:
    domain = email_domain(email) or web_domain(website)
    return f"domain:{domain}" if domain else None


def crm_identifier(value: Any) -> str | None:
    """A CRM account id written into another system (metadata, traits, external_id).

    Explicit ``hubspot.company:123`` / ``salesforce.account:001…`` forms are kept;
    a bare number is a HubSpot company id, a 15/18-character ``001…`` id a
    Salesforce account id; anything else is not recognisable and returns None.
    """
    text = as_str(value)
    if not text:
        return None
    text = text.strip()
    if text.startswith(("hubspot.company:", "salesforce.account:")):
        return text
    if text.isdigit():
        return f"hubspot.company:{text}"
    if _SALESFORCE_ACCOUNT.match(text):
        return f"salesforce.account:{text}"
    return None


def link(a: str | None, b: str | None, reason: str) -> IdentityLink | None:
    return IdentityLink(a=a, b=b, reason=reason) if a and b and a != b else None


def person(person_id: str | None, email: Any = None, name: Any = None, role: str | None = None) -> Person | None:
    if not person_id:
        return None
    mail = email.strip() if isinstance(email, str) and email_domain(email) else None
    return Person(id=person_id, email=mail, name=as_str(name), role=role)


def strip_emails(value: Any) -> Any:
    """``value`` without email addresses: emails belong on ``person``, never in attributes.

    Most attributes hold none: one look at their JSON (no ``@``, no ``"email"`` key) returns
    them as they are, without a walk; the rest are copied without them."""
    if isinstance(value, (dict, list)):
        try:
            data = orjson.dumps(value)
        except TypeError:   # not JSON (e.g. non-string keys): walk it
            data = b"@"
        if b"@" not in data and b'"email"' not in data.lower():
            return value
    return _stripped(value)


def _without_emails(value: dict[str, Any] | list[Any]) -> dict[str, Any] | list[Any]:
    if isinstance(value, dict):
        return {k: _stripped(v) for k, v in value.items() if not (k.lower() == "email" or _is_email(v))}
    return [_stripped(v) for v in value if not _is_email(v)]


def _is_email(value: Any) -> bool:
    # No "@", no match: the regex is only run where it can.
    return isinstance(value, str) and "@" in value and _EMAIL.match(value.strip()) is not None


def _stripped(value: Any) -> Any:
    """One value without emails, without a call for the scalars that need nothing."""
    if isinstance(value, (dict, list)):
        return _without_emails(value)
    if isinstance(value, str) and "@" in value:
        return _EMAIL_ANYWHERE.sub("[email]", value)
    return value


def content_id(payload: Any) -> str:
    """For payloads the vendor gives no id: the same bytes always hash to the same id."""
    try:
        data = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        data = repr(payload).encode()
    return stable_id(data.decode(), prefix="h-")


# ---- vocabulary shared by both CRMs ---------------------------------------------------
def segment_name(value: Any) -> str | None:
    """``"Mid-Market"`` → ``mid_market``: the journey compares segments as identifiers."""
    text = as_str(value)
    return re.sub(r"[\s\-]+", "_", text.strip().lower()) if text else None


def full_name(first: Any, last: Any) -> str | None:
    return " ".join(p for p in (as_str(first), as_str(last)) if p) or None


def normalize_token(value: Any) -> str | None:
    """``"Closed Won"`` → ``closedwon``: stage names compared without case or spacing."""
    text = as_str(value)
    return re.sub(r"[\s_\-/]+", "", text.lower()) if text else None


def deal_type(raw: Any) -> str | None:
    """HubSpot ``newbusiness``/``existingbusiness``/``renewal``, Salesforce ``New Customer``… → the canonical three."""
    token = normalize_token(raw)
    if not token:
        return None
    if "renew" in token:
        return "renewal"
    if token.startswith("new"):
        return "new_business"
    if any(w in token for w in ("existing", "expansion", "upsell", "upgrade", "crosssell", "addon")):
        return "expansion"
    return None


_ACTIVITY_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("kickoff", ("kickoff", "kick-off", "kick off")),
    ("welcome", ("welcome",)),
    ("renewal", ("renewal", "renew")),
    ("qbr", ("qbr", "quarterly business review", "business review")),
    ("case_study", ("case study", "case_study", "casestudy")),
    ("referral", ("referral", "refer a friend", "referred")),
    ("review", ("review", "g2", "capterra")),
)
ACTIVITY_MEDIA = ("meeting", "call", "email", "note")


def activity_type(*texts: Any, medium: str = "meeting") -> str:
    """What an activity is *for* (kickoff, welcome, qbr …) from its type and title; else its medium."""
    for text in texts:
        if not isinstance(text, str):
            continue
        lowered = text.lower().replace("_", " ")
        for name, words in _ACTIVITY_WORDS:
            if any(w in lowered for w in words):
                return name
    for text in texts:
        token = normalize_token(text)
        if token in ACTIVITY_MEDIA:
            return token
    return medium if medium in ACTIVITY_MEDIA else "meeting"


# ---- the parser base -------------------------------------------------------------------
def split_items(body: Any, containers: Sequence[str], what: str) -> list[dict[str, Any]]:
    """A delivery → payloads: a JSON array, a list page under one of ``containers``, or one object."""
    items: Any
    if isinstance(body, list):
        items = body
    elif isinstance(body, dict):
        items = next((body[c] for c in containers if isinstance(body.get(c), list)), None)
        if items is None:
            return [body]
    else:
        raise ParseError("not_an_object", f"{what} delivery must be a JSON object or array, got {type(body).__name__}")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ParseError("not_an_object", f"{what} delivery item [{i}] is a {type(item).__name__}, not an object")
    return list(items)


class VendorParser:
    """Base of the built-in parsers: the parts of ``SourceParser`` that are the same for all.

    Subclasses set ``vendor``, ``source``, ``containers`` and implement
    ``native_id``, ``key`` and ``parse_object``.
    """

    vendor: ClassVar[str]
    source: ClassVar[SourceKind]
    containers: ClassVar[tuple[str, ...]] = ()

    def split(self, body: Any) -> list[dict[str, Any]]:
        return split_items(body, self.containers, self.vendor)

    def event_id(self, payload: dict[str, Any]) -> str:
        # Never raises for a dict: a payload without its id still becomes a raw
        # record, and parse() dead-letters it with the reason.
        native = self.native_id(payload) if isinstance(payload, dict) else None
        return native or content_id(payload)

    def native_id(self, payload: dict[str, Any]) -> str | None:
        raise NotImplementedError

    def key(self, payload: dict[str, Any]) -> str:
        raise NotImplementedError

    def parse(self, payload: dict[str, Any], ingested_at: datetime) -> list[LifecycleEvent]:
        return self.parse_object(require_object(payload, self.vendor), ingested_at)

    def parse_object(self, payload: dict[str, Any], ingested_at: datetime) -> list[LifecycleEvent]:
        raise NotImplementedError

    def event(
        self,
        kind: str,
        vendor_event_id: str,
        occurred_at: datetime,
        ingested_at: datetime,
        identifiers: Iterable[str | None],
        *,
        links: Iterable[IdentityLink | None] = (),
        person: Person | None = None,
        attributes: dict[str, Any] | None = None,
        suffix: str = "",
    ) -> LifecycleEvent:
        ids = unique(identifiers)
        if not ids:
            raise ParseError("missing_field", f"{self.vendor} {kind}: no identifier for the account or person")
        return LifecycleEvent(
            event_id=LifecycleEvent.make_id(self.vendor, vendor_event_id, suffix),
            source=self.source,
            vendor=self.vendor,
            kind=kind,
            occurred_at=occurred_at,
            ingested_at=ingested_at,
            identifiers=ids,
            links=[lk for lk in links if lk is not None],
            person=person,
            # Emails belong on ``person``; the last word on that is here, for every vendor.
            attributes=strip_emails(attributes or {}),
        )


# Fields other systems use to carry a CRM account id, and the namespace each implies
# (None: recognise the id's shape with ``crm_identifier``).
CRM_ID_FIELDS: dict[str, str | None] = {
    "hubspot_company_id": "hubspot.company",
    "salesforce_account_id": "salesforce.account",
    "crm_account_id": None,
    "crm_company_id": None,
}


def crm_links(subject: str | None, fields: Any, reason: str) -> list[IdentityLink]:
    """Links from ``subject`` to the CRM ids another system stores (Stripe metadata, Segment traits)."""
    if not isinstance(fields, Mapping):
        return []
    out = []
    for name, namespace in CRM_ID_FIELDS.items():
        value = fields.get(name)
        target = ident(namespace, value) if namespace else crm_identifier(value)
        lk = link(subject, target, f"{reason}.{name}")
        if lk is not None:
            out.append(lk)
    return out
