"""The ``lifecycle`` command."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from pipeline.settings import ConfigError, Settings


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO.")
def main(verbose: bool) -> None:
    """lifecycle-pipeline: account lifecycle stages, handoffs and SLA breaches over Kafka."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:  # a bad setting stops every command at start, naming the variable
        Settings.from_env()
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


@main.group()
def config() -> None:
    """The settings (environment variables; see deploy/config/lifecycle.env.example)."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of NAME=value lines.")
def config_show(as_json: bool) -> None:
    """Print the effective configuration, defaults included, secrets masked."""
    described = Settings.from_env().describe()
    if as_json:
        click.echo(json.dumps(dict(described), indent=2))
    else:
        for name, value in described:
            click.echo(f"{name}={value}")


@main.command()
@click.option("--role", type=click.Choice(["all", "stream", "sink"]), default=None,
              help="all: stream and read-model sink (default, LIFECYCLE_ROLE); stream: ingest, accounts, timers; "
                   "sink: the read-model sink alone, so SQL never competes with the stream loop.")
def worker(role: str | None) -> None:
    """Run a pipeline worker (KAFKA_BOOTSTRAP_SERVERS, or an embedded broker for local trials)."""
    from pipeline.runtime import broker_for, run_worker

    settings = Settings.from_env()
    if role is not None:
        settings = settings.with_(role=role)
    with broker_for(settings) as settings:
        run_worker(settings)


@main.command()
@click.option("--accounts", default=40, show_default=True, help="Accounts in the generated sample.")
@click.option("--seed", default=7, show_default=True)
def demo(accounts: int, seed: int) -> None:
    """Run the main job on the embedded broker with a generated sample and print a summary."""
    from pipeline.drive.demo import run_demo

    run_demo(Settings.from_env(), accounts=accounts, seed=seed, echo=click.echo)


@main.command("run")
@click.argument("exports", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--vendor", default=None, help="Vendor of every export (default: told from each file's content).")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def run_cmd(exports: tuple[Path, ...], vendor: str | None, no_progress: bool) -> None:
    """Run the main job on your own EXPORTS (files or directories: NDJSON, JSON array, RawRecord
    JSONL, .gz) on the embedded broker; print the summary; keep the read model for `lifecycle report`."""
    from pipeline.drive.run import RunError, run_exports

    try:
        run_exports(Settings.from_env(), list(exports), vendor=vendor, progress=not no_progress, echo=click.echo)
    except RunError as exc:
        raise click.UsageError(str(exc)) from None


@main.command()
@click.option("--webhook-port", default=8080, show_default=True, type=int)
@click.option("--allow-unsigned", multiple=True, metavar="VENDOR",
              help="Accept unsigned webhooks from VENDOR when it has no secret (local trials only). Repeatable.")
def up(webhook_port: int, allow_unsigned: tuple[str, ...]) -> None:
    """Embedded broker + worker + webhook receiver until Ctrl-C; prints the URLs and the
    KAFKA_BOOTSTRAP_SERVERS for other shells (connectors, lifecycle tail, reports)."""
    from pipeline.drive.run import run_up

    run_up(Settings.from_env(), webhook_port=webhook_port, allow_unsigned=allow_unsigned, echo=click.echo)


@main.command()
@click.option("--port", default=None, type=int, help="Port on 127.0.0.1 (default: a free one).")
def broker(port: int | None) -> None:
    """The embedded Kafka-compatible broker alone, until Ctrl-C."""
    from pipeline.drive.run import run_broker

    run_broker(port, echo=click.echo)


@main.command()
@click.argument("topic")
@click.option("--account", default=None, help="Only records of this account.")
@click.option("--from-beginning", is_flag=True, help="Start at the beginning (default: new records only).")
@click.option("--no-follow", is_flag=True, help="Stop at the end instead of waiting for more.")
@click.option("--json", "as_json", is_flag=True, help="The records' JSON, one per line.")
def tail(topic: str, account: str | None, from_beginning: bool, no_follow: bool, as_json: bool) -> None:
    """Watch an output TOPIC (stage-transitions, handoffs, sla-breaches, identity, dead-letter, ...)
    of this deployment's topic namespace (LIFECYCLE_TOPIC_NAMESPACE)."""
    from pipeline.tail import lines, resolve_topic

    settings = Settings.from_env()
    if not settings.bootstrap_servers:
        raise click.UsageError("set KAFKA_BOOTSTRAP_SERVERS (lifecycle up prints it)")
    try:
        name = resolve_topic(topic, settings.topics)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="TOPIC") from None
    try:
        for line in lines(settings.bootstrap_servers, name, as_json, account=account, from_beginning=from_beginning,
                          follow=not no_follow, topics=settings.topics):
            click.echo(line)
    except KeyboardInterrupt:
        pass


