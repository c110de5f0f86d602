"""``LIFECYCLE_STORE=rocksdict`` on a real worker and broker: a SIGTERM restart keeps the local
RocksDB files and reads only the changelog tail; after a kill -9 with writes of uncommitted input
in those files, the restarted worker discards them and resumes from exactly the committed state
(pipeline/tables.py; README, Delivery guarantees)."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from rocksdict import Options, Rdict

from pipeline.drive.runner import group_lag, internal_topics
from pipeline.settings import Settings
from pipeline.tables import RocksDictStore
from pipeline.topic_reads import read_topic, table_snapshot
from schemas import topics as T
from schemas.transitions import StageTransition
from tests.integration import native as n
from tests.integration.conftest import unique_settings

pytestmark = pytest.mark.integration
T0 = datetime(2025, 3, 3, 15, 0, tzinfo=timezone.utc)


def _records(log: Path) -> list[dict]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _messages(log: Path, start: str) -> list[str]:
    return [str(r.get("msg", "")) for r in _records(log) if str(r.get("msg", "")).startswith(start)]


def _recovered(log: Path, table: str) -> int:
    """Changelog records the worker logging to ``log`` applied to ``table`` at its recoveries."""
    prefix = f"table {table}: recovery applied "
    return sum(int(m[len(prefix):].split()[0]) for m in _messages(log, prefix))


def _transitions(settings: Settings, accounts: set[str]) -> list[StageTransition]:
    assert settings.bootstrap_servers
    return [t for t in read_topic(settings.bootstrap_servers, T.STAGE_TRANSITIONS, StageTransition)
            if t.account_id in accounts]


def _local_files(settings: Settings, table: str) -> dict[str, bytes]:
    """A stopped worker's RocksDB files of ``table``, all partitions, without Faust's bookkeeping keys."""
    files = sorted((settings.data_dir / "faust").rglob(f"{table}-*.db"))
    assert files, f"no RocksDB files of {table} under {settings.data_dir}"
    out: dict[str, bytes] = {}
    for path in files:
        db = Rdict(str(path), options=Options(raw_mode=True))
        try:
            for key, value in db.items():
                if key not in (RocksDictStore.offset_key, RocksDictStore.SOURCES_KEY):
                    out[key.decode()] = value
        finally:
            db.close()
    return out


def _companies(k: int) -> list[str]:
    base = random.randint(10**8, 10**9 - 1000)
    return [str(base + i) for i in range(k)]


@pytest.mark.timeout(300)
def test_a_sigterm_restart_keeps_the_local_store_and_reads_only_the_changelog_tail(start_worker, base_settings,
                                                                                    tmp_path):
    settings = unique_settings(base_settings, "rocks-clean", tmp_path / "clean").with_(
        store="rocksdict", log_level="info")
    worker, feed = start_worker("rocks-clean", settings)
    companies = _companies(30)
    accounts = {f"acct:hubspot.company:{c}" for c in companies}
    feed.send(*(n.hubspot_company_mql(c, T0, f"c{c}.example.com", event_id=int(c)) for c in companies))
    feed.caught_up()
    assert worker.stop() == 0
    assert settings.bootstrap_servers
    changelog = read_topic(settings.bootstrap_servers, f"{settings.app_id}-accounts-changelog")
    assert len(changelog) >= len(companies) / 10  # at least one record per batch, per partition
    first_log = worker.log_path
    assert _recovered(first_log, "accounts") == 0  # the first start had nothing to read

    # Restart on the same data dir: the files are kept, only the tail (Faust re-reads each
    # partition's last applied record) is read, and the state is there.
    worker, feed = start_worker("rocks-clean", settings)
    log = worker.log_path
    kept = [m for m in _messages(log, "table ") if "local store kept" in m]
    discarded = [m for m in _messages(log, "table ") if "discarded" in m]
    assert not discarded, discarded
    assert any(m.startswith("table accounts partition") for m in kept), kept
    assert _recovered(log, "accounts") <= base_settings.partitions, _recovered(log, "accounts")
    assert _recovered(log, "accounts") < len(changelog)

    # The state survived: a deal won moves each company on from MQL (a lost state would start at ∅).
    won = companies[:3]
    feed.send(*(n.hubspot_deal_won(f"d{c}", c, created=T0 + timedelta(days=2), won=T0 + timedelta(days=9))
                for c in won))
    feed.caught_up()
    moved = [t for t in _transitions(settings, accounts) if t.trigger_kind != "crm.lead_qualified"]
    firsts: dict[str, StageTransition] = {}
    for t in moved:  # topic order: an account's transitions in the order they were emitted
        firsts.setdefault(t.account_id, t)
    assert set(firsts) == {f"acct:hubspot.company:{c}" for c in won}
    assert all(t.from_stage == "MQL" for t in firsts.values()), [(t.from_stage, t.to_stage) for t in firsts.values()]
    worker.stop()

    # And the files hold exactly what the changelog says.
    assert _local_files(settings, "accounts") == table_snapshot(settings.bootstrap_servers, settings.app_id,
                                                                "accounts")


@pytest.mark.timeout(300)
def test_after_a_kill_9_the_restarted_worker_resumes_from_the_committed_state(start_worker, base_settings,
                                                                               tmp_path):
    settings = unique_settings(base_settings, "rocks-kill", tmp_path / "kill").with_(
        store="rocksdict", log_level="info")
    assert settings.bootstrap_servers
    bootstrap = settings.bootstrap_servers
    companies = _companies(12)
    accounts = {f"acct:hubspot.company:{c}" for c in companies}
    worker, feed = start_worker("rocks-kill", settings)
    feed.send(*(n.hubspot_company_mql(c, T0, f"c{c}.example.com", event_id=int(c)) for c in companies))
    feed.caught_up()
    worker.stop()

    # A worker that does not commit for an hour processes more input, then is killed: its local
    # files now hold writes of input that is not committed and will be processed again.
    worker, feed = start_worker("rocks-kill", settings.with_(commit_interval=3600.0))
    won = companies[:4]
    feed.send(*(n.hubspot_deal_won(f"d{c}", c, created=T0 + timedelta(days=2), won=T0 + timedelta(days=9))
                for c in won))
    deadline = time.monotonic() + 60
    while len({t.account_id for t in _transitions(settings, accounts) if t.to_stage == "closed-won"}) < len(won):
        assert time.monotonic() < deadline, "the uncommitted input was not processed"
        time.sleep(0.3)
    time.sleep(1.0)  # the last table writes of those batches
    assert group_lag(bootstrap, settings.app_id, internal_topics(settings)) > 0, "the input was committed after all"
    worker.kill()
    before = Counter(t.transition_id for t in _transitions(settings, accounts))

    worker, feed = start_worker("rocks-kill", settings)
    log = worker.log_path
    discarded = [m for m in _messages(log, "table ") if "discarded" in m]
    assert any(m.startswith("table accounts partition") for m in discarded), _messages(log, "table ")
    assert any(m.startswith("table identity-links partition") or m.startswith("table ingest-progress partition")
               for m in discarded), discarded
    feed.caught_up()

    # Resumed from the committed state (every company at MQL), the replay emits the uncommitted
    # input's transitions again, identical; kept writes of that input would have made it emit none.
    after = Counter(t.transition_id for t in _transitions(settings, accounts))
    replayed = {tid for tid in after if after[tid] > before[tid]}
    won_ids = {t.transition_id for t in _transitions(settings, accounts) if t.trigger_kind != "crm.lead_qualified"}
    assert won_ids and replayed == won_ids, (replayed, won_ids)
    assert all(after[tid] == 2 for tid in won_ids)
    assert all(after[t.transition_id] == 1 for t in _transitions(settings, accounts)
               if t.trigger_kind == "crm.lead_qualified")
    worker.stop()
    assert _local_files(settings, "accounts") == table_snapshot(bootstrap, settings.app_id, "accounts")
