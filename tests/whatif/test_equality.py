"""A what-if of the unchanged journey equals what a real worker produced from the same raw
topics: its read model (accounts, stage history, SLA breaches, handoffs) and its output topics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from kafka.admin import KafkaAdminClient

from pipeline.drive.demo import feed_sample
from pipeline.drive.runner import WorkerProcess, consumed_topics, wait_caught_up
from pipeline.journey import load_journey
from pipeline.offline import OfflinePipeline
from pipeline.readmodel.engine import make_engine
from pipeline.readmodel.models import TABLES
from pipeline.runtime import create_topics
from pipeline.settings import Settings
from pipeline.topic_reads import read_topic, topics_end_offsets
from pipeline.whatif.compare import stage_counts, write_read_model
from pipeline.whatif.history import Spool, spool_topics
from schemas import topics as T
from schemas.sla import SlaBreach
from schemas.transitions import StageTransition
from tests.whatif.helpers import sample_file

pytestmark = pytest.mark.integration

FROZEN = "2026-11-02T12:00:00+00:00"   # after the sample's nine months: every deadline is due
ACCOUNTS = 30
OUTPUTS = (T.STAGE_TRANSITIONS, T.HANDOFFS, T.SLA_BREACHES, T.IDENTITY, T.DEAD_LETTER)


def _rows(engine: sa.Engine) -> dict[str, set[tuple]]:
    """Every read-model row but the wall-clock bookkeeping column (``updated_at``)."""
    out = {}
    with engine.connect() as conn:
        for table in TABLES:
            cols = [c for c in table.c if c.name != "updated_at"]
            out[table.name] = {tuple(r) for r in conn.execute(sa.select(*cols))}
    return out


def _groups(admin: KafkaAdminClient) -> set[str]:
    return {g["group_id"] if isinstance(g, dict) else g[0] for g in admin.list_groups()}


@pytest.fixture(scope="module")
def worker_run(isolated_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Path]:
    """The sample recorded on the raw topics first, then one worker processes all of it."""
    tmp = tmp_path_factory.mktemp("whatif-eq")
    settings = Settings(bootstrap_servers=isolated_bootstrap, partitions=2, timer_interval=0.25,
                        commit_interval=0.3, data_dir=tmp, app_id=f"whatif-eq-{uuid.uuid4().hex[:6]}",
                        database_url=f"sqlite:///{tmp / 'readmodel.db'}", frozen_now=FROZEN)
    create_topics(settings)
    sample = sample_file(tmp, ACCOUNTS)
    feed_sample(isolated_bootstrap, sample)   # recorded before the worker starts, as a backfill
    with WorkerProcess(settings, tmp / "worker.log"):
        wait_caught_up(isolated_bootstrap, settings.app_id, consumed_topics(settings), timeout=90, settle=0.5)
        time.sleep(4 * settings.timer_interval)  # the end-of-input clock fires the due deadlines
        wait_caught_up(isolated_bootstrap, settings.app_id, consumed_topics(settings), timeout=60, settle=1.0)
    return settings, sample


def test_whatif_of_the_shipped_journey_equals_the_worker(worker_run: tuple[Settings, Path], tmp_path: Path):
    settings, _ = worker_run
    assert settings.bootstrap_servers
    with Spool() as spool:
        spool_topics(settings.bootstrap_servers, spool)
        assert spool.records > 3000
        offline = OfflinePipeline([load_journey()], now=datetime.fromisoformat(FROZEN),
                                  partitions=settings.partitions)
        (out,) = offline.run(spool.sources())

    live = make_engine(settings.resolved_database_url)
    mine = make_engine(f"sqlite:///{tmp_path / 'whatif.db'}")
    write_read_model(out, mine)
    live_rows, what_if_rows = _rows(live), _rows(mine)
    assert len(live_rows["stage_history"]) > 100 and len(live_rows["sla_breaches"]) > 20
    for table in live_rows:
        assert what_if_rows[table] == live_rows[table], table
    assert stage_counts(mine) == stage_counts(live)

    # and the output topics record for record (the live run may hold re-deliveries: ids de-duplicate)
    bootstrap = settings.bootstrap_servers
    live_transitions = {t.transition_id: t for t in read_topic(bootstrap, T.STAGE_TRANSITIONS, StageTransition)}
    assert live_transitions == {t.transition_id: t for t in out.transitions}
    live_breaches = {b.record_id: b for b in read_topic(bootstrap, T.SLA_BREACHES, SlaBreach)}
    assert live_breaches == {b.record_id: b for b in out.breaches}


def test_whatif_command_reads_the_topics_without_a_trace(worker_run: tuple[Settings, Path]):
    """``lifecycle whatif`` from Kafka: the worker's stage counts, no consumer group, nothing written."""
    settings, _ = worker_run
    bootstrap = settings.bootstrap_servers
    assert bootstrap
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    groups_before = _groups(admin)
    ends_before = topics_end_offsets(bootstrap, OUTPUTS)
    shipped = str(Path(load_journey.__code__.co_filename).parent / "journeys" / "default.yaml")
    env = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "LIFECYCLE_FROZEN_NOW": FROZEN,
                        "LIFECYCLE_PARTITIONS": str(settings.partitions)}
    env.pop("LIFECYCLE_JOURNEY", None)
    run = subprocess.run([sys.executable, "-m", "pipeline.cli", "whatif", "--journey", shipped, "--format", "json",
                          "--no-progress"], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    stages = {r["key"]: (r["baseline"], r["proposed"]) for r in result["rows"] if r["section"] == "stages"}
    live = stage_counts(make_engine(settings.resolved_database_url))
    assert {k: b for k, (b, _) in stages.items() if b} == live
    assert all(b == p for b, p in stages.values())
    assert result["accounts"] == [] and result["breaches"] == []
    assert result["events"] > 3000 and "events/s" in run.stderr

    assert topics_end_offsets(bootstrap, OUTPUTS) == ends_before
    assert _groups(admin) == groups_before
    admin.close()
