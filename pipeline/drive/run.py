"""``lifecycle run``, ``lifecycle up`` and ``lifecycle broker``: the pipeline on your own data.

``run`` replays exports (vendor told from the content, or ``--vendor``) through the
file-replay connector into a worker on the embedded broker (or ``KAFKA_BOOTSTRAP_SERVERS``),
prints the demo's summary and leaves the read model for ``lifecycle report``. ``up`` keeps an
embedded broker, a worker and the webhook receiver running until Ctrl-C, for other shells to
use. ``broker`` is the embedded broker alone. Children die with this process (no orphans).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from pipeline.broker import EmbeddedBroker, die_with_parent, free_port, metadata_ready
from pipeline.drive.demo import process_and_summarize
from pipeline.drive.runner import WorkerProcess
from pipeline.drive.summary import Summary
from pipeline.runtime import broker_for, create_topics
from pipeline.settings import Settings
from schemas.topics import Topics

Echo = Callable[[str], None]
EXPORT_SUFFIXES = (".json", ".jsonl", ".ndjson", ".gz")


class RunError(RuntimeError):
    """An export that cannot be replayed (unknown vendor, unreadable file)."""


def export_files(paths: Sequence[Path]) -> list[Path]:
    """The files given, directories expanded to the exports inside them (sorted)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(EXPORT_SUFFIXES))
        else:
            out.append(path)
    if not out:
        raise RunError(f"no export files in {', '.join(map(str, paths))}")
    return out


def plan_exports(files: Sequence[Path], vendor: str | None) -> list[tuple[Path, str | None]]:
    """Each file with its vendor (``--vendor``, else told from its content; None for RawRecord JSONL)."""
    from connectors.replay import detect_format
    from connectors.sniff import vendor_of_export

    planned = []
    for path in files:
        named = vendor or (None if detect_format(path) == "raw-records" else vendor_of_export(path))
        if named is None and detect_format(path) != "raw-records":
            raise RunError(f"{path}: cannot tell which vendor this export is from; give --vendor")
        planned.append((path, named))
    return planned


def replay_exports(bootstrap: str, planned: Sequence[tuple[Path, str | None]], progress: bool, echo: Echo,
                   topics: Topics | None = None) -> int:
    """Every export through the file-replay connector (progress bars on stderr)."""
    from connectors.replay import replay_file
    from connectors.sink import RecordSink

    async def run() -> int:
        total = 0
        async with RecordSink(bootstrap, client_id="lifecycle-run", topics=topics) as sink:
            for path, vendor in planned:
                summary = await replay_file(sink, path, vendor, progress=progress)
                echo(f"  {path} ({vendor or 'RawRecord JSONL'}): {summary.records} records")
                total += summary.records
        return total

    return asyncio.run(run())


def run_exports(settings: Settings, paths: Sequence[Path], vendor: str | None = None, progress: bool = True,
                echo: Echo = print) -> Summary:
    planned = plan_exports(export_files(paths), vendor)
    data_dir = settings.data_dir / "run"
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = settings.with_(data_dir=data_dir, timer_interval=0.5,
                              database_url=settings.database_url or f"sqlite:///{data_dir / 'readmodel.db'}")
    with broker_for(settings) as s:
        assert s.bootstrap_servers
        echo(f"broker: {s.bootstrap_servers}{' (embedded)' if not settings.bootstrap_servers else ''}")
        create_topics(s)
        with WorkerProcess(s, data_dir / "worker.log") as worker:
            echo(f"worker ready (web {worker.url}); replaying {len(planned)} export(s):")
            fed = replay_exports(s.bootstrap_servers, planned, progress, echo, s.topics)
            echo(f"fed {fed} records through the file-replay connector")
            summary = process_and_summarize(s, echo, timeout=max(150.0, fed / 50))
        echo(f"read model: {s.resolved_database_url}  (try: lifecycle report funnel --db {s.resolved_database_url})")
        return summary


def _child(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "pipeline.cli", *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)


def _wait_for_signal() -> Iterator[None]:
    """Block until SIGINT/SIGTERM (Ctrl-C, or a supervisor stopping us)."""
    stop = False

    def handler(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop:
            yield
            time.sleep(0.2)
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run_up(settings: Settings, webhook_port: int = 8080, allow_unsigned: Sequence[str] = (),
           echo: Echo = print) -> None:
    """Broker (embedded unless configured), topics, a worker and the webhook receiver, until Ctrl-C."""
    data_dir = settings.data_dir / "up"
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = settings.with_(data_dir=data_dir,
                              database_url=settings.database_url or f"sqlite:///{data_dir / 'readmodel.db'}")
    with broker_for(settings) as s:
        assert s.bootstrap_servers
        create_topics(s)
        worker = WorkerProcess(s, data_dir / "worker.log").start()
        args = ["connect", "webhook", "--host", s.web_host, "--port", str(webhook_port)]
        args += [a for v in allow_unsigned for a in ("--allow-unsigned", v)]
        webhook = _child(args, os.environ | s.to_env(), data_dir / "webhook.log")
        try:
            host, port = s.web_host, webhook_port
            deadline = time.monotonic() + 30
            while not _listening(host, port):
                if webhook.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"webhook receiver did not start; see {data_dir / 'webhook.log'}")
                time.sleep(0.1)
            echo(f"KAFKA_BOOTSTRAP_SERVERS={s.bootstrap_servers}")
            echo(f"webhooks:    http://{host}:{port}/webhooks/{{hubspot,salesforce,stripe,segment,zendesk}}")
            echo(f"worker:      {worker.url}  (/metrics /readyz /api/reports/funnel)")
            echo(f"read model:  {s.resolved_database_url}")
            echo(f"logs:        {data_dir}/worker.log, {data_dir}/webhook.log")
            echo("ready; Ctrl-C stops everything")
            for _ in _wait_for_signal():
                if webhook.poll() is not None or worker.proc is None or worker.proc.poll() is not None:
                    echo("a component exited; stopping")
                    break
        finally:
            if webhook.poll() is None:
                webhook.terminate()
                try:
                    webhook.wait(15)
                except subprocess.TimeoutExpired:
                    webhook.kill()
                    webhook.wait()
            worker.stop()
    echo("stopped")


def _listening(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def run_broker(port: int | None = None, echo: Echo = print) -> None:
    """The embedded broker alone, until Ctrl-C."""
    with EmbeddedBroker(port=port or free_port()) as broker:
        assert metadata_ready(broker.host, broker.port)
        echo(f"KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers}")
        echo("embedded broker ready (memory storage); Ctrl-C stops it")
        for _ in _wait_for_signal():
            if not broker.running:
                break
