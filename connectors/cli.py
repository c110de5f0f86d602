"""``lifecycle connect …``: run one transport (webhook receiver, file replay, REST poll) into Kafka.

Kafka comes from ``--bootstrap`` or ``KAFKA_BOOTSTRAP_SERVERS``. With neither, an
embedded broker is started in-process and dies with the command: records land in
a broker nobody else reads, so that is only good for trying a connector locally.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from pydantic import SecretStr

log = logging.getLogger(__name__)

_NO_BROKER_NOTE = ("Kafka: --bootstrap or KAFKA_BOOTSTRAP_SERVERS; with neither, an embedded broker is started "
                   "and stopped with the command (local trials only: nothing else can read it).")


@contextmanager
def _kafka(bootstrap: str | None) -> Iterator[str]:
    """Bootstrap servers to use, topics created; an embedded broker for the command's lifetime if none is set."""
    from pipeline.runtime import broker_for, create_topics
    from pipeline.settings import Settings

    settings = Settings.from_env()
    if bootstrap:
        settings = settings.with_(bootstrap_servers=bootstrap)
    elif not settings.bootstrap_servers:
        click.echo("no KAFKA_BOOTSTRAP_SERVERS: using an embedded broker (local trial only)", err=True)
    with broker_for(settings) as ready:
        assert ready.bootstrap_servers
        create_topics(ready)
        yield ready.bootstrap_servers


def _bootstrap_option(f):  # type: ignore[no-untyped-def]
    return click.option("--bootstrap", default=None,
                        help="Kafka bootstrap servers, host:port[,host:port] (default: KAFKA_BOOTSTRAP_SERVERS).")(f)


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() or None if value is not None else None


@click.group(help="Run one connector transport (webhook receiver, file replay, REST poll) into Kafka.\n\n" + _NO_BROKER_NOTE)
def connect() -> None:
    pass


@connect.command(epilog=_NO_BROKER_NOTE)
@_bootstrap_option
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--allow-unsigned", "allow_unsigned", multiple=True, metavar="VENDOR",
              help="Accept unsigned requests for VENDOR when it has no secret (local demo only). Repeatable.")
@click.option("--public-url", default=None, help="Base URL vendors call, if a proxy rewrites it (HubSpot signs the URI).")
@click.option("--tolerance", default=300.0, show_default=True, help="Seconds a signed timestamp may be off.")
def webhook(bootstrap: str | None, host: str, port: int, allow_unsigned: tuple[str, ...], public_url: str | None,
            tolerance: float) -> None:
    """Receive vendor webhooks on POST /webhooks/<vendor>; /healthz, /readyz, /metrics.

    Secrets: STRIPE_WEBHOOK_SECRET, HUBSPOT_CLIENT_SECRET, ZENDESK_WEBHOOK_SECRET,
    SEGMENT_SHARED_SECRET, SALESFORCE_SHARED_SECRET. A vendor without one gets 401.
    """
    from connectors.signatures import SCHEMES, SignatureConfig
    from connectors.webhook import WebhookConfig, WebhookServer

    unknown = {v for a in allow_unsigned for v in a.split(",")} - set(SCHEMES)
    if unknown:
        raise click.BadParameter(f"unknown vendor(s) {sorted(unknown)}; known: {sorted(SCHEMES)}",
                                 param_hint="--allow-unsigned")
    allowed = frozenset(v for a in allow_unsigned for v in a.split(",") if v)
    signatures = SignatureConfig.from_env(allow_unsigned=allowed, tolerance=tolerance)
    for vendor in SCHEMES:
        state = "signed" if vendor in signatures.secrets else "UNSIGNED allowed" if vendor in allowed else "refused (no secret)"
        click.echo(f"  /webhooks/{vendor}: {state}", err=True)
    with _kafka(bootstrap) as servers:
        server = WebhookServer(servers, host, port, WebhookConfig(signatures=signatures, public_url=public_url))
        click.echo(f"webhook receiver on http://{host}:{port} → {servers}", err=True)
        try:
            asyncio.run(server.serve_forever())
        except KeyboardInterrupt:
            pass


