"""What a cursor strategy sees and returns: the vendor-neutral half of REST polling.

A vendor module describes its list endpoints (and its enrichment reads) in these
terms only, so it never imports the polling loop, the sink or Kafka; the loop in
``connectors.poll`` drives any strategy the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

import orjson

from connectors.base import ParseError

Cursor = dict[str, Any]


# --- what a strategy sees and returns -----------------------------------------------------------

@dataclass(frozen=True)
class PollRequest:
    """``path`` is relative to the base URL (or an absolute URL a vendor handed back)."""

    path: str
    params: dict[str, str] = field(default_factory=dict)
    method: str = "GET"
    json: Any = None


@dataclass(frozen=True)
class PollResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise ParseError("not_json", f"response is not JSON ({exc})") from None


@dataclass
class Page:
    """One response, understood: the items to produce, the cursor after them, more right away?"""

    items: list[Any]
    cursor: Cursor
    more: bool


class CursorStrategy(Protocol):
    vendor: str
    stream: str  # names the cursor in the checkpoint file, e.g. "events", "deals"

    def request(self, cursor: Cursor) -> PollRequest:
        """The next request for this cursor (an empty dict: never polled before)."""

    def page(self, response: PollResponse, cursor: Cursor) -> Page:
        """Items and the next cursor; ParseError if the response is not the vendor's shape."""

    def recover(self, response: PollResponse, cursor: Cursor) -> Cursor | None:
        """A cursor to retry with after a 4xx (e.g. an expired query locator), or None: give up."""


# --- watermark with ids: the incremental cursor three vendors share ---------------------------

def past_watermark(items: Sequence[dict[str, Any]], cursor: Cursor, ts_of: Callable[[dict[str, Any]], Any],
                   id_of: Callable[[dict[str, Any]], str], new_since: Any = None) -> tuple[list[dict[str, Any]], Cursor]:
    """Drop items at or before the watermark already emitted; move the watermark past the rest.

    Lists filtered with ``>= since`` re-send the items *at* ``since``; the ids of
    those already produced ride in the cursor (``ids``) so they are not produced
    twice. ``new_since`` is the vendor's own next start (Zendesk's ``end_time``);
    otherwise the last item's timestamp. Items must come in ascending time order.
    """
    since, seen = cursor.get("since"), set(cursor.get("ids", ()))
    fresh = []
    for item in items:
        ts, ident = ts_of(item), id_of(item)
        if since is not None and (ts < since or (ts == since and ident in seen)):
            continue
        fresh.append(item)
    last = ts_of(items[-1]) if items else since
    target = new_since if new_since is not None else last
    if target is None:
        return fresh, {}
    ids = {id_of(i) for i in items if ts_of(i) == target}
    if target == since:
        ids |= seen
    return fresh, {"since": target, "ids": sorted(ids)}


# --- helpers the vendors' strategies share ---------------------------------------------------

def list_of(body: Any, key: str, what: str) -> list[dict[str, Any]]:
    items = body.get(key) if isinstance(body, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ParseError("invalid", f"{what}: expected a JSON object with a list {key!r}")
    return items


def iso_ms(value: Any) -> int:
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


class NoRecovery:
    def recover(self, response: PollResponse, cursor: Cursor) -> Cursor | None:
        return None
