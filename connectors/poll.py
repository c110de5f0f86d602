"""REST polling: one loop for every vendor, a cursor strategy per vendor's list endpoint.

The loop owns everything that is the same for all vendors: HTTP with auth, rate
limit and error backoff, producing each page through the shared sink, and the
checkpoint. A :class:`CursorStrategy` (``connectors.cursors``; each vendor module has its
own) owns only what differs: which request a cursor means, and what cursor a response leads to.

Delivery is at-least-once with a gap-free resume: a page's new cursor is written
(atomically, to a small JSON file) only after Kafka acknowledged every record of
the page. Stopping at any point and starting again re-reads at most the page that
was in flight, whose records carry the same event ids (idempotent downstream).
Strategies also drop items they already emitted at their watermark, so a clean
stop between pages resumes with neither gap nor duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from connectors.base import ParseError
from connectors.cursors import Cursor, CursorStrategy, Page, PollRequest, PollResponse, past_watermark
from connectors.sink import RecordSink, Submitted
from pipeline.metrics import CONNECTOR_RECORDS, CONNECTOR_UP

log = logging.getLogger(__name__)

TRANSPORT = "poll"


class PollError(RuntimeError):
    """Polling cannot go on without someone looking: bad credentials, a bad URL, retries exhausted."""


# --- checkpoint -------------------------------------------------------------------------------

class CheckpointStore:
    """Cursors by stream, in one small JSON file replaced atomically (write temp, fsync, rename)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._state: dict[str, Cursor] | None = None

    def load(self) -> dict[str, Cursor]:
        if self._state is None:
            if self.path.exists():
                try:
                    state = orjson.loads(self.path.read_bytes())
                except orjson.JSONDecodeError as exc:
                    # Starting from scratch here would silently re-ingest all history.
                    raise PollError(f"checkpoint {self.path} is unreadable ({exc}); fix or remove it") from None
                if not isinstance(state, dict):
                    raise PollError(f"checkpoint {self.path} is not a JSON object")
                self._state = state
            else:
                self._state = {}
        return self._state

    def get(self, stream: str) -> Cursor:
        return dict(self.load().get(stream) or {})

    def save(self, stream: str, cursor: Cursor) -> None:
        state = self.load()
        state[stream] = cursor
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(orjson.dumps(state, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


# --- HTTP with backoff ------------------------------------------------------------------------

def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as delta-seconds or an HTTP-date → seconds to wait (None if absent/unreadable)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass
class PollConfig:
    """Where and how to poll; ``options`` holds the vendor's own knobs (see the vendor modules' ``poll``)."""

    base_url: str
    token: str | None = None                  # sent as "Authorization: Bearer <token>"
    username: str | None = None               # basic auth (e.g. Zendesk "me@x.com/token")
    password: str | None = None
    page_size: int = 100
    interval: float = 30.0                    # pause once every stream is caught up
    timeout: float = 30.0
    backoff_base: float = 0.5
    backoff_cap: float = 60.0
    max_retry_after: float = 900.0
    max_attempts: int = 10
    options: dict[str, Any] = field(default_factory=dict)

    def backoff(self, attempt: int) -> float:
        """Exponential with full jitter, capped: spreads retries of many pollers apart."""
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** attempt))


