"""``lifecycle bench --state``: restart-to-ready and memory per 100k accounts, per table store.

On a fresh embedded broker (or ``KAFKA_BOOTSTRAP_SERVERS``: a topic namespace and app ids of
its own keep the run apart):

1. **State.** One HubSpot ``company.propertyChange`` (lifecycle stage → MQL) per account, preloaded
   into the raw CRM topic: the cheapest history that gives every account real state. A real
   ``lifecycle worker`` (memory store, stream role) processes all of it until its group has
   committed everything, and stops (SIGTERM). The tables then hold each account's state, its
   journal, its SLA deadline (MQL follow-up), its identity links and the partitions' progress,
   in changelog topics. The accounts are counted from the accounts changelog.
2. **Baseline.** An empty worker per store (own namespace, no input, no state): its start-to-ready
   time and its RSS once ready.
3. **memory.** A worker started on that state: start-to-ready (the whole changelogs are read;
   ``/readyz`` answers 200 only once table recovery is complete) and RSS once ready.
4. **rocksdict.** A first start with no local files (the whole changelogs, written to RocksDB),
   a clean stop (SIGTERM, after the final commit), then the measured restart: start-to-ready
   (only the changelog tail) and RSS once ready, and the files' size on disk.

Memory per 100k accounts is (RSS once ready - the empty worker's RSS) scaled to 100,000
accounts. Each start is one process start, Python imports and Faust's own start included: the
empty worker's start-to-ready is that fixed cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pipeline.drive.bench import CommitWatch, encode, preload
from pipeline.drive.runner import WorkerProcess, internal_topics
from pipeline.runtime import broker_for, create_topics
from pipeline.settings import Settings
from pipeline.topic_reads import table_snapshot
from schemas.events import RawRecord, SourceKind

Echo = Callable[[str], None]
STATE_APP_ID = "lifecycle-bench-state"
COMPANY_BASE = 7_100_000_000
PER = 100_000


def history(accounts: int, now: datetime | None = None) -> list[RawRecord]:
    """One record per account: a HubSpot webhook moving a company to MQL, an hour ago or less."""
    now = now or datetime.now(timezone.utc)
    out = []
    for i in range(accounts):
        at = now - timedelta(hours=1) + timedelta(milliseconds=i)
        company = COMPANY_BASE + i
        payload = {"eventId": company, "subscriptionId": 2881778, "portalId": 62515, "appId": 1160452,
                   "occurredAt": int(at.timestamp() * 1000), "subscriptionType": "company.propertyChange",
                   "attemptNumber": 0, "objectId": company, "changeSource": "CRM_UI",
                   "propertyName": "lifecyclestage", "propertyValue": "marketingqualifiedlead"}
        out.append(RawRecord(source=SourceKind.CRM, vendor="hubspot", event_id=f"state-{company}", received_at=at,
                             transport="webhook", payload=payload))
    return out


@dataclass(frozen=True)
class Start:
    """One worker start: seconds from process start to /readyz 200, and its RSS then."""

    seconds: float
    rss_mib: float


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_once(settings: Settings, log: Path, settle: float = 2.0) -> Start:
    """Start a worker, time it to ready, let it settle (its first timer ticks), read its RSS, stop it."""
    worker = WorkerProcess(settings, log, ready_timeout=3600.0)
    started = time.perf_counter()
    worker.start()
    seconds = time.perf_counter() - started
    try:
        time.sleep(settle)
        assert worker.proc is not None
        rss = rss_mib(worker.proc.pid)
    finally:
        code = worker.stop(timeout=120.0)
    if code not in (0, None):
        raise RuntimeError(f"worker exited with {code}; see {log}")
    return Start(seconds, rss)


def _du_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1024 / 1024


def run_state_bench(settings: Settings, accounts: int = PER, echo: Echo = print) -> dict[str, float]:
    """Build state for ``accounts`` accounts with a real worker, then measure each store's restart."""
    run_dir = settings.data_dir / "bench-state"
    run_dir.mkdir(parents=True, exist_ok=True)
    suffix = time.strftime("%Y%m%d%H%M%S")
    records = history(accounts)
    with broker_for(settings) as s:
        bootstrap = s.bootstrap_servers
        assert bootstrap
        base = s.with_(app_id=f"{STATE_APP_ID}-{suffix}", topic_namespace=f"bench-state-{suffix}", role="stream",
                       commit_interval=0.5, data_dir=run_dir / "state", store="memory")
        create_topics(base)
        seconds = preload(bootstrap, encode(records, base.partitions, base.topics))
        echo(f"state bench: {accounts:,} accounts, one MQL webhook each, preloaded in {seconds:.1f}s")

        # 1. state, by a real worker
        worker = WorkerProcess(base, run_dir / "build.log", ready_timeout=600.0).start()
        try:
            with CommitWatch(bootstrap) as watch:
                built, _ = watch.wait(base.app_id, internal_topics(base), lambda: None,
                                      timeout=600 + accounts / 20)
        finally:
            worker.stop(timeout=120.0)
        held = len(table_snapshot(bootstrap, base.app_id, "accounts", timeout=5.0))
        echo(f"built by a worker in {built:.0f}s: the accounts table holds {held:,} accounts")
        if held < accounts:
            raise RuntimeError(f"expected {accounts:,} accounts in the table, found {held:,}")

        # 2. empty workers: the fixed cost of a start, and the RSS of no state
        empty = base.with_(topic_namespace=f"bench-empty-{suffix}")
        create_topics(empty)
        baseline = {store: start_once(empty.with_(store=store, data_dir=run_dir / f"empty-{store}",
                                                  app_id=f"{STATE_APP_ID}-empty-{store}-{suffix}"),
                                      run_dir / f"empty-{store}.log") for store in ("memory", "rocksdict")}

        # 3. memory: every start reads the whole changelogs
        memory = start_once(base, run_dir / "memory.log")

        # 4. rocksdict: a first start fills the local files; the clean restart reads the tail
        rocks = base.with_(store="rocksdict", data_dir=run_dir / "rocksdict")
        first = start_once(rocks, run_dir / "rocksdict-first.log")
        restart = start_once(rocks, run_dir / "rocksdict.log")
        disk = _du_mib(rocks.data_dir / "faust")

    def per(start: Start, store: str) -> float:
        return max(0.0, start.rss_mib - baseline[store].rss_mib) * PER / held

    rows = [("memory", memory, per(memory, "memory"), "whole changelogs"),
            ("rocksdict", restart, per(restart, "rocksdict"), f"changelog tail; {disk:,.0f} MiB on disk"),
            ("rocksdict, no local files", first, per(first, "rocksdict"), "whole changelogs, into RocksDB")]
    echo("")
    echo(f"{'store':<26} {'restart-to-ready':>16} {'empty worker':>12} {'RSS ready':>10} "
         f"{'MiB per 100k accounts':>21}  read at start")
    for name, start, mib, note in rows:
        store = "memory" if name == "memory" else "rocksdict"
        echo(f"{name:<26} {start.seconds:>15.1f}s {baseline[store].seconds:>11.1f}s {start.rss_mib:>7.0f} MiB "
             f"{mib:>21.0f}  {note}")
    echo(f"({held:,} accounts; memory per 100k accounts = RSS once ready - the empty worker's RSS, scaled)")
    return {"accounts": held, "memory_ready_s": memory.seconds, "rocksdict_ready_s": restart.seconds,
            "rocksdict_first_ready_s": first.seconds, "memory_mib_per_100k": per(memory, "memory"),
            "rocksdict_mib_per_100k": per(restart, "rocksdict"), "rocksdict_disk_mib": disk,
            "empty_ready_s": baseline["memory"].seconds}