@main.command("compile")
def compile_cmd() -> None:
    """Compile the per-record modules from their source with Cython (``pipeline/compiled.py``);
    ``make install`` and the image build run it. Needs a C compiler and the ``compile`` extra."""
    from pipeline.compiled import COMPILED_DIR, build

    click.echo(f"compiled {len(build())} modules into {COMPILED_DIR}")


@main.command()
@click.option("--accounts", default=600, show_default=True, help="Accounts in the generated sample (scales events).")
@click.option("--records", type=click.IntRange(min=1), default=None,
              help="Exactly this many records (the sample grown with more accounts, then cut).")
@click.option("--seed", default=11, show_default=True)
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs, each on a fresh embedded broker; the last line is the median ratio.")
@click.option("--transports", default=10_000, show_default=True,
              help="Records per connector transport benchmark (0 to skip).")
@click.option("--workers", "stream_workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Stream workers in phase (b), one consumer group; their partitions are printed.")
@click.option("--state", "state_accounts", type=click.IntRange(min=1), default=None, is_flag=False,
              flag_value=100_000, help="Instead: restart-to-ready and memory per 100k accounts of each table "
                                       "store (memory, rocksdict), with state for N accounts (default 100,000).")
@click.option("--instructions", "instruction_records", type=click.IntRange(min=1), default=None, is_flag=False,
              flag_value=5_000, help="Instead: instructions per record of the raw step and the pure path under "
                                     "valgrind, over about N records (default 5,000): the same in every run.")
def bench(accounts: int, records: int | None, seed: int, repeat: int, transports: int,
          stream_workers: int, state_accounts: int | None, instruction_records: int | None) -> None:
    """Measure raw consume→decode→produce, the real pipeline and a bare Faust agent on the same
    preloaded events, same broker; then each connector transport's throughput into Kafka."""
    if instruction_records is not None:
        from pipeline.drive.bench_instructions import ValgrindMissing, run_instructions

        try:
            run_instructions(Settings.from_env(), accounts=accounts, seed=seed, records=instruction_records,
                             echo=click.echo)
        except ValgrindMissing as exc:
            raise click.UsageError(str(exc)) from exc
        return
    if state_accounts is not None:
        from pipeline.drive.bench_state import run_state_bench

        run_state_bench(Settings.from_env(), accounts=state_accounts, echo=click.echo)
        return
    from pipeline.drive.bench import BenchUsageError, run_bench

    try:
        run_bench(Settings.from_env(), accounts=accounts, seed=seed, echo=click.echo, transports=transports,
                  records=records, repeat=repeat, stream_workers=stream_workers)
    except BenchUsageError as exc:
        raise click.UsageError(str(exc)) from exc


