"""``lifecycle whatif``: what a proposed journey would change, from the recorded history."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click

from pipeline.readmodel.cli import Instant
from pipeline.whatif.render import FORMATS


@click.command("whatif")
@click.option("--journey", "proposed", required=True, type=click.Path(dir_okay=False),
              help="The proposed journey file.")
@click.option("--baseline", default=None, type=click.Path(dir_okay=False),
              help="The current journey [env LIFECYCLE_JOURNEY; default: the shipped one].")
@click.option("--since", type=Instant(), default=None, help="Report period start, inclusive.")
@click.option("--until", type=Instant(), default=None,
              help="Report period end, exclusive; the history is replayed up to here (as of this instant).")
@click.option("--from-files", "files", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Export files or directories (NDJSON, JSON array, RawRecord JSONL, .gz) instead of the raw "
                   "topics. Repeatable.")
@click.option("--vendor", default=None, help="Vendor of NDJSON / JSON-array exports whose name does not say it.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--only-changed", is_flag=True, help="Table: only rows that differ.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a self-contained HTML page with the charts.")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Processes to replay in: 1 replays both journeys in one pass; 2 runs each journey in its own "
                   "process [default: 2 for a history of 20,000 records or more on a machine with 2 cores].")
@click.option("--no-progress", is_flag=True)
def whatif(proposed: str, baseline: str | None, since: datetime | None, until: datetime | None,
           files: tuple[Path, ...], vendor: str | None, fmt: str, only_changed: bool, html_path: Path | None,
           jobs: int | None, no_progress: bool) -> None:
    """Replay the recorded history (raw topics from the beginning, read without a consumer
    group, or --from-files) through the current and the PROPOSED journey, offline, and
    print what would change. Nothing is written to Kafka.

    The worker's settings apply: LIFECYCLE_TOPIC_NAMESPACE, LIFECYCLE_PARTITIONS, LIFECYCLE_FROZEN_NOW,
    LIFECYCLE_ALLOWED_LATENESS_SECONDS, LIFECYCLE_ACCEPT_TEST_MODE."""
    from connectors.replay import ReplayError
    from pipeline.journey import JourneyError
    from pipeline.settings import Settings
    from pipeline.whatif.html import render_html
    from pipeline.whatif.render import render
    from pipeline.whatif.run import WhatIfConfig, run_whatif

    settings = Settings.from_env()
    if since and until and since >= until:
        raise click.BadParameter("--since must be before --until", param_hint="--since")
    config = WhatIfConfig(
        proposed=proposed, baseline=baseline or settings.journey_path, since=since, until=until, files=tuple(files), vendor=vendor,
        bootstrap=settings.bootstrap_servers, topics=settings.topics, partitions=settings.partitions,
        now=_frozen(settings.frozen_now), allowed_lateness_seconds=settings.allowed_lateness_seconds,
        accept_test_mode=settings.accept_test_mode, progress=not no_progress, jobs=jobs)
    if not files and not settings.bootstrap_servers:
        raise click.UsageError("no history: give --from-files, or KAFKA_BOOTSTRAP_SERVERS for the raw topics")
    try:
        result = run_whatif(config)
    except JourneyError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    except ReplayError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(render(result, fmt, only_changed=only_changed), nl=False)  # type: ignore[arg-type]
    if html_path is not None:
        html_path.write_text(render_html(result))
        click.echo(f"wrote {html_path}", err=True)
    click.echo(f"replayed {result.records:,} records / {result.events:,} events in {result.seconds:.1f}s: "
               f"{result.rate:,.0f} events/s", err=True)


def _frozen(text: str | None) -> datetime | None:
    """LIFECYCLE_FROZEN_NOW as the worker reads it (naive means UTC)."""
    from pipeline.readmodel.queries import parse_instant

    return parse_instant(text, "LIFECYCLE_FROZEN_NOW") if text else None
