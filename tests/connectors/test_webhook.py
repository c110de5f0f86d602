"""The webhook receiver on a real loopback port, producing to the real broker."""

from __future__ import annotations

import json
import random
import time

import aiohttp
import pytest

from connectors.signatures import SCHEMES, SignatureConfig, SignedRequest
from connectors.sink import RecordSink
from connectors.webhook import WebhookConfig, WebhookServer, create_app
from pipeline.metrics import CONNECTOR_RECORDS
from schemas.events import DeadLetter, RawRecord, SourceKind
from schemas.topics import DEAD_LETTER, RAW
from tests.connectors.transport_helpers import end_offsets, event_id, header, parsers, read_from, topics  # noqa: F401

pytestmark = pytest.mark.integration

SECRETS = {"stripe": "whsec_test", "hubspot": "hs-client-secret", "salesforce": "sf-relay",
           "segment": "seg-shared"}  # zendesk deliberately has none


@pytest.fixture(scope="module")
async def server(topics, parsers):
    config = WebhookConfig(signatures=SignatureConfig(secrets=dict(SECRETS)))
    async with WebhookServer(topics, port=0, config=config) as srv:
        yield srv


@pytest.fixture(scope="module")
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def signed(vendor: str, url: str, body: bytes, secret: str | None = None) -> dict[str, str]:
    r = SignedRequest("POST", url, {}, body)
    return SCHEMES[vendor].sign(secret or SECRETS[vendor], r) | {"Content-Type": "application/json"}


async def post(http, server, vendor: str, body: bytes, headers: dict[str, str] | None = None):
    url = f"{server.url}/webhooks/{vendor}"
    async with http.post(url, data=body, headers=signed(vendor, url, body) if headers is None else headers) as resp:
        return resp.status, await resp.json(content_type=None)


def stripe_event(i: int) -> dict:
    return {"id": f"evt_wh_{i}", "object": "event", "type": "customer.subscription.created", "created": 1760000000 + i,
            "livemode": True, "customer": "cus_wh", "data": {"object": {"id": f"sub_{i}", "customer": "cus_wh"}}}


async def test_signed_stripe_event_lands_on_raw_topic_with_event_id(server, http):
    start = await end_offsets(server.sink.bootstrap_servers, RAW[SourceKind.BILLING])
    status, body = await post(http, server, "stripe", json.dumps(stripe_event(1)).encode())
    assert status == 200, body
    assert body == {"accepted": 1, "event_ids": [body["event_ids"][0]], "ignored": 0, "dead_lettered": []}
    # the 2xx was sent after Kafka acknowledged: the record is readable right away
    got = await read_from(server.sink.bootstrap_servers, start, expect=1)
    assert len(got) == 1
    raw = RawRecord.from_json(got[0].value)
    assert raw.vendor == "stripe" and raw.transport == "webhook" and raw.payload == stripe_event(1)
    assert header(got[0], "event_id") == raw.event_id == body["event_ids"][0]
    assert "evt_wh_1" in raw.event_id


async def test_hubspot_batch_is_split_into_records(server, http):
    batch = [{"eventId": 100 + i, "subscriptionId": 7, "portalId": 62515, "occurredAt": 1760000000000 + i,
              "subscriptionType": "deal.propertyChange", "attemptNumber": 0, "objectId": 9001,
              "propertyName": "dealstage", "propertyValue": "closedwon", "changeSource": "CRM"} for i in range(3)]
    start = await end_offsets(server.sink.bootstrap_servers, RAW[SourceKind.CRM])
    status, body = await post(http, server, "hubspot", json.dumps(batch).encode())
    assert status == 200 and body["accepted"] == 3
    got = await read_from(server.sink.bootstrap_servers, start, expect=3)
    assert sorted(event_id(m) for m in got) == sorted(body["event_ids"])
    assert len({m.key for m in got}) == 1  # one deal → one key → kept in order


async def test_bad_stale_or_missing_signature_is_401_and_writes_nothing(server, http):
    bootstrap = server.sink.bootstrap_servers
    start = await end_offsets(bootstrap, RAW[SourceKind.BILLING])
    dl_start = await end_offsets(bootstrap, DEAD_LETTER)
    before = CONNECTOR_RECORDS.labels("stripe", "webhook", "unauthorized")._value.get()
    body = json.dumps(stripe_event(2)).encode()
    url = f"{server.url}/webhooks/stripe"
    forged = signed("stripe", url, body, secret="whsec_wrong")
    t = int(time.time()) - 301
    stale_sig = SCHEMES["stripe"].compute(SECRETS["stripe"], SignedRequest("POST", url, {}, body), str(t))
    stale = {"Stripe-Signature": f"t={t},v1={stale_sig}"}
    for headers, reason in ((forged, "bad_signature"), (stale, "stale_timestamp"), ({}, "missing_signature")):
        status, answer = await post(http, server, "stripe", body, headers)
        assert (status, answer["error"]) == (401, reason)
    assert CONNECTOR_RECORDS.labels("stripe", "webhook", "unauthorized")._value.get() - before == 3
    assert await end_offsets(bootstrap, RAW[SourceKind.BILLING]) == start
    assert await end_offsets(bootstrap, DEAD_LETTER) == dl_start  # unauthenticated bytes are not stored


