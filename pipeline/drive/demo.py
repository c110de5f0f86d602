"""``lifecycle demo``: the main job end to end on the embedded default.

Starts the broker, creates topics, generates the seeded sample (months of
accounts in the four vendors' native shapes), feeds it through the file-replay
connector, runs a real worker until everything is processed (and the SLA
clock has caught up with the wall clock), prints a summary, stops everything.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from pipeline.drive.runner import WorkerProcess, consumed_topics, wait_caught_up
from pipeline.drive.summary import Summary
from pipeline.runtime import broker_for, create_topics
from pipeline.settings import Settings
from pipeline.topic_reads import read_topic
from schemas.events import DeadLetter
from schemas.handoffs import Handoff
from schemas.identity import AccountMerged, parse_identity_record
from schemas.sla import SlaBreach
from schemas.topics import Topics
from schemas.transitions import StageTransition

Echo = Callable[[str], None]


def feed_sample(bootstrap: str, path: Path, topics: Topics | None = None) -> int:
    """Push the sample file through the file-replay connector (as a backfill would)."""
    import asyncio

    from connectors.replay import replay_file
    from connectors.sink import RecordSink

    async def run() -> int:
        async with RecordSink(bootstrap, topics=topics) as sink:
            summary = await replay_file(sink, path, progress=False)
        return summary.records

    return asyncio.run(run())


def process_and_summarize(s: Settings, echo: Echo, timeout: float = 150) -> Summary:
    """Wait until the worker has processed everything (and the SLA clock has reached the wall
    clock), then print and return the summary of what it emitted."""
    from pipeline.journey import load_journey

    assert s.bootstrap_servers
    t = s.topics
    topics = consumed_topics(s)
    took = wait_caught_up(s.bootstrap_servers, s.app_id, topics, timeout=timeout)
    echo(f"processed in {took:.1f}s; waiting for the SLA clock to reach the wall clock ...")
    time.sleep(4 * s.timer_interval)
    wait_caught_up(s.bootstrap_servers, s.app_id, topics, timeout=60)
    summary = Summary.build(
        read_topic(s.bootstrap_servers, t.stage_transitions, StageTransition),
        read_topic(s.bootstrap_servers, t.handoffs, Handoff),
        read_topic(s.bootstrap_servers, t.sla_breaches, SlaBreach),
        read_topic(s.bootstrap_servers, t.dead_letter, DeadLetter),
        merged={r.from_account for m in read_topic(s.bootstrap_servers, t.identity)
                if isinstance(r := parse_identity_record(m.value), AccountMerged)},
    )
    echo(summary.render([st.id for st in load_journey(s.journey_path).stages]))
    return summary


def run_demo(settings: Settings, accounts: int = 40, seed: int = 7, echo: Echo = print) -> Summary:
    from pipeline.sample import SampleConfig, expected_dead_letters, generate, write_jsonl

    started = time.monotonic()
    data_dir = settings.data_dir / "demo"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    settings = settings.with_(data_dir=data_dir, app_id="lifecycle-demo", timer_interval=0.5,
                              database_url=settings.database_url or f"sqlite:///{data_dir / 'readmodel.db'}")
    with broker_for(settings) as s:
        assert s.bootstrap_servers
        echo(f"broker: {s.bootstrap_servers}{' (embedded)' if not settings.bootstrap_servers else ''}")
        create_topics(s)
        sample = data_dir / "sample.jsonl"
        config = SampleConfig(accounts=accounts, seed=seed)
        n = write_jsonl(generate(config), sample)
        echo(f"sample: {n} native vendor records for {accounts} accounts → {sample}")
        with WorkerProcess(s, data_dir / "worker.log") as worker:
            echo(f"worker ready in {time.monotonic() - started:.1f}s (web {worker.url})")
            fed = feed_sample(s.bootstrap_servers, sample, s.topics)
            echo(f"fed {fed} records through the file-replay connector")
            summary = process_and_summarize(s, echo)
            dl = sum(summary.dead_letters_by_reason.values())
            echo(f"\n(the sample plants {expected_dead_letters(config)} malformed records; {dl} dead-lettered)")
            echo(f"read model: {s.resolved_database_url}  (try: lifecycle report funnel --db {s.resolved_database_url})")
        echo(f"demo finished in {time.monotonic() - started:.1f}s")
        return summary
