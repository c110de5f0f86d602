"""The reports as JSON over HTTP, mounted on the worker's web server.

Same queries and options as ``lifecycle report``: ``?since=2024-04-01&until=...``
and so on. Bad parameters answer 400 with ``{"error": ...}``, an unknown account
404, an unreachable database 503. Queries block, so they run in a thread and
never stall the event loop the Faust worker shares.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from functools import cache
from typing import Any

from aiohttp import web
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from pipeline.journey import JourneyDefinition, JourneyError, load_journey
from pipeline.readmodel.queries import (
    AccountNotFound,
    Period,
    Report,
    account_timeline,
    churn_after_handoff,
    funnel,
    handoff_health,
    parse_instant,
    sla_compliance,
    speed_to_stage,
    time_in_stage,
)
from pipeline.readmodel.render import to_json
from pipeline.settings import Settings

PERIOD_PARAMS = ("since", "until")
CHURN_PARAMS = (*PERIOD_PARAMS, "window", "as_of", "from_stage", "to_stage", "churn_stage")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadParam(ValueError):
    """A query parameter that cannot be used; answered with 400."""


def add_routes(
    app: web.Application,
    engine_factory: Callable[[], Engine],
    *,
    journey: JourneyDefinition | None = None,
) -> None:
    """Mount ``/api/accounts/{account_id}/timeline`` and ``/api/reports/*`` on ``app``.

    ``engine_factory`` is called per request, inside the worker thread; return a
    shared engine from it (engines pool their connections). The journey defaults
    to ``$LIFECYCLE_JOURNEY`` or the shipped one, loaded on first use.
    """

    @cache
    def get_journey() -> JourneyDefinition:
        return journey or load_journey(Settings.from_env().journey_path)

    def report(params: tuple[str, ...], build: Callable[[Engine, Mapping[str, Any]], Report]) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                args = _parse(request, params)
                result = await asyncio.to_thread(lambda: build(engine_factory(), args))
            except (BadParam, JourneyError) as exc:
                return _error(400, str(exc))
            except AccountNotFound as exc:
                return _error(404, str(exc))
            except ValueError as exc:
                return _error(400, str(exc))
            except SQLAlchemyError as exc:
                return _error(503, f"read model unavailable: {exc.__class__.__name__}: {exc}".splitlines()[0])
            return web.Response(body=to_json(result), content_type="application/json")

        return handler

    app.router.add_get("/api/accounts/{account_id}/timeline", report(
        (), lambda e, a: account_timeline(e, a["account_id"])))
    app.router.add_get("/api/reports/funnel", report(
        PERIOD_PARAMS, lambda e, a: funnel(e, a["period"], get_journey())))
    app.router.add_get("/api/reports/time-in-stage", report(
        PERIOD_PARAMS, lambda e, a: time_in_stage(e, a["period"], get_journey())))
    app.router.add_get("/api/reports/speed", report(
        PERIOD_PARAMS, lambda e, a: speed_to_stage(e, a["period"], get_journey())))
    app.router.add_get("/api/reports/sla", report(
        PERIOD_PARAMS, lambda e, a: sla_compliance(e, a["period"], get_journey())))
    app.router.add_get("/api/reports/handoffs", report(
        PERIOD_PARAMS, lambda e, a: handoff_health(e, a["period"])))
    app.router.add_get("/api/reports/churn", report(
        CHURN_PARAMS, lambda e, a: churn_after_handoff(
            e, a["period"], a["windows"], as_of=a["as_of"],
            **{k: a[k] for k in ("from_stage", "to_stage", "churn_stage") if a[k]})))


def _parse(request: web.Request, allowed: tuple[str, ...]) -> dict[str, Any]:
    query = request.query
    unknown = sorted(set(query) - set(allowed))
    if unknown:
        hint = f"; allowed: {', '.join(allowed)}" if allowed else "; this endpoint takes none"
        raise BadParam(f"unknown query parameter(s) {', '.join(unknown)}{hint}")
    for name in set(query):
        if name != "window" and len(query.getall(name)) > 1:
            raise BadParam(f"{name} given more than once")
    args: dict[str, Any] = dict(request.match_info)
    args["period"] = Period(_instant(query, "since"), _instant(query, "until"))
    args["as_of"] = _instant(query, "as_of")
    args["windows"] = _windows(query.getall("window", []))
    for name in ("from_stage", "to_stage", "churn_stage"):
        args[name] = query.get(name) or None
    return args


def _instant(query: Mapping[str, str], name: str) -> datetime | None:
    text = query.get(name)
    if text is None or text == "":
        return None
    try:
        return parse_instant(text, name)
    except ValueError as exc:
        raise BadParam(str(exc)) from None


def _windows(values: list[str]) -> tuple[int, ...]:
    if not values:
        return (30, 90)
    out = []
    for text in (part for v in values for part in v.split(",")):
        try:
            days = int(text)
        except ValueError:
            raise BadParam(f"window: {text!r} is not a whole number of days") from None
        if days <= 0:
            raise BadParam(f"window: {days} must be a positive number of days")
        out.append(days)
    return tuple(out)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status)
