"""REST polling against a loopback server that pages recorded vendor listings like the vendor does.

The fixtures under ``tests/fixtures/pages/<vendor>/`` are full listings in each
vendor's response shape; :class:`FakeVendorApi` serves them with the vendor's own
pagination (Stripe newest-first ``starting_after``/``ending_before``, HubSpot search
``after``, Zendesk ``start_time``/``end_time``, Salesforce ``nextRecordsUrl``, the
Segment export cursor), checks credentials, and can inject 429s, 5xx, expired
locators, or hang a request so a poll can be stopped midway.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from connectors.cursors import iso_ms as _iso_ms
from connectors.poll import CheckpointStore, PollConfig, PollError, Poller, parse_retry_after, past_watermark
from connectors.registry import parser_for, strategies_for
from connectors.sink import RecordSink
from pipeline.metrics import CONNECTOR_RECORDS
from schemas.events import DeadLetter, RawRecord
from schemas.topics import DEAD_LETTER, RAW
from tests.connectors.transport_helpers import end_offsets, event_id, header, parsers, read_from, topics  # noqa: F401

pytestmark = pytest.mark.integration

PAGES = Path(__file__).resolve().parents[1] / "fixtures" / "pages"
TOKEN = "test-token"
VENDORS = ["stripe", "hubspot", "zendesk", "salesforce", "segment"]


def load(vendor: str, name: str) -> Any:
    return json.loads((PAGES / vendor / name).read_text())


class FakeVendorApi:
    """The five list endpoints over in-memory copies of the fixtures."""

    def __init__(self, page: int = 4):
        self.page = page
        self.stripe = load("stripe", "events.json")["data"]                       # newest first
        self.hubspot = {t: load("hubspot", f"{t}.json")["results"] for t in ("deals", "companies", "contacts")}
        self.zendesk = load("zendesk", "ticket_events.json")["ticket_events"]
        self.salesforce = load("salesforce", "opportunity.json")["records"]
        self.segment = [line for line in (PAGES / "segment" / "export.ndjson").read_bytes().split(b"\n") if line]
        self.objects: dict[str, Any] = {}     # single-object reads (enrichment): path → JSON body
        self.log: list[tuple[float, str, int]] = []
        self.faults: list[tuple[str, int, dict[str, str]]] = []   # (path prefix, status, headers), used once each
        self.hang_at: int | None = None       # the n-th data request never answers
        self.hanging = asyncio.Event()
        self.release = asyncio.Event()
        self._locators: dict[str, list[dict[str, Any]]] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> FakeVendorApi:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/v1/events", self.stripe_events)
        app.router.add_post("/crm/v3/objects/{type}/search", self.hubspot_search)
        app.router.add_get("/api/v2/incremental/ticket_events.json", self.zendesk_events)
        app.router.add_get("/services/data/v60.0/query", self.salesforce_query)
        app.router.add_get("/services/data/v60.0/query/{locator}", self.salesforce_more)
        app.router.add_get("/v1/export", self.segment_export)
        app.router.add_get("/crm/v3/objects/{type}/{id}", self.single_object)
        app.router.add_get("/api/v2/tickets/{id}", self.single_object)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        for i, (prefix, status, headers) in enumerate(self.faults):
            if request.path.startswith(prefix):
                del self.faults[i]
                self.log.append((time.monotonic(), request.path, status))
                return web.Response(status=status, headers=headers, text="injected")
        if auth not in (f"Bearer {TOKEN}", "Basic YWdlbnRAYWNtZS5jb20vdG9rZW46enQ="):  # agent@acme.com/token:zt
            return web.json_response({"error": "Couldn't authenticate you"}, status=401)
        self.log.append((time.monotonic(), request.path, 200))
        if self.hang_at is not None and sum(1 for e in self.log if e[2] == 200) >= self.hang_at:
            self.hanging.set()
            await self.release.wait()  # the poller is stopped while waiting here
        return await handler(request)

    # -- Stripe: newest first; starting_after → older, ending_before → newer (the ones just newer)
    async def stripe_events(self, request: web.Request) -> web.Response:
        q, data = request.query, self.stripe
        limit = int(q.get("limit", 10))
        ids = [e["id"] for e in data]
        if "ending_before" in q:
            i = ids.index(q["ending_before"])
            items, more = data[max(0, i - limit):i], i - limit > 0
        else:
            i = ids.index(q["starting_after"]) + 1 if "starting_after" in q else 0
            items, more = data[i:i + limit], i + limit < len(data)
        return web.json_response({"object": "list", "url": "/v1/events", "has_more": more, "data": items})

    # -- HubSpot search: filter GTE on the modified property, sort ascending, offset paging
    async def hubspot_search(self, request: web.Request) -> web.Response:
        body = await request.json()
        since = int(body["filterGroups"][0]["filters"][0]["value"])
        assert body["sorts"][0]["direction"] == "ASCENDING"
        rows = sorted((o for o in self.hubspot[request.match_info["type"]] if _iso_ms(o["updatedAt"]) >= since),
                      key=lambda o: (_iso_ms(o["updatedAt"]), int(o["id"])))
        offset, limit = int(body.get("after") or 0), int(body["limit"])
        page = rows[offset:offset + limit]
        out: dict[str, Any] = {"total": len(rows), "results": page}
        if offset + limit < len(rows):
            out["paging"] = {"next": {"after": str(offset + limit), "link": "?after=" + str(offset + limit)}}
        return web.json_response(out)

    # -- Zendesk incremental: start_time inclusive, end_time = last item's time (boundary items come again)
    async def zendesk_events(self, request: web.Request) -> web.Response:
        start = int(request.query["start_time"])
        rows = [e for e in self.zendesk if e["timestamp"] >= start]
        page = rows[:self.page]
        end = page[-1]["timestamp"] if page else start
        return web.json_response({"ticket_events": page, "count": len(page), "end_time": end,
                                  "end_of_stream": len(page) < self.page,
                                  "next_page": f"{self.url}/api/v2/incremental/ticket_events.json?start_time={end}"})

    # -- Salesforce SOQL with query locators
    async def salesforce_query(self, request: web.Request) -> web.Response:
        soql = request.query["q"]
        assert soql.startswith("SELECT ") and "FROM Opportunity" in soql and "ORDER BY SystemModstamp ASC, Id ASC" in soql
        m = re.search(r"SystemModstamp >= (\S+)", soql)
        rows = [r for r in self.salesforce if not m or _iso_ms(r["SystemModstamp"]) >= _iso_ms(m.group(1))]
        rows.sort(key=lambda r: (r["SystemModstamp"], r["Id"]))
        return self._sf_page(rows)

    async def salesforce_more(self, request: web.Request) -> web.Response:
        rows = self._locators.pop(request.match_info["locator"], None)
        if rows is None:
            return web.json_response([{"errorCode": "INVALID_QUERY_LOCATOR", "message": "invalid query locator"}],
                                     status=400)
        return self._sf_page(rows)

    def _sf_page(self, rows: list[dict[str, Any]]) -> web.Response:
        page, rest = rows[:self.page], rows[self.page:]
        out: dict[str, Any] = {"totalSize": len(rows), "done": not rest, "records": page}
        if rest:
            locator = f"01gLOC{len(self._locators) + len(self.log)}-{self.page}"
            self._locators[locator] = rest
            out["nextRecordsUrl"] = f"/services/data/v60.0/query/{locator}"
        return web.json_response(out)

    # -- one object by id (HubSpot CRM v3, Zendesk tickets): what enrichment reads
    async def single_object(self, request: web.Request) -> web.Response:
        body = self.objects.get(request.path)
        if body is None:
            return web.json_response({"status": "error", "message": "resource not found"}, status=404)
        return web.json_response(body)

    # -- Segment-spec NDJSON export with an opaque cursor
    async def segment_export(self, request: web.Request) -> web.Response:
        start = int(request.query.get("cursor", 0))
        limit = min(int(request.query.get("limit", 100)), self.page)
        lines = self.segment[start:start + limit]
        end = start + len(lines)
        return web.Response(body=b"\n".join(lines) + (b"\n" if lines else b""), content_type="application/x-ndjson",
                            headers={"X-Next-Cursor": str(end), "X-Has-More": str(end < len(self.segment)).lower()})


# --- fixtures and helpers ----------------------------------------------------------------------

@pytest.fixture
async def api():
    server = await FakeVendorApi().start()
    yield server
    server.release.set()
    await server.stop()


@pytest.fixture
async def sink(topics, parsers):
    async with RecordSink(topics) as s:
        yield s


def config(api: FakeVendorApi, vendor: str, **kw: Any) -> PollConfig:
    auth = {"username": "agent@acme.com/token", "password": "zt"} if vendor == "zendesk" else {"token": TOKEN}
    options = {"objects": ["Opportunity"]} if vendor == "salesforce" else {}
    return PollConfig(base_url=api.url, page_size=4, interval=0.05, backoff_base=0.02, backoff_cap=0.1,
                      options=options, **auth, **kw)


def poller(sink: RecordSink, api: FakeVendorApi, vendor: str, checkpoint: Path, **kw: Any) -> Poller:
    cfg = config(api, vendor, **kw)
    return Poller(sink, strategies_for(vendor, cfg), cfg, CheckpointStore(checkpoint))


def native_items(api: FakeVendorApi, vendor: str) -> list[dict[str, Any]]:
    """Every item the vendor holds, oldest first (the order a poll should produce them in)."""
    if vendor == "stripe":
        return list(reversed(api.stripe))
    if vendor == "hubspot":
        return [o for t in ("deals", "companies", "contacts") for o in api.hubspot[t]]
    if vendor == "zendesk":
        return list(api.zendesk)
    if vendor == "salesforce":
        return list(api.salesforce)
    out = []
    for line in api.segment:
        try:
            out.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            pass
    return out


def expected_ids(api: FakeVendorApi, vendor: str) -> list[str]:
    p = parser_for(vendor)
    return [p.event_id(x) for item in native_items(api, vendor) for x in p.split(item)]


async def polled(sink: RecordSink | str, vendor: str, start: dict, expect: int) -> list[Any]:
    bootstrap = sink if isinstance(sink, str) else sink.bootstrap_servers
    got = await read_from(bootstrap, start, expect=expect)
    return [m for m in got if header(m, "vendor") == vendor and header(m, "transport") == "poll"]


def topic_of(vendor: str) -> str:
    return RAW[parser_for(vendor).source]


# --- tests -------------------------------------------------------------------------------------

@pytest.mark.parametrize("vendor", VENDORS)
async def test_poll_once_produces_every_record_once_in_order(sink, api, tmp_path, vendor):
    start = await end_offsets(sink.bootstrap_servers, topic_of(vendor))
    want = expected_ids(api, vendor)
    summary = await poller(sink, api, vendor, tmp_path / "cp.json").run(once=True)
    got = await polled(sink, vendor, start, len(want))
    ids = [event_id(m) for m in got]
    assert sorted(ids) == sorted(want) and len(set(ids)) == len(want)  # no gap, no duplicate
    assert summary.records == len(want) and summary.pages >= 3
    # per key (per partition), records are in the vendor's time order
    for part in {m.partition for m in got}:
        in_part = [event_id(m) for m in sorted(got, key=lambda m: m.offset) if m.partition == part]
        assert in_part == [i for i in want if i in set(in_part)]
    payloads = {RawRecord.from_json(m.value).event_id: RawRecord.from_json(m.value).payload for m in got}
    p = parser_for(vendor)
    for item in native_items(api, vendor):
        assert payloads[p.event_id(item)] == item  # untouched
    assert json.loads((tmp_path / "cp.json").read_text())  # a checkpoint was written


@pytest.mark.parametrize("vendor,hang_at", [("stripe", 7), ("hubspot", 3), ("zendesk", 3), ("salesforce", 3),
                                             ("segment", 3)])
async def test_stopped_midway_resumes_without_gap_or_duplicate(sink, api, tmp_path, vendor, hang_at):
    start = await end_offsets(sink.bootstrap_servers, topic_of(vendor))
    want = expected_ids(api, vendor)
    cp = tmp_path / "cp.json"
    api.hang_at = hang_at
    first_run = poller(sink, api, vendor, cp)
    task = asyncio.create_task(first_run.run())
    await asyncio.wait_for(api.hanging.wait(), 10)
    # the poller fetches page n+1 while Kafka acknowledges page n; let it commit page n, then kill it
    # while it waits for the hung request (a kill before the commit re-reads page n: at-least-once)
    async def committed() -> None:
        while first_run.summary.pages < hang_at - 1:
            await asyncio.sleep(0.01)
    await asyncio.wait_for(committed(), 10)
    task.cancel()  # killed while a request is in flight
    with pytest.raises(asyncio.CancelledError):
        await task
    first = await polled(sink, vendor, start, 1)
    assert 0 < len(first) < len(want), "the first run should have stopped midway"
    saved = json.loads(cp.read_text())

    api.hang_at, api.hanging = None, asyncio.Event()
    resumed = poller(sink, api, vendor, cp)
    assert resumed.checkpoint.load() == saved
    await resumed.run(once=True)
    got = await polled(sink, vendor, start, len(want))
    ids = [event_id(m) for m in got]
    assert sorted(ids) == sorted(want), "gap or duplicate after resume"


@pytest.mark.parametrize("vendor", VENDORS)
async def test_next_poll_picks_up_only_what_is_new(sink, api, tmp_path, vendor):
    cp = tmp_path / "cp.json"
    await poller(sink, api, vendor, cp).run(once=True)
    start = await end_offsets(sink.bootstrap_servers, topic_of(vendor))
    new = add_new_items(api, vendor)
    summary = await poller(sink, api, vendor, cp).run(once=True)
    got = await polled(sink, vendor, start, len(new))
    p = parser_for(vendor)
    assert sorted(event_id(m) for m in got) == sorted(p.event_id(x) for x in new)
    assert summary.records == len(new)


def add_new_items(api: FakeVendorApi, vendor: str) -> list[dict[str, Any]]:
    later = "2024-03-09T10:00:00.000Z"
    if vendor == "stripe":
        new = []
        for i in range(6):
            e = copy.deepcopy(api.stripe[-1])
            e["id"], e["created"] = f"evt_1Pnew{i}", api.stripe[0]["created"] + 60 * (i + 1)
            api.stripe.insert(0, e)
            new.append(e)
        return new
    if vendor == "hubspot":
        changed = copy.deepcopy(api.hubspot["deals"][2])           # an old deal moves stage
        changed["properties"]["dealstage"], changed["updatedAt"] = "closedlost", later
        api.hubspot["deals"][2] = changed
        fresh = copy.deepcopy(changed)
        fresh["id"], fresh["createdAt"] = "1999", later
        api.hubspot["deals"].append(fresh)
        return [changed, fresh]
    if vendor == "zendesk":
        last = api.zendesk[-1]
        new = [dict(copy.deepcopy(last), id=990000 + i, timestamp=last["timestamp"] + 30 * i) for i in range(5)]
        api.zendesk.extend(new)  # the first shares the old end_time second
        return new
    if vendor == "salesforce":
        rec = copy.deepcopy(api.salesforce[0])
        rec["StageName"], rec["SystemModstamp"] = "Closed Won", "2024-03-09T10:00:00.000+0000"
        api.salesforce[0] = rec
        return [rec]
    new = [{"type": "track", "messageId": f"ajs-late-{i}", "userId": "user_1", "event": "Export Created",
            "timestamp": later} for i in range(5)]
    api.segment.extend(orjson.dumps(n) for n in new)
    return new


async def test_rate_limit_retry_after_and_server_errors(sink, api, tmp_path):
    api.faults = [("/v1/events", 429, {"Retry-After": "1"}), ("/v1/events", 503, {}), ("/v1/events", 502, {})]
    before = CONNECTOR_RECORDS.labels("stripe", "poll", "rate_limited")._value.get()
    summary = await poller(sink, api, "stripe", tmp_path / "cp.json").run(once=True)
    assert summary.records == len(api.stripe)
    times = [t for t, path, _ in api.log if path == "/v1/events"]
    statuses = [s for _, path, s in api.log if path == "/v1/events"]
    assert statuses[:4] == [429, 503, 502, 200]
    assert times[1] - times[0] >= 0.95  # waited as Retry-After asked
    assert CONNECTOR_RECORDS.labels("stripe", "poll", "rate_limited")._value.get() - before == 1


async def test_retries_give_up_with_a_clear_error(sink, api, tmp_path):
    api.faults = [("/api/v2/incremental", 500, {})] * 3
    p = poller(sink, api, "zendesk", tmp_path / "cp.json", max_attempts=3)
    with pytest.raises(PollError, match="after 3 attempts"):
        await p.run(once=True)
    assert not (tmp_path / "cp.json").exists()


def test_retry_after_forms():
    now = datetime(2024, 3, 1, 12, 0, 0, tzinfo=timezone.utc).timestamp()
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("Fri, 01 Mar 2024 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Fri, 01 Mar 2024 11:00:00 GMT", now) == 0.0  # in the past: go now
    assert parse_retry_after("soon", now) is None and parse_retry_after(None) is None


async def test_bad_credentials_stop_with_a_clear_error(sink, api, tmp_path):
    cfg = PollConfig(base_url=api.url, token="wrong", page_size=4)
    p = Poller(sink, strategies_for("hubspot", cfg), cfg, CheckpointStore(tmp_path / "cp.json"))
    with pytest.raises(PollError, match="HTTP 401"):
        await p.run(once=True)


async def test_expired_salesforce_locator_recovers_from_watermark(sink, api, tmp_path):
    start = await end_offsets(sink.bootstrap_servers, topic_of("salesforce"))
    api.faults = [("/services/data/v60.0/query/", 400, {})]
    await poller(sink, api, "salesforce", tmp_path / "cp.json").run(once=True)
    want = expected_ids(api, "salesforce")
    got = await polled(sink, "salesforce", start, len(want))
    assert sorted(event_id(m) for m in got) == sorted(want)


async def test_malformed_export_line_is_dead_lettered(sink, api, tmp_path):
    dl_start = await end_offsets(sink.bootstrap_servers, DEAD_LETTER)
    summary = await poller(sink, api, "segment", tmp_path / "cp.json").run(once=True)
    assert summary.dead_letters == 1
    letters = [DeadLetter.from_json(m.value) for m in await read_from(sink.bootstrap_servers, dl_start, expect=1)]
    assert [d.reason for d in letters] == ["not_json"]
    assert letters[0].original.startswith('{"type": "track", "messageId": "broken-line"')
    assert "export page" in letters[0].detail


async def test_unusable_page_is_kept_and_stops_the_poll(sink, api, tmp_path):
    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>maintenance</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/v1/events", html)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    dl_start = await end_offsets(sink.bootstrap_servers, DEAD_LETTER)
    try:
        cfg = PollConfig(base_url=f"http://127.0.0.1:{runner.addresses[0][1]}", token=TOKEN)
        p = Poller(sink, strategies_for("stripe", cfg), cfg, CheckpointStore(tmp_path / "cp.json"))
        with pytest.raises(PollError, match="unusable response"):
            await p.run(once=True)
    finally:
        await runner.cleanup()
    letters = [DeadLetter.from_json(m.value) for m in await read_from(sink.bootstrap_servers, dl_start, expect=1)]
    assert letters[0].original == "<html>maintenance</html>" and letters[0].reason == "not_json"
    assert not (tmp_path / "cp.json").exists()


def test_checkpoint_is_replaced_atomically_and_refuses_garbage(tmp_path):
    store = CheckpointStore(tmp_path / "state" / "cp.json")
    store.save("events", {"newest": "evt_1"})
    store.save("deals", {"since": 5, "ids": ["a"]})
    assert CheckpointStore(tmp_path / "state" / "cp.json").load() == {"events": {"newest": "evt_1"},
                                                                      "deals": {"since": 5, "ids": ["a"]}}
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["cp.json"]  # no temp files left behind
    (tmp_path / "bad.json").write_text('{"events": ')
    with pytest.raises(PollError, match="unreadable"):
        CheckpointStore(tmp_path / "bad.json").load()


def test_watermark_drops_boundary_repeats_only():
    items = [{"t": 1, "id": "a"}, {"t": 2, "id": "b"}, {"t": 2, "id": "c"}]
    fresh, cur = past_watermark(items, {}, lambda i: i["t"], lambda i: i["id"])
    assert fresh == items and cur == {"since": 2, "ids": ["b", "c"]}
    again = [{"t": 2, "id": "b"}, {"t": 2, "id": "c"}, {"t": 2, "id": "d"}, {"t": 3, "id": "e"}]
    fresh, cur = past_watermark(again, cur, lambda i: i["t"], lambda i: i["id"])
    assert [i["id"] for i in fresh] == ["d", "e"] and cur == {"since": 3, "ids": ["e"]}


async def test_cli_poll_once_then_resume_from_cursor_file(topics, parsers, api, tmp_path):
    from click.testing import CliRunner

    from connectors.cli import connect

    start = await end_offsets(topics, topic_of("zendesk"))
    cp = tmp_path / "zendesk.json"
    args = ["poll", "zendesk", "--bootstrap", topics, "--base-url", api.url, "--user", "agent@acme.com/token",
            "--password", "zt", "--cursor-file", str(cp), "--once", "--page-size", "4"]
    result = await asyncio.to_thread(CliRunner().invoke, connect, args)
    assert result.exit_code == 0, result.output
    want = expected_ids(api, "zendesk")
    assert f"{len(want)} records" in result.output and json.loads(cp.read_text())["ticket_events"]["since"]
    again = await asyncio.to_thread(CliRunner().invoke, connect, args)
    assert again.exit_code == 0 and " 0 records" in again.output  # nothing new: nothing produced
    got = await polled(topics, "zendesk", start, len(want))
    assert sorted(event_id(m) for m in got) == sorted(want)
    no_creds = await asyncio.to_thread(CliRunner().invoke, connect, ["poll", "stripe", "--bootstrap", topics,
                                                                      "--base-url", api.url, "--once"],
                                       env={"STRIPE_API_KEY": ""})
    assert no_creds.exit_code != 0 and "no credentials" in no_creds.output
