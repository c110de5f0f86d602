"""Enrichment: a notification that carries ids, not meaning, becomes the object it names.

HubSpot's ``object.creation`` of a meeting does not say the meeting is the customer
kickoff; a Salesforce ``GAP_*`` event carries no field values; a Zendesk webhook may
name a ticket and nothing else. Each vendor module says which of its payloads need
the object and which REST read returns it (its ``Enrichment``); this module does
the reading, once for every vendor, before anything reaches Kafka, so the worker
stays a pure function of the raw topics.

The reads share the polling transport's HTTP client (``connectors.poll.VendorHttp``):
429 with ``Retry-After`` and 5xx are retried with capped, jittered backoff. Answers
are kept in a bounded LRU cache with a short time-to-live (one meeting is often
announced by several subscriptions). A read that keeps failing raises
:class:`EnrichmentFailed`; the sink dead-letters the notification with reason
``enrichment_failed`` and its original bytes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any

from connectors.base import ParseError
from connectors.cursors import PollRequest
from connectors.poll import PollConfig, PollError, VendorHttp
from connectors.registry import VENDORS, vendor
from pipeline.settings import API_BASE_FIELDS, Settings

log = logging.getLogger(__name__)

TRANSPORT = "enrich"


def _api_base_env(vendor_name: str) -> str:
    """The variable of a vendor's API root (``HUBSPOT_API_BASE_URL``)."""
    field = API_BASE_FIELDS.get(vendor_name)
    return Settings.env_name(field) if field else f"an API root for {vendor_name} (pipeline.settings.API_BASE_FIELDS)"


class EnrichmentFailed(Exception):
    """The object behind a notification could not be read (→ dead letter ``enrichment_failed``)."""


class Enricher:
    """Reads the objects behind notification-only payloads, for every vendor whose API is configured."""

    def __init__(self, apis: Mapping[str, PollConfig], *, cache_size: int = 1024, cache_ttl: float = 60.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.apis = dict(apis)
        self.cache_size, self.cache_ttl = cache_size, cache_ttl
        self._cache: OrderedDict[tuple[str, str, str, str], tuple[float, Any]] = OrderedDict()
        self._sleep = sleep
        self._clients: dict[str, VendorHttp] = {}
        self._stack = AsyncExitStack()
        self.fetches = 0  # reads that went to the vendor (not the cache)

    @classmethod
    def from_env(cls, settings: Settings | None = None, **kw: Any) -> Enricher:
        """One API per vendor whose API root is set (``HUBSPOT_API_BASE_URL``, ...: ``API_BASE_FIELDS``), with
        the vendor's API token, from the settings; ``LIFECYCLE_ENRICH_ATTEMPTS`` reads before giving up."""
        settings = settings or Settings.from_env()
        apis = {}
        for v in VENDORS:
            base = settings.api_base_url(v.name)
            if v.enrichment is None or not base:
                continue
            token = settings.api_token(v.name)
            apis[v.name] = PollConfig(base_url=base, token=token.get_secret_value() or None if token else None,
                                      max_attempts=settings.enrich_attempts, backoff_cap=10.0, max_retry_after=60.0,
                                      timeout=15.0)
        return cls(apis, **kw)

    def request(self, vendor_name: str, payload: dict[str, Any]) -> PollRequest | None:
        """The read ``payload`` needs, or None when it is complete as it is."""
        enrichment = vendor(vendor_name).enrichment
        return enrichment.request(payload) if enrichment is not None else None

    async def complete(self, vendor_name: str, payload: dict[str, Any], req: PollRequest) -> list[dict[str, Any]]:
        """The payload(s) to parse instead of ``payload``; EnrichmentFailed when they cannot be had."""
        config = self.apis.get(vendor_name)
        v = vendor(vendor_name)
        if config is None:
            raise EnrichmentFailed(f"{vendor_name} notification needs {req.path} but no API is configured "
                                   f"(set {_api_base_env(vendor_name)} and the vendor's API token)")
        body = await self._read(vendor_name, config, req)
        assert v.enrichment is not None
        try:
            return v.enrichment.complete(payload, body)
        except ParseError as exc:
            raise EnrichmentFailed(f"{req.path}: {exc.detail}") from None

    async def _read(self, vendor_name: str, config: PollConfig, req: PollRequest) -> Any:
        key = (vendor_name, req.method, req.path, repr(sorted(req.params.items())))
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.cache_ttl:
            self._cache.move_to_end(key)
            return hit[1]
        http = await self._client(vendor_name, config)
        try:
            response = await http.fetch(req)
        except PollError as exc:
            raise EnrichmentFailed(str(exc)) from None
        self.fetches += 1
        if response.status >= 400:
            raise EnrichmentFailed(f"{vendor_name} {req.path}: HTTP {response.status} {response.body[:200]!r}")
        try:
            body = response.json()
        except ParseError as exc:
            raise EnrichmentFailed(f"{vendor_name} {req.path}: {exc.detail}") from None
        self._cache[key] = (time.monotonic(), body)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return body

    async def _client(self, vendor_name: str, config: PollConfig) -> VendorHttp:
        client = self._clients.get(vendor_name)
        if client is None:
            client = await self._stack.enter_async_context(VendorHttp(config, vendor_name, self._sleep))
            self._clients[vendor_name] = client
        return client

    async def close(self) -> None:
        await self._stack.aclose()
        self._clients.clear()