class VendorHttp:
    """GET/POST against one vendor's API, retrying 429 (honouring Retry-After), 5xx and network errors."""

    def __init__(self, config: PollConfig, vendor: str, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.config, self.vendor, self._sleep = config, vendor, sleep
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> VendorHttp:
        headers = {"Accept": "application/json", "User-Agent": "lifecycle-pipeline-connector"}
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        auth = aiohttp.BasicAuth(self.config.username, self.config.password or "") if self.config.username else None
        self._session = aiohttp.ClientSession(headers=headers, auth=auth,
                                              timeout=aiohttp.ClientTimeout(total=self.config.timeout))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return self.config.base_url.rstrip("/") + "/" + path.lstrip("/")

    async def fetch(self, req: PollRequest) -> PollResponse:
        """The response (2xx or a 4xx other than 429, for the caller to judge); retries the rest."""
        assert self._session is not None, "use `async with VendorHttp(...)`"
        url = self.url(req.path)
        for attempt in range(self.config.max_attempts):
            try:
                async with self._session.request(req.method, url, params=req.params or None,
                                                  json=req.json) as resp:
                    body = await resp.read()
                    response = PollResponse(resp.status, dict(resp.headers), body)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                wait, why = self.config.backoff(attempt), f"{type(exc).__name__}: {exc}"
            else:
                if response.status == 429:
                    hinted = parse_retry_after(response.headers.get("Retry-After"))
                    wait = min(hinted, self.config.max_retry_after) if hinted is not None else self.config.backoff(attempt)
                    why = f"rate limited (429, Retry-After={response.headers.get('Retry-After')})"
                    CONNECTOR_RECORDS.labels(self.vendor, TRANSPORT, "rate_limited").inc()
                elif response.status >= 500:
                    wait, why = self.config.backoff(attempt), f"server error {response.status}"
                else:
                    return response
            log.warning("%s %s: %s; retry %d/%d in %.1fs", self.vendor, url, why, attempt + 1,
                        self.config.max_attempts, wait)
            await self._sleep(wait)
        raise PollError(f"{self.vendor}: {url} still failing after {self.config.max_attempts} attempts ({why})")


# --- the loop ---------------------------------------------------------------------------------

@dataclass
class PollSummary:
    pages: int = 0
    records: int = 0
    dead_letters: int = 0


class Poller:
    """Drain every stream of one vendor page by page; pause; repeat."""

    def __init__(self, sink: RecordSink, strategies: Sequence[CursorStrategy], config: PollConfig,
                 checkpoint: CheckpointStore, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        if not strategies:
            raise ValueError("no streams to poll")
        self.sink, self.strategies, self.config, self.checkpoint = sink, list(strategies), config, checkpoint
        self.vendor = self.strategies[0].vendor
        self.summary = PollSummary()
        self._sleep = sleep

    async def run(self, *, once: bool = False) -> PollSummary:
        """Poll until cancelled (or, with ``once``, until every stream is caught up)."""
        CONNECTOR_UP.labels(self.vendor, TRANSPORT).inc()
        try:
            async with VendorHttp(self.config, self.vendor, self._sleep) as http:
                while True:
                    for strategy in self.strategies:
                        await self._drain(http, strategy)
                    if once:
                        return self.summary
                    await self._sleep(self.config.interval)
        finally:
            CONNECTOR_UP.labels(self.vendor, TRANSPORT).dec()

    async def _drain(self, http: VendorHttp, strategy: CursorStrategy) -> None:
        cursor = self.checkpoint.get(strategy.stream)
        req = strategy.request(cursor)
        fetching = asyncio.ensure_future(http.fetch(req))
        try:
            while True:
                response = await fetching
                if response.status >= 400:
                    recovered = strategy.recover(response, cursor)
                    if recovered is None:
                        raise PollError(f"{self.vendor} {strategy.stream}: HTTP {response.status} from "
                                        f"{http.url(req.path)}: {response.body[:300]!r}")
                    log.warning("%s %s: HTTP %d, resuming from %s", self.vendor, strategy.stream, response.status,
                                recovered)
                    cursor, req = recovered, strategy.request(recovered)
                    fetching = asyncio.ensure_future(http.fetch(req))
                    continue
                where = f"{strategy.stream} page {self.summary.pages + 1}"
                try:
                    page = strategy.page(response, cursor)
                except ParseError as exc:
                    # Not the vendor's shape: keep the body, stop with a clear error rather than skip ahead.
                    await self.sink.dead_letter(reason=exc.reason, detail=f"{where}: {exc.detail}",
                                                original=response.body, vendor=self.vendor, transport=TRANSPORT,
                                                origin_ref=where)
                    self.summary.dead_letters += 1
                    raise PollError(f"{self.vendor} {strategy.stream}: unusable response ({exc})") from exc
                submitted = await self._queue(page.items, where)
                if page.more:  # the next request needs only the cursor: fetch it while Kafka acknowledges
                    req = strategy.request(page.cursor)
                    fetching = asyncio.ensure_future(http.fetch(req))
                for sub in submitted:
                    await sub.acknowledged()  # SinkError propagates: the checkpoint stays where it was
                    self.summary.records += len(sub.records)
                self.checkpoint.save(strategy.stream, page.cursor)  # only now: Kafka has the page
                self.summary.pages += 1
                cursor = page.cursor
                if not page.more:
                    return
        finally:
            if not fetching.done():
                fetching.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await fetching

    async def _queue(self, items: list[Any], where: str) -> list[Submitted]:
        submitted = []
        for n, item in enumerate(items, 1):
            sub = await self.sink.submit(self.vendor, item, transport=TRANSPORT,
                                         original=item if isinstance(item, bytes) else None, where=f"{where} item {n}")
            if sub.dead_letter is not None:
                self.summary.dead_letters += 1
            submitted.append(sub)
        return submitted
