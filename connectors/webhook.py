"""The webhook receiver: one aiohttp app, one ``POST /webhooks/<vendor>`` per vendor.

Each request is verified (``connectors.signatures``), split by the vendor's parser,
enriched where it names an object without describing it (``connectors.enrich``)
and produced through the shared sink, and only then answered: a 2xx means Kafka
has every record of the delivery, so a vendor's retry logic covers our outages
(Kafka unavailable → 503, the vendor retries). Answers:

* 200 ``{"accepted": n, "event_ids": [...]}``
* 401 bad, missing or stale signature, or no secret configured (nothing written)
* 400 body not JSON or of no usable shape: the body goes to the dead-letter topic
* 503 Kafka did not acknowledge (or the producer is not connected)

Also ``GET /healthz`` (process up), ``GET /readyz`` (producer connected) and
``GET /metrics`` (Prometheus text of ``pipeline.metrics.REGISTRY``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from connectors.enrich import Enricher
from connectors.signatures import SCHEMES, SignatureConfig, SignatureError, SignedRequest
from connectors.sink import RecordSink, SinkError
from pipeline.metrics import CONNECTOR_RECORDS, CONNECTOR_UP, REGISTRY

log = logging.getLogger(__name__)

TRANSPORT = "webhook"
WEBHOOK_VENDORS: tuple[str, ...] = tuple(SCHEMES)
SINK_KEY: web.AppKey[RecordSink] = web.AppKey("sink", RecordSink)
CONFIG_KEY: web.AppKey["WebhookConfig"] = web.AppKey("webhook_config")


@dataclass
class WebhookConfig:
    """How the receiver checks requests.

    ``public_url``: the base URL vendors call (e.g. ``https://hooks.example.com``) when
    behind a proxy; HubSpot signs the full URI, which the proxy may have rewritten.
    """

    signatures: SignatureConfig = field(default_factory=SignatureConfig.from_env)
    public_url: str | None = None
    max_body_bytes: int = 5 * 1024 * 1024


def _error(status: int, reason: str, detail: str, **extra: object) -> web.Response:
    return web.json_response({"error": reason, "detail": detail, **extra}, status=status)


def _signed_request(request: web.Request, body: bytes, public_url: str | None) -> SignedRequest:
    uri = public_url.rstrip("/") + request.path_qs if public_url else str(request.url)
    return SignedRequest(method=request.method, uri=uri, headers=request.headers, body=body)


async def receive(request: web.Request) -> web.Response:
    vendor = request.match_info["vendor"]
    sink, config = request.app[SINK_KEY], request.app[CONFIG_KEY]
    body = await request.read()
    try:
        config.signatures.verify(vendor, _signed_request(request, body, config.public_url))
    except SignatureError as exc:
        CONNECTOR_RECORDS.labels(vendor, TRANSPORT, "unauthorized").inc()
        log.warning("refused %s webhook from %s: %s", vendor, request.remote, exc)
        return _error(401, exc.reason, exc.detail)
    if not sink.connected:
        CONNECTOR_RECORDS.labels(vendor, TRANSPORT, "failed").inc()
        return _error(503, "kafka_unavailable", "the producer is not connected; retry later")
    submitted = await sink.submit(vendor, body, transport=TRANSPORT, original=body)
    if submitted.dead_letter is not None:
        letter = submitted.dead_letter
        return _error(400, letter.reason, letter.detail, dead_letter_id=letter.dead_letter_id)
    try:
        await submitted.acknowledged()
    except SinkError as exc:
        return _error(503, "kafka_unavailable", str(exc))
    # Irrelevant payloads (ignored) and notifications whose object could not be read (dead-lettered
    # with their bytes) are handled: a retry by the vendor would change nothing, so still 200.
    return web.json_response({"accepted": len(submitted.records),
                              "event_ids": [r.event_id for r in submitted.records],
                              "ignored": submitted.ignored,
                              "dead_lettered": [d.dead_letter_id for d in submitted.unenriched]})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    ready = request.app[SINK_KEY].connected
    return web.json_response({"ready": ready, "kafka": "connected" if ready else "not connected"},
                             status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_app(sink: RecordSink, config: WebhookConfig | None = None) -> web.Application:
    """The receiver as an aiohttp app; the caller owns (starts and stops) the sink."""
    config = config or WebhookConfig()
    app = web.Application(client_max_size=config.max_body_bytes)
    app[SINK_KEY] = sink
    app[CONFIG_KEY] = config
    app.router.add_post("/webhooks/{vendor:" + "|".join(WEBHOOK_VENDORS) + "}", receive)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)

    async def up(_: web.Application) -> None:
        for vendor in WEBHOOK_VENDORS:
            CONNECTOR_UP.labels(vendor, TRANSPORT).inc()  # inc/dec: several apps may share a process (tests)

    async def down(_: web.Application) -> None:
        for vendor in WEBHOOK_VENDORS:
            CONNECTOR_UP.labels(vendor, TRANSPORT).dec()

    app.on_startup.append(up)
    app.on_cleanup.append(down)
    return app


class WebhookServer:
    """Sink + app + TCP site, started and stopped together (CLI, bench, tests)."""

    def __init__(self, bootstrap_servers: str, host: str = "127.0.0.1", port: int = 8080,
                 config: WebhookConfig | None = None, enricher: Enricher | None = None) -> None:
        # linger 0: each request waits for its ack, and concurrent requests batch up anyway
        # while the previous produce request is in flight.
        self.enricher = enricher if enricher is not None else Enricher.from_env()
        self.sink = RecordSink(bootstrap_servers, client_id="lifecycle-webhook", linger_ms=0, enricher=self.enricher)
        self.app = create_app(self.sink, config)
        self.host, self.port = host, port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> WebhookServer:
        await self.sink.start()
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.sink.stop()
        await self.enricher.close()

    async def __aenter__(self) -> WebhookServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        async with self:
            log.info("webhook receiver on %s (vendors: %s)", self.url, ", ".join(WEBHOOK_VENDORS))
            await asyncio.Event().wait()