@main.command()
@click.option("--accounts", default=300, show_default=True, help="Accounts in the generated sample.")
@click.option("--seed", default=7, show_default=True, help="Seeds the sample and the fault moments.")
@click.option("--kills", default=10, show_default=True, help="kill -9 restarts in the kill9 scenario.")
@click.option("--sigterms", default=3, show_default=True, help="Graceful restarts in the sigterm scenario.")
@click.option("--scenarios", default="all", show_default=True, help="Comma list; the reference always runs.")
@click.option("--settle", default=5.0, show_default=True, help="Seconds for end-of-input clock ticks to fire.")
@click.option("--now", default=None, help="The pinned wall clock, ISO 8601 (default: the start, to the second).")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), help="Worker logs and data.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the full result.")
@click.option("--keep", is_flag=True, help="Keep the run dir (always kept when the verdict is not PASS), with every topic of each scenario dumped as JSON lines.")
def verify(json_path: Path | None, scenarios: str, **options: object) -> None:
    """Consistency: the same input under kills, restarts and rebalances must give the reference's output."""
    from pipeline.drive.verify import VerifyConfig, run_verify, select_scenarios

    try:
        names = select_scenarios(scenarios)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--scenarios") from exc
    config = VerifyConfig(scenarios=names, **options)  # type: ignore[arg-type]
    result = run_verify(config, Settings.from_env(), echo=click.echo)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_bytes(result.to_json())
    sys.exit(0 if result.ok else 1)


@main.group()
def topics() -> None:
    """Topic administration."""


@topics.command("create")
def topics_create() -> None:
    """Create every topic the pipeline uses, in LIFECYCLE_TOPIC_NAMESPACE (idempotent)."""
    from pipeline.runtime import create_topics

    settings = Settings.from_env()
    if not settings.bootstrap_servers:
        raise click.UsageError("set KAFKA_BOOTSTRAP_SERVERS")
    created = create_topics(settings)
    click.echo(f"created {len(created)} topic(s): {', '.join(created) or '-'}")


@main.group()
def schemas() -> None:
    """The public contract: JSON Schemas of every topic's records."""


@schemas.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def schemas_export(directory: Path) -> None:
    """Write one JSON Schema file per record type into DIRECTORY (x-topics: the topic names in
    LIFECYCLE_TOPIC_NAMESPACE)."""
    from schemas.export import export_json_schemas

    written = export_json_schemas(directory, Settings.from_env().topics)
    for path in written:
        click.echo(str(path))


@main.group()
def journey() -> None:
    """The journey definition."""


@journey.command("check")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
def journey_check(path: str | None) -> None:
    """Validate a journey file (default: the shipped one) and print its stages."""
    from pipeline.journey import JourneyError, load_journey

    try:
        j = load_journey(path)
    except JourneyError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    for s in j.stages:
        click.echo(f"{s.id:<12} owner={s.owner:<17} kind={s.kind.value:<10} entry={len(s.entry)} criteria")
    click.echo(f"{len(j.slas)} SLA(s)")


@main.group()
def identity() -> None:
    """Identity stitching: which source ids make up an account, and why."""


@identity.command("show")
@click.argument("identifier")
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
def identity_show(identifier: str, as_json: bool) -> None:
    """Explain the account behind IDENTIFIER (e.g. stripe.customer:cus_9, or an account id).

    Reads the identity tables' changelogs from Kafka, so no worker needs to be running.
    """
    import orjson

    from pipeline.core.identity import IdentityResolver
    from pipeline.journey import load_journey
    from pipeline.topic_reads import table_snapshot

    settings = Settings.from_env()
    if not settings.bootstrap_servers:
        raise click.UsageError("set KAFKA_BOOTSTRAP_SERVERS to the cluster the workers use")
    links = {k: orjson.loads(v) for k, v in table_snapshot(settings.bootstrap_servers, settings.app_id, "identity-links").items()}
    accounts = {k: orjson.loads(v) for k, v in table_snapshot(settings.bootstrap_servers, settings.app_id, "identity-accounts").items()}
    resolver = IdentityResolver(load_journey(settings.journey_path).identity, links, accounts)
    explanation = resolver.explain(identifier)
    if explanation is None:
        click.echo(f"{identifier}: not known to identity resolution", err=True)
        sys.exit(1)
    click.echo(explanation.model_dump_json(indent=2) if as_json else explanation.render())


def _register_optional() -> None:
    """Command groups that live beside their code (read model, connectors)."""
    try:
        from pipeline.readmodel.cli import report
        main.add_command(report)
    except ImportError:
        pass
    try:
        from connectors.cli import connect
        main.add_command(connect)
    except ImportError:
        pass
    from pipeline.whatif.cli import whatif
    main.add_command(whatif)


_register_optional()

if __name__ == "__main__":  # pragma: no cover
    main()
