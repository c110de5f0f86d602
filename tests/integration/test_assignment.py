"""Two stream workers of one group, as ``/assignment`` shows them: the raw partitions (parsing) and
the account partitions are split between them, while the merge (the parsed topics, one partition
each by design: one ordered merge and one identity writer) and the identity tables stay together
on one of them."""

from __future__ import annotations

import time

from pipeline.drive.bench import start_workers
from pipeline.drive.runner import WorkerProcess
from schemas import topics as T
from tests.integration.conftest import unique_settings


def _owned(worker: WorkerProcess) -> dict[str, list[int]] | None:
    return worker.assignment() if worker.get("/readyz", quiet=True) == 200 else None


def test_two_workers_split_raw_and_account_partitions_and_the_merge_stays_whole(base_settings, tmp_path):
    settings = unique_settings(base_settings, "assign", tmp_path).with_(role="stream")
    workers = start_workers(settings, 2)
    try:
        deadline, owned = time.monotonic() + 60, [None, None]
        while time.monotonic() < deadline:  # the second to join moves partitions: wait until it settled
            owned = [_owned(w) for w, _ in workers]
            if all(owned) and all(o.get(T.ACCOUNT_EVENTS) and o.get(T.RAW_CRM) for o in owned):  # type: ignore[union-attr]
                break
            time.sleep(0.5)
    finally:
        for worker, _ in workers:
            worker.stop()
    assert all(owned), f"not both ready with an assignment: {owned}"
    accounts = [set(o[T.ACCOUNT_EVENTS]) for o in owned]  # type: ignore[index]
    assert not accounts[0] & accounts[1] and accounts[0] | accounts[1] == set(range(settings.partitions))

    every = set(range(settings.partitions))
    for topic in T.RAW.values():  # parsing: each raw topic's partitions split between the two
        raw = [set(o.get(topic, ())) for o in owned]  # type: ignore[union-attr]
        assert all(raw) and not raw[0] & raw[1] and raw[0] | raw[1] == every, f"{topic}: {raw}"

    parsed = settings.topics.parsed(settings.partitions)
    merge = [o for o in owned if any(topic in o for topic in parsed)]  # type: ignore[operator]
    assert len(merge) == 1, f"parsed topics on {len(merge)} workers: {owned}"
    assert {topic: merge[0].get(topic) for topic in parsed} == {topic: [0] for topic in parsed}
    changelogs = {topic.removeprefix(f"{settings.app_id}-") for topic in merge[0]}
    assert {"identity-links-changelog", "identity-accounts-changelog", "ingest-progress-changelog"} <= changelogs
