"""Two deployments on one cluster (issue 11 item 7): two topic namespaces, two app ids, one broker.

Each deployment is fed its own company, one through the connector sink in this process and
one through ``lifecycle connect replay`` in a child process (namespace from the environment);
every topic of each (raw, account-events, outputs, identity, dead letters, its table
changelogs) and its read model hold only its own records, and ``lifecycle tail`` in one
namespace shows only that namespace's transitions.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from connectors.replay import replay_file
from connectors.sink import RecordSink
from pipeline.drive.runner import WorkerProcess, consumed_topics, produce_bytes, wait_caught_up
from pipeline.kafka_clients import client_kwargs
from pipeline.runtime import create_topics
from pipeline.settings import Settings
from pipeline.topic_reads import read_topic, table_snapshot
from schemas.accounts import AccountBatch
from schemas.raw_batch import unpack
from schemas.events import DeadLetter, RawRecord, SourceKind
from schemas.handoffs import Handoff
from schemas.identity import AccountMerged, IdentityDecision, parse_identity_record
from schemas.sla import SlaBreach
from schemas.topics import DEFAULT
from schemas.transitions import StageTransition
from tests.integration import native as n

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
TABLES = ("accounts", "journal", "deadlines", "identity-links", "identity-accounts")


def day(d: float) -> datetime:
    return T0 + timedelta(days=d)


def history(company: str) -> list[RawRecord]:
    """MQL, a won deal, a subscription, the kickoff meeting: four transitions of one account."""
    return [
        n.hubspot_company_mql(company, day(1), f"ns-{company}.com", event_id=int(company) + 1),
        n.hubspot_deal_won(f"d{company}", company, created=day(3), won=day(20)),
        n.stripe_subscription_created(f"s{company}", f"cus_{company}", company, day(21)),
        n.hubspot_meeting(f"m{company}", company, day(22)),
    ]


def deployment(bootstrap: str, tmp: Path, run: str, name: str) -> Settings:
    directory = tmp / name
    directory.mkdir()
    return Settings(bootstrap_servers=bootstrap, partitions=2, timer_interval=0.25, commit_interval=0.3,
                    app_id=f"ns-{name}-{run}", topic_namespace=f"it{run}.{name}", data_dir=directory,
                    database_url=f"sqlite:///{directory / 'readmodel.db'}")


def child_env(settings: Settings) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in Settings.env_names()} | settings.to_env()


def broker_topics(bootstrap: str) -> set[str]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, **client_kwargs())
    try:
        return set(consumer.topics())
    finally:
        consumer.close()


def accounts_of(records: list) -> set[str]:
    out: set[str] = set()
    for r in records:
        if isinstance(r, AccountMerged):
            out |= {r.from_account, r.into_account}
        else:
            out.add(r.account_id)
    return out


def test_two_deployments_share_a_broker_and_nothing_else(isolated_bootstrap: str, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:6]
    a, b = deployment(isolated_bootstrap, tmp_path, run, "prod"), deployment(isolated_bootstrap, tmp_path, run, "stg")
    assert set(a.topics.all_names()).isdisjoint(b.topics.all_names())
    company = {a: str(random.randint(10**8, 10**9)), b: str(random.randint(10**8, 10**9))}
    account = {s: f"acct:hubspot.company:{company[s]}" for s in (a, b)}
    create_topics(a)  # b's topics: `lifecycle connect replay` creates them (in its environment's namespace)

    with WorkerProcess(a, tmp_path / "a.log") as worker_a:
        async def send_a(record: RawRecord) -> None:
            async with RecordSink(isolated_bootstrap, topics=a.topics) as sink:
                await (await sink.send(record))
        # One at a time, each processed before the next: fed live, records on two raw partitions
        # are merged in arrival order (README, Ordering).
        for record in history(company[a]):
            asyncio.run(send_a(record))
            wait_caught_up(isolated_bootstrap, a.app_id, consumed_topics(a), timeout=60, settle=0.4)
        produce_bytes(isolated_bootstrap, a.topics.raw[SourceKind.CRM], [b"\xff not even utf-8"])

        export = tmp_path / "stg.jsonl"
        export.write_bytes(b"".join(r.to_json() + b"\n" for r in history(company[b])) + b"{not json\n")
        replayed = subprocess.run([sys.executable, "-m", "pipeline.cli", "connect", "replay", str(export),
                                   "--no-progress"], env=child_env(b), capture_output=True, text=True, timeout=120)
        assert replayed.returncode == 0, replayed.stderr[-2000:]
        assert set(b.topics.all_names()) <= broker_topics(isolated_bootstrap)

        with WorkerProcess(b, tmp_path / "b.log"):
            for s in (a, b):
                wait_caught_up(isolated_bootstrap, s.app_id, consumed_topics(s), timeout=120, settle=0.5)

            tailed = subprocess.run([sys.executable, "-m", "pipeline.cli", "tail", "stage-transitions",
                                     "--from-beginning", "--no-follow", "--json"], env=child_env(b),
                                    capture_output=True, text=True, timeout=60)
            assert tailed.returncode == 0, tailed.stderr[-2000:]
            assert [json.loads(line)["account_id"] for line in tailed.stdout.splitlines()] == [account[b]] * 4
        assert worker_a.get("/readyz") == 200  # the other deployment's worker never disturbed this one

    for s in (a, b):
        own, other = account[s], account[b if s is a else a]
        t = s.topics
        transitions = read_topic(isolated_bootstrap, t.stage_transitions, StageTransition)
        assert [(tr.account_id, tr.from_stage, tr.to_stage) for tr in transitions] == [
            (own, None, "MQL"), (own, "MQL", "SQL"), (own, "SQL", "closed-won"), (own, "closed-won", "onboarding")]
        handoffs = read_topic(isolated_bootstrap, t.handoffs, Handoff)
        assert handoffs and accounts_of(handoffs) == {own}
        assert accounts_of(read_topic(isolated_bootstrap, t.sla_breaches, SlaBreach)) <= {own}
        identity = [parse_identity_record(m.value) for m in read_topic(isolated_bootstrap, t.identity)]
        assert any(isinstance(r, IdentityDecision) for r in identity) and accounts_of(identity) == {own}
        # the internal topic two deployments used to share: only this deployment's batches
        batched = {msg.account_id for m in read_topic(isolated_bootstrap, t.account_events)
                   for msg in AccountBatch.model_validate_json(m.value).messages if msg.account_id}
        assert batched == {own}
        raw = [RawRecord.model_validate_json(line) for topic in t.raw.values()
               for m in read_topic(isolated_bootstrap, topic) if m.value.startswith(b"{")
               for line in unpack(m.value)]  # a raw message is a batch of records
        assert {r.event_id for r in raw} == {r.event_id for r in history(company[s])}
        # the read model fed by this deployment's sink
        with sqlite3.connect(s.data_dir / "readmodel.db") as db:
            assert {row[0] for row in db.execute("select distinct account_id from stage_history")} == {own}
        # Faust's changelogs are named after the app id: each deployment's tables are its own
        links = table_snapshot(isolated_bootstrap, s.app_id, "identity-links")
        assert any(company[s] in key for key in links) and not any(other.split(":")[-1] in key for key in links)

    dead_a = read_topic(isolated_bootstrap, a.topics.dead_letter, DeadLetter)
    assert [(d.stage, d.reason, d.source_topic) for d in dead_a] == [
        ("decode", "invalid_envelope", a.topics.raw[SourceKind.CRM])]
    dead_b = read_topic(isolated_bootstrap, b.topics.dead_letter, DeadLetter)
    assert [(d.stage, d.reason) for d in dead_b] == [("connector", "not_json")]

    on_broker = broker_topics(isolated_bootstrap)
    changelogs = {s: {f"{s.app_id}-{table}-changelog" for table in TABLES} for s in (a, b)}
    assert changelogs[a] <= on_broker and changelogs[b] <= on_broker
    # nothing went to the plain (namespace-less) names
    for topic in set(DEFAULT.all_names()) & on_broker:
        values = [m.value or b"" for m in read_topic(isolated_bootstrap, topic)]
        assert not any(company[a].encode() in v or company[b].encode() in v for v in values), topic
