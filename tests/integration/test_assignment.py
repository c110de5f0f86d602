"""Two stream workers of one group, as ``/assignment`` shows them: the account partitions are split
between them, while ingest (the raw topics, single-partition by design: one ordered merge and one
identity writer) and the identity tables stay together on one of them. Issue 9 asks for ingest
on both; until the parse stage exists (README, Performance), this is the topology to keep."""

from __future__ import annotations

import time

from pipeline.drive.bench import start_workers
from pipeline.drive.runner import WorkerProcess
from schemas import topics as T
from tests.integration.conftest import unique_settings


def _owned(worker: WorkerProcess) -> dict[str, list[int]] | None:
    return worker.assignment() if worker.get("/readyz", quiet=True) == 200 else None


def test_two_workers_split_the_account_partitions_and_ingest_stays_whole(base_settings, tmp_path):
    settings = unique_settings(base_settings, "assign", tmp_path).with_(role="stream")
    workers = start_workers(settings, 2)
    try:
        deadline, owned = time.monotonic() + 60, [None, None]
        while time.monotonic() < deadline:  # the second to join moves partitions: wait until it settled
            owned = [_owned(w) for w, _ in workers]
            if all(owned) and all(o.get(T.ACCOUNT_EVENTS) for o in owned):  # type: ignore[union-attr]
                break
            time.sleep(0.5)
    finally:
        for worker, _ in workers:
            worker.stop()
    assert all(owned), f"not both ready with an assignment: {owned}"
    accounts = [set(o[T.ACCOUNT_EVENTS]) for o in owned]  # type: ignore[index]
    assert not accounts[0] & accounts[1] and accounts[0] | accounts[1] == set(range(settings.partitions))

    ingest = [o for o in owned if any(topic in o for topic in T.RAW.values())]  # type: ignore[operator]
    assert len(ingest) == 1, f"raw topics on {len(ingest)} workers: {owned}"
    assert {topic: ingest[0].get(topic) for topic in T.RAW.values()} == {topic: [0] for topic in T.RAW.values()}
    changelogs = {topic.removeprefix(f"{settings.app_id}-") for topic in ingest[0]}
    assert {"identity-links-changelog", "identity-accounts-changelog", "ingest-progress-changelog"} <= changelogs
