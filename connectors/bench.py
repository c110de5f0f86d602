"""Throughput of each transport into a real broker, in records per second.

``bench_transports(bootstrap, n)`` runs, one after another in this process:

* ``webhook``: n signed Stripe events POSTed one per request (32 concurrent, from a
  child process) to the receiver on loopback; each answer waits for Kafka's ack.
* ``file``: an n-line Segment NDJSON export replayed through ``replay_file``.
* ``poll``: n Stripe events served 100 a page by a loopback list endpoint with
  Stripe's pagination, pulled by the polling loop (checkpoint after every page).

Each figure is records acknowledged by Kafka divided by wall-clock time.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from connectors.poll import CheckpointStore, PollConfig, Poller
from connectors.registry import strategies_for
from connectors.replay import replay_file
from connectors.signatures import SCHEMES, SignatureConfig, SignedRequest
from connectors.sink import RecordSink
from connectors.webhook import WebhookConfig, WebhookServer

_SECRET = "whsec_bench"


def _stripe_event(i: int) -> dict[str, Any]:
    return {"id": f"evt_bench_{i:08d}", "object": "event", "type": "invoice.paid", "created": 1_700_000_000 + i,
            "livemode": True, "data": {"object": {"id": f"in_{i}", "object": "invoice",
                                                  "customer": f"cus_{i % 500}", "amount_paid": 4900}}}


async def _webhook_client(url: str, n: int, concurrency: int) -> tuple[int, float]:
    """Sign and POST n Stripe events, ``concurrency`` at a time; (accepted, seconds)."""
    bodies = [orjson.dumps(_stripe_event(i)) for i in range(n)]
    accepted = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        async def client(share: list[bytes]) -> None:
            nonlocal accepted
            for body in share:
                headers = SCHEMES["stripe"].sign(_SECRET, SignedRequest("POST", url, {}, body))
                async with http.post(url, data=body, headers=headers) as resp:
                    if resp.status == 200:
                        accepted += (await resp.json())["accepted"]

        started = time.perf_counter()
        await asyncio.gather(*(client(bodies[k::concurrency]) for k in range(concurrency)))
        return accepted, time.perf_counter() - started


async def bench_webhook(bootstrap: str, n: int, concurrency: int = 32) -> float:
    """The client runs in a child process so that it does not take the receiver's CPU."""
    config = WebhookConfig(signatures=SignatureConfig(secrets={"stripe": _SECRET}))
    async with WebhookServer(bootstrap, host="127.0.0.1", port=0, config=config) as server:
        code = ("import asyncio, json, sys; from connectors.bench import _webhook_client; "
                f"print(json.dumps(asyncio.run(_webhook_client({server.url + '/webhooks/stripe'!r}, {n}, {concurrency}))))")
        child = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE,
                                                     cwd=str(Path(__file__).resolve().parents[1]))
        out, _ = await child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"webhook bench client failed with exit code {child.returncode}")
        accepted, elapsed = orjson.loads(out.strip().splitlines()[-1])
    return accepted / elapsed


async def bench_file(bootstrap: str, n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "segment.ndjson"
        with open(path, "wb") as f:
            for i in range(n):
                f.write(orjson.dumps({"type": "track", "messageId": f"bench-{i}", "userId": f"user-{i % 500}",
                                      "event": "Report Built", "timestamp": "2024-03-01T10:00:00Z",
                                      "properties": {"n": i}}) + b"\n")
        async with RecordSink(bootstrap, client_id="bench-file") as sink:
            summary = await replay_file(sink, path, "segment", progress=False)
    return summary.rate


async def bench_poll(bootstrap: str, n: int) -> float:
    events = [_stripe_event(i) for i in reversed(range(n))]  # newest first, like Stripe
    index = {e["id"]: i for i, e in enumerate(events)}

    async def list_events(request: web.Request) -> web.Response:
        q, limit = request.query, int(request.query.get("limit", 10))
        if "ending_before" in q:
            i = index[q["ending_before"]]
            page, more = events[max(0, i - limit):i], i - limit > 0
        else:
            i = index[q["starting_after"]] + 1 if "starting_after" in q else 0
            page, more = events[i:i + limit], i + limit < len(events)
        return web.Response(body=orjson.dumps({"object": "list", "has_more": more, "data": page}),
                            content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/events", list_events)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = PollConfig(base_url=f"http://127.0.0.1:{runner.addresses[0][1]}", token="sk_bench", page_size=100)
            async with RecordSink(bootstrap, client_id="bench-poll") as sink:
                poller = Poller(sink, strategies_for("stripe", config), config, CheckpointStore(Path(tmp) / "cp.json"))
                started = time.perf_counter()
                summary = await poller.run(once=True)
                elapsed = time.perf_counter() - started
    finally:
        await runner.cleanup()
    return summary.records / elapsed


def bench_transports(bootstrap: str, n: int = 20_000) -> dict[str, float]:
    """Records/s of each transport (topics must exist: ``pipeline.runtime.create_topics``)."""

    async def run() -> dict[str, float]:
        return {"webhook": await bench_webhook(bootstrap, n), "file": await bench_file(bootstrap, n),
                "poll": await bench_poll(bootstrap, n)}

    return asyncio.run(run())


if __name__ == "__main__":  # python -m connectors.bench [n]
    import sys

    from pipeline.broker import EmbeddedBroker
    from pipeline.topics import ensure_topics
    from pipeline.settings import topics_for

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap_servers, topics_for().all_names(), partitions=1)  # the sink's namespace
        for name, rate in bench_transports(broker.bootstrap_servers, count).items():
            print(f"{name:8s} {rate:10,.0f} records/s  (n={count})")