async def test_vendor_without_secret_is_refused(server, http):
    status, answer = await post(http, server, "zendesk", b'{"id": 1, "ticket_id": 2}', {})
    assert (status, answer["error"]) == (401, "no_secret")


async def test_allow_unsigned_for_local_demo(topics, parsers, http):
    config = WebhookConfig(signatures=SignatureConfig(allow_unsigned=frozenset({"zendesk"})))
    async with WebhookServer(topics, port=0, config=config) as srv:
        ticket_event = {"id": 5501, "ticket_id": 77, "type": "ticket.status_changed", "timestamp": 1760000000}
        status, answer = await post(http, srv, "zendesk", json.dumps(ticket_event).encode(), {})
        assert status == 200 and answer["accepted"] == 1
        status, answer = await post(http, srv, "stripe", json.dumps(stripe_event(3)).encode(), {})
        assert status == 401  # only the vendor named is open


@pytest.mark.parametrize("body,reason", [
    (b"this is not json", "not_json"),
    (b'{"truncated": ', "not_json"),
    (b"42", None),
    (b"[1, 2]", "not_an_object"),
    (b'"just a string"', None),
])
async def test_unusable_body_is_400_and_dead_lettered_with_the_body(server, http, body, reason):
    dl_start = await end_offsets(server.sink.bootstrap_servers, DEAD_LETTER)
    status, answer = await post(http, server, "stripe", body)
    assert status == 400
    if reason:
        assert answer["error"] == reason
    got = await read_from(server.sink.bootstrap_servers, dl_start, expect=1)
    letters = [DeadLetter.from_json(m.value) for m in got]
    assert [d.dead_letter_id for d in letters] == [answer["dead_letter_id"]]
    assert letters[0].original == body.decode() and letters[0].vendor == "stripe"
    assert letters[0].reason == answer["error"] and letters[0].stage == "connector"


async def test_empty_delivery_is_accepted_with_nothing_to_record(server, http):
    status, answer = await post(http, server, "hubspot", b"[]")
    assert (status, answer) == (200, {"accepted": 0, "event_ids": [], "ignored": 0, "dead_lettered": []})


def _garbage(rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
    if kind == 1:
        return b"[" * 5000 + b"]" * 5000  # deep nesting
    if kind == 2:
        return json.dumps({"id": None, "customer": [1, {"x": "\u0000"}], "n": 10**40}).encode()
    if kind == 3:
        return b'{"id": "evt_\xff\xfe", "customer": "c"}'  # invalid UTF-8 inside a string
    if kind == 4:
        return json.dumps([rng.random() for _ in range(50)]).encode()
    return b""


async def test_fuzzed_bodies_never_crash_and_never_vanish(server, http):
    rng = random.Random(20240611)
    bootstrap = server.sink.bootstrap_servers
    dl_start = await end_offsets(bootstrap, DEAD_LETTER)
    statuses = []
    for vendor in ("stripe", "hubspot", "segment", "salesforce"):
        for _ in range(8):
            status, _answer = await post(http, server, vendor, _garbage(rng))
            statuses.append(status)
    assert set(statuses) <= {200, 400}, statuses
    rejected = statuses.count(400)
    assert rejected > 0
    letters = await read_from(bootstrap, dl_start, expect=rejected)
    assert len(letters) == rejected  # every 400 left its body in the dead-letter topic
    async with http.get(f"{server.url}/healthz") as resp:
        assert resp.status == 200


async def test_health_ready_metrics_and_unknown_vendor(server, http):
    async with http.get(f"{server.url}/healthz") as resp:
        assert resp.status == 200
    async with http.get(f"{server.url}/readyz") as resp:
        assert resp.status == 200 and (await resp.json())["ready"] is True
    async with http.get(f"{server.url}/metrics") as resp:
        text = await resp.text()
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
        assert 'lifecycle_connector_records_total{outcome="produced",transport="webhook",vendor="stripe"}' in text
        assert 'lifecycle_connector_up{transport="webhook",vendor="stripe"} 1.0' in text
    async with http.post(f"{server.url}/webhooks/mailchimp", data=b"{}") as resp:
        assert resp.status == 404
    async with http.get(f"{server.url}/webhooks/stripe") as resp:
        assert resp.status == 405


async def test_body_over_the_limit_is_413(topics, parsers, http):
    config = WebhookConfig(signatures=SignatureConfig(allow_unsigned=frozenset({"segment"})), max_body_bytes=1024)
    async with WebhookServer(topics, port=0, config=config) as srv:
        async with http.post(f"{srv.url}/webhooks/segment", data=b"x" * 5000) as resp:
            assert resp.status == 413


async def test_not_ready_without_kafka_and_503_instead_of_accepting(http):
    from aiohttp import web

    sink = RecordSink("127.0.0.1:1")  # never started: no producer
    app = create_app(sink, WebhookConfig(signatures=SignatureConfig(allow_unsigned=frozenset({"segment"}))))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
            assert resp.status == 503
        async with http.post(f"http://127.0.0.1:{port}/webhooks/segment",
                             data=b'{"messageId": "m1", "userId": "u1", "type": "track"}') as resp:
            assert resp.status == 503  # the vendor will retry; nothing was claimed as received
    finally:
        await runner.cleanup()