@connect.command(epilog=_NO_BROKER_NOTE)
@_bootstrap_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--vendor", default=None, help="Vendor of an export (NDJSON or JSON array); not needed for RawRecord JSONL.")
@click.option("--no-progress", is_flag=True, help="No progress bar on stderr.")
@click.option("--max-in-flight", default=5000, show_default=True, help="Records awaiting Kafka's ack at most.")
def replay(bootstrap: str | None, file: Path, vendor: str | None, no_progress: bool, max_in_flight: int) -> None:
    """Backfill FILE (NDJSON, JSON array, or RawRecord JSONL; .gz ok) in constant memory."""
    from connectors.enrich import Enricher
    from connectors.registry import vendors
    from connectors.replay import ReplayError, replay_file
    from connectors.sink import RecordSink

    if vendor and vendor not in vendors():
        raise click.BadParameter(f"unknown vendor {vendor!r}; known: {vendors()}", param_hint="--vendor")

    async def run(servers: str):  # type: ignore[no-untyped-def]
        enricher = Enricher.from_env()
        try:
            async with RecordSink(servers, client_id="lifecycle-replay", enricher=enricher) as sink:
                return await replay_file(sink, file, vendor, progress=not no_progress, max_in_flight=max_in_flight)
        finally:
            await enricher.close()

    with _kafka(bootstrap) as servers:
        try:
            summary = asyncio.run(run(servers))
        except ReplayError as exc:
            raise click.UsageError(str(exc)) from None
    click.echo(str(summary))
    if not summary.ok:
        click.echo(f"Kafka refused {summary.failed} records: {summary.errors[:3]}", err=True)
        sys.exit(1)


@connect.command(epilog=_NO_BROKER_NOTE)
@_bootstrap_option
@click.argument("vendor", type=click.Choice(["stripe", "hubspot", "salesforce", "zendesk", "segment"]))
@click.option("--base-url", required=True, help="API root, e.g. https://api.stripe.com or https://acme.zendesk.com.")
@click.option("--token", default=None, help="Bearer token (default: the vendor's *_TOKEN / *_API_KEY variable).")
@click.option("--user", default=None, help="Basic-auth user instead of a token (Zendesk: you@x.com/token).")
@click.option("--password", default=None, help="Basic-auth password (default: POLL_PASSWORD).")
@click.option("--cursor-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Checkpoint file [default: lifecycle-data/connectors/poll-<vendor>.json].")
@click.option("--once", is_flag=True, help="Catch up once and exit (e.g. from cron).")
@click.option("--interval", default=30.0, show_default=True, help="Seconds between polls once caught up.")
@click.option("--page-size", default=100, show_default=True)
@click.option("--object", "objects", multiple=True,
              help="HubSpot object types / Salesforce sObjects to poll (repeatable; default: all known).")
@click.option("--start-time", default=None, type=int, help="Zendesk: unix start_time of the first poll.")
@click.option("--export-path", default=None, help="Segment: path of the NDJSON export endpoint.")
def poll(bootstrap: str | None, vendor: str, base_url: str, token: str | None, user: str | None,
         password: str | None, cursor_file: Path | None, once: bool, interval: float, page_size: int,
         objects: tuple[str, ...], start_time: int | None, export_path: str | None) -> None:
    """Pull VENDOR's list endpoint incrementally, resuming from the checkpoint."""
    from connectors.poll import CheckpointStore, PollConfig, PollError, Poller
    from connectors.enrich import Enricher
    from connectors.registry import strategies_for
    from connectors.sink import RecordSink
    from pipeline.settings import API_TOKEN_FIELDS, Settings

    settings = Settings.from_env()
    token = token or _secret(settings.api_token(vendor))
    password = password or _secret(settings.poll_password)
    if not token and not user:
        raise click.UsageError(f"no credentials: --token, {Settings.env_name(API_TOKEN_FIELDS[vendor])}, "
                               "or --user/--password")
    options: dict[str, object] = {}
    if objects:
        options["objects"] = list(objects)
    if start_time is not None:
        options["start_time"] = start_time
    if export_path:
        options["export_path"] = export_path
    config = PollConfig(base_url=base_url, token=token, username=user, password=password, page_size=page_size,
                        interval=interval, options=options)
    store = CheckpointStore(cursor_file or settings.data_dir / "connectors" / f"poll-{vendor}.json")

    async def run(servers: str):  # type: ignore[no-untyped-def]
        enricher = Enricher.from_env()
        try:
            async with RecordSink(servers, client_id=f"lifecycle-poll-{vendor}", enricher=enricher) as sink:
                return await Poller(sink, strategies_for(vendor, config), config, store).run(once=once)
        finally:
            await enricher.close()

    with _kafka(bootstrap) as servers:
        try:
            summary = asyncio.run(run(servers))
        except PollError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            return
    click.echo(f"{vendor}: {summary.pages} pages, {summary.records} records, {summary.dead_letters} dead letters; "
               f"checkpoint {store.path}")
