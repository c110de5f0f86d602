"""One HMAC verifier for every vendor's webhook signature scheme.

Every vendor signs the raw request body with a shared secret; they differ only in
which header carries the signature, what else goes into the signed message (a
timestamp, the method and URI), the digest and its text encoding. So there is one
:class:`HmacScheme`, and each vendor module holds its instance (its few parameters).

All comparisons use :func:`hmac.compare_digest`. Timestamps outside the tolerance
(default 300 s, either direction) are refused, so a captured request cannot be
replayed later; a replay inside the window is harmless because every record
carries the vendor's own event id and is idempotent downstream.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

DEFAULT_TOLERANCE = 300.0


class SignatureError(Exception):
    """A request whose signature does not prove it came from the vendor (→ HTTP 401).

    ``reason`` is a bounded category: ``no_secret``, ``missing_signature``,
    ``malformed_signature``, ``missing_timestamp``, ``bad_timestamp``,
    ``stale_timestamp``, ``bad_signature``.
    """

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class SignedRequest:
    """What a verifier may look at: method, the full URI the vendor called, headers, raw body."""

    method: str
    uri: str
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        # aiohttp's CIMultiDict is case-insensitive already; plain dicts (tests, bench) are not.
        value = self.headers.get(name)
        if value is None:
            lowered = name.lower()
            value = next((v for k, v in self.headers.items() if k.lower() == lowered), None)
        return value


TimestampUnit = Literal["s", "ms", "iso"]


def parse_timestamp(value: str, unit: TimestampUnit) -> float:
    """A vendor timestamp header → Unix seconds; ValueError if it is not one."""
    value = value.strip()
    if unit == "s":
        return float(int(value))
    if unit == "ms":
        return int(value) / 1000.0
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("timestamp without a UTC offset")
    return parsed.timestamp()


def _single(value: str) -> tuple[str | None, list[str]]:
    return None, [value.strip()]


def t_v1(value: str) -> tuple[str | None, list[str]]:
    """The ``t=…,v1=…,v1=…`` header (Stripe's): several v1 entries are valid during secret rolls."""
    timestamp, sigs = None, []
    for part in value.split(","):
        name, sep, item = part.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            timestamp = item
        elif name == "v1":
            sigs.append(item)
    return timestamp, sigs


Message = Callable[[SignedRequest, str | None], bytes]


@dataclass(frozen=True)
class HmacScheme:
    """One vendor's webhook signature: which header, what message, which digest and encoding."""

    vendor: str
    signature_header: str
    message: Message
    digest: str = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    parse_header: Callable[[str], tuple[str | None, list[str]]] = _single
    timestamp_header: str | None = None     # None: the timestamp (if any) is inside the signature header
    timestamp_unit: TimestampUnit = "s"
    timestamped: bool = True
    doc: str = ""

    def compute(self, secret: str, req: SignedRequest, timestamp: str | None) -> str:
        mac = hmac.new(secret.encode(), self.message(req, timestamp), getattr(hashlib, self.digest)).digest()
        return mac.hex() if self.encoding == "hex" else base64.b64encode(mac).decode()

    def verify(self, req: SignedRequest, secret: str, *, tolerance: float = DEFAULT_TOLERANCE,
               now: float | None = None) -> None:
        """Return if the request is authentic and fresh; raise :class:`SignatureError` otherwise."""
        raw = req.header(self.signature_header)
        if not raw:
            raise SignatureError("missing_signature", f"header {self.signature_header} is missing")
        timestamp, candidates = self.parse_header(raw)
        if self.timestamp_header:
            timestamp = req.header(self.timestamp_header)
        candidates = [c for c in candidates if c]
        if not candidates:
            raise SignatureError("malformed_signature", f"no signature found in {self.signature_header}")
        if self.timestamped:
            if not timestamp:
                raise SignatureError("missing_timestamp", f"{self.vendor} request carries no timestamp")
            try:
                sent_at = parse_timestamp(timestamp, self.timestamp_unit)
            except (ValueError, OverflowError):
                raise SignatureError("bad_timestamp", f"unreadable timestamp {timestamp[:40]!r}") from None
            age = (time.time() if now is None else now) - sent_at
            if abs(age) > tolerance:
                raise SignatureError("stale_timestamp", f"timestamp is {age:.0f}s away from now (tolerance {tolerance:.0f}s)")
        expected = self.compute(secret, req, timestamp).encode()
        # Check every candidate (no early exit) so timing does not reveal which one matched.
        ok = False
        for candidate in candidates:
            ok |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
        if not ok:
            raise SignatureError("bad_signature", f"{self.signature_header} does not match the body")

    def sign(self, secret: str, req: SignedRequest, timestamp: str | None = None) -> dict[str, str]:
        """Headers a vendor would send for ``req`` (for tests, the bench and relays we write)."""
        if self.timestamped and timestamp is None:
            now = time.time()
            timestamp = {"s": str(int(now)), "ms": str(int(now * 1000)),
                         "iso": datetime.fromtimestamp(int(now), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}[self.timestamp_unit]
        sig = self.compute(secret, req, timestamp)
        if self.parse_header is t_v1:
            return {self.signature_header: f"t={timestamp},v1={sig}"}
        headers = {self.signature_header: sig}
        if self.timestamp_header and timestamp is not None:
            headers[self.timestamp_header] = timestamp
        return headers


def ts_dot_body(req: SignedRequest, ts: str | None) -> bytes:
    return f"{ts}.".encode() + req.body
