"""``lifecycle report ...``: the RevOps reports on the command line.

Every command takes ``--db URL`` (default ``$LIFECYCLE_DATABASE_URL``, else the
local SQLite file) and ``--format table|csv|json``. The schema is brought up to
date before reading, so a report on a fresh database is empty, not an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import wraps
from typing import Any

import click
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from pipeline.journey import JourneyDefinition, JourneyError, load_journey
from pipeline.readmodel.engine import ReadModelConfigError, make_engine, migrate
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
from pipeline.readmodel.render import FORMATS, render
from pipeline.settings import Settings


class Instant(click.ParamType):
    """A date or ISO 8601 datetime; UTC unless it carries an offset."""

    name = "DATE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_instant(str(value), name=param.name if param and param.name else "time")
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _common(fn: Callable[..., Report]) -> Callable[..., None]:
    """Add --db and --format, open the engine, print the report, and turn failures into messages."""

    @click.option("--db", "db_url", default=None, metavar="URL",
                  help="Read model database URL [env LIFECYCLE_DATABASE_URL; default sqlite:///lifecycle-data/readmodel.db]")
    @click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
                  help="table for people, csv (primary table) for sheets, json (everything) for tools")
    @wraps(fn)
    def command(db_url: str | None, fmt: str, **kwargs: Any) -> None:
        with _engine(db_url) as engine:
            try:
                report = fn(engine, **kwargs)
            except AccountNotFound as exc:
                raise click.ClickException(str(exc)) from None
            except ValueError as exc:
                raise click.UsageError(str(exc)) from None
            except SQLAlchemyError as exc:
                raise click.ClickException(f"reading the read model failed: {exc.__class__.__name__}: {exc}") from None
        click.echo(render(report, fmt), nl=False)  # type: ignore[arg-type]

    return command


@contextmanager
def _engine(url: str | None) -> Iterator[Engine]:
    try:
        engine = make_engine(url)
    except ReadModelConfigError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        try:
            migrate(engine)
        except SQLAlchemyError as exc:
            where = engine.url.render_as_string(hide_password=True)
            raise click.ClickException(f"cannot open the read model at {where}: {exc.__class__.__name__}: {exc}") from None
        yield engine
    finally:
        engine.dispose()


def _period(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--until", type=Instant(), default=None, help="End of the period, exclusive (UTC unless offset given)")(fn)
    return click.option("--since", type=Instant(), default=None, help="Start of the period, inclusive (e.g. 2024-04-01)")(fn)


def _journey_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--journey", "journey_path", default=None, metavar="PATH",
                        help="Journey definition [env LIFECYCLE_JOURNEY; default: the shipped journey]")(fn)


def _journey(path: str | None) -> JourneyDefinition:
    try:
        return load_journey(path or Settings.from_env().journey_path)
    except JourneyError as exc:
        raise click.UsageError(str(exc)) from None


def _make_period(since: datetime | None, until: datetime | None) -> Period:
    return Period(since=since, until=until)  # ValueError (since >= until) becomes a usage error


@click.group("report")
def report() -> None:
    """RevOps reports from the read model: timeline, funnel, time-in-stage, speed, sla, handoffs, churn."""


@report.command("timeline")
@click.argument("account_id")
@_common
def timeline_cmd(engine: Engine, account_id: str) -> Report:
    """Everything that happened to one account, in time order."""
    return account_timeline(engine, account_id)


@report.command("funnel")
@_period
@_journey_option
@_common
def funnel_cmd(engine: Engine, since: datetime | None, until: datetime | None, journey_path: str | None) -> Report:
    """Stage conversion for the accounts whose first stage entry falls in the period."""
    return funnel(engine, _make_period(since, until), _journey(journey_path))


@report.command("time-in-stage")
@_period
@_journey_option
@_common
def time_in_stage_cmd(engine: Engine, since: datetime | None, until: datetime | None,
                      journey_path: str | None) -> Report:
    """p50 / p90 time spent in each stage, for accounts leaving it in the period."""
    return time_in_stage(engine, _make_period(since, until), _journey(journey_path))


@report.command("speed")
@_period
@_journey_option
@_common
def speed_cmd(engine: Engine, since: datetime | None, until: datetime | None, journey_path: str | None) -> Report:
    """Median time from an account's first stage to each stage (speed-to-stage)."""
    return speed_to_stage(engine, _make_period(since, until), _journey(journey_path))


@report.command("sla")
@_period
@_journey_option
@_common
def sla_cmd(engine: Engine, since: datetime | None, until: datetime | None, journey_path: str | None) -> Report:
    """SLA compliance per SLA and per owner team (clocks started in the period)."""
    return sla_compliance(engine, _make_period(since, until), _journey(journey_path))


@report.command("handoffs")
@_period
@_common
def handoffs_cmd(engine: Engine, since: datetime | None, until: datetime | None) -> Report:
    """Handoffs opened in the period: open, late, dropped, by team pair."""
    return handoff_health(engine, _make_period(since, until))


@report.command("churn")
@_period
@click.option("--window", "windows", type=click.IntRange(min=1), multiple=True, default=(30, 90), show_default=True,
              help="Days after the handoff; repeat for several windows")
@click.option("--as-of", type=Instant(), default=None, help="Only count accounts whose window ended by then [default: now]")
@click.option("--from-stage", default="closed-won", show_default=True, help="Handoff transition's from stage")
@click.option("--to-stage", default="onboarding", show_default=True, help="Handoff transition's to stage")
@click.option("--churn-stage", default="churned", show_default=True)
@_common
def churn_cmd(engine: Engine, since: datetime | None, until: datetime | None, windows: tuple[int, ...],
              as_of: datetime | None, from_stage: str, to_stage: str, churn_stage: str) -> Report:
    """Churn within 30/90 days of the sales → customer success handoff."""
    return churn_after_handoff(engine, _make_period(since, until), windows, as_of=as_of,
                               from_stage=from_stage, to_stage=to_stage, churn_stage=churn_stage)
