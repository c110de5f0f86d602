"""The JSON API on a real aiohttp server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.engine import Engine

from pipeline.readmodel import ReadModelWriter, make_engine
from pipeline.readmodel.http import add_routes
from tests.readmodel import story


@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[TestClient]:
    ReadModelWriter(engine).apply(story.story())
    app = web.Application()
    add_routes(app, lambda: engine, journey=story.journey())
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as c:
        yield c


async def get_json(client: TestClient, path: str, status: int = 200) -> dict:
    resp = await client.get(path)
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    return await resp.json()


async def test_reports_answer_json(client: TestClient) -> None:
    funnel = await get_json(client, "/api/reports/funnel?since=2024-03-01&until=2024-04-01")
    assert funnel["cohort_size"] == 4
    assert {s["stage"]: s["conversion"] for s in funnel["stages"]}["SQL"] == 0.75

    tis = await get_json(client, "/api/reports/time-in-stage")
    assert {s["stage"]: s["p50_seconds"] for s in tis["stages"]}["MQL"] == 4.5 * story.DAY

    speed = await get_json(client, "/api/reports/speed?since=2024-03-01&until=2024-04-01")
    assert {s["stage"]: s["median_seconds"] for s in speed["stages"]}["closed-won"] == 10 * story.DAY

    sla = await get_json(client, "/api/reports/sla")
    assert {r["sla_id"]: r["compliance"] for r in sla["by_sla"]}["onboarding-complete"] == 0.6667

    handoffs = await get_json(client, "/api/reports/handoffs?since=2024-03-07")
    assert [(p["from_team"], p["to_team"], p["total"]) for p in handoffs["by_pair"]] == [
        ("sales", "customer_success", 3)]  # A2, B2, C1; B1 opened on 6 March


async def test_churn_takes_windows_and_as_of(client: TestClient) -> None:
    churn = await get_json(client, "/api/reports/churn?as_of=2024-04-20&window=30&window=60")
    assert churn["as_of"] == "2024-04-20T00:00:00Z"
    rows = {(r["segment"], r["window_days"]): (r["matured"], r["churned"]) for r in churn["rows"]}
    assert rows[("all", 30)] == (2, 0) and rows[("all", 60)] == (0, 0)
    comma = await get_json(client, "/api/reports/churn?as_of=2024-09-17&window=30,90")
    assert [r["window_days"] for r in comma["rows"] if r["segment"] == "all"] == [30, 90]


async def test_timeline(client: TestClient) -> None:
    tl = await get_json(client, "/api/accounts/A/timeline")
    assert tl["account_id"] == "A" and tl["current_stage"] == "churned"
    assert tl["entries"][0]["summary"] == "∅ → MQL" and tl["entries"][0]["at"] == "2024-03-01T00:00:00Z"
    assert "trigger_kind" in tl["entries"][0]["details"]
    missing = await get_json(client, "/api/accounts/nobody/timeline", status=404)
    assert missing["error"] == "no account 'nobody' in the read model"


@pytest.mark.parametrize("path, message", [
    ("/api/reports/funnel?since=tomorrow", "since: 'tomorrow' is not a date"),
    ("/api/reports/funnel?since=2024-05-01&until=2024-04-01", "must be before until"),
    ("/api/reports/funnel?sinse=2024-05-01", "unknown query parameter(s) sinse; allowed: since, until"),
    ("/api/reports/sla?since=2024-01-01&since=2024-02-01", "since given more than once"),
    ("/api/reports/churn?window=ninety", "window: 'ninety' is not a whole number of days"),
    ("/api/reports/churn?window=-5", "must be a positive number of days"),
    ("/api/accounts/A/timeline?format=csv", "this endpoint takes none"),
])
async def test_bad_parameters_are_400_with_a_clear_error(client: TestClient, path: str, message: str) -> None:
    body = await get_json(client, path, status=400)
    assert message in body["error"]


async def test_unreachable_database_is_503() -> None:
    engine = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2")
    app = web.Application()
    add_routes(app, lambda: engine, journey=story.journey())
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as c:
        body = await get_json(c, "/api/reports/handoffs", status=503)
    assert body["error"].startswith("read model unavailable: OperationalError")
    engine.dispose()
