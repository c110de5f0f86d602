"""Two stream workers of one group, as ``/assignment`` shows them: the raw partitions (parsing) and
the account partitions are split between them, while the merge (the parsed topics, one partition
each by design: one ordered merge and one identity writer) and the identity tables stay together
on one of them, which keeps no more account partitions than the other (``pipeline.assignor``)."""

from __future__ import annotations

import time

import pytest

from pipeline.drive.bench import start_workers
from pipeline.drive.runner import WorkerProcess
from tests.integration.conftest import unique_settings


def _owned(worker: WorkerProcess) -> dict[str, list[int]] | None:
    return worker.assignment() if worker.get("/readyz", quiet=True) == 200 else None


@pytest.mark.parametrize("partitions", [2, 4])
def test_two_workers_split_raw_and_account_partitions_and_the_merge_stays_whole(base_settings, tmp_path, partitions):
    settings = unique_settings(base_settings, "assign", tmp_path).with_(role="stream", partitions=partitions)
    if partitions != base_settings.partitions:  # topics of their own (a worker creates what it lacks)
        settings = settings.with_(topic_namespace=settings.app_id)
    topics = settings.topics
    workers = start_workers(settings, 2)
    try:
        deadline, owned = time.monotonic() + 60, [None, None]
        while time.monotonic() < deadline:  # the second to join moves partitions: wait until it settled
            owned = [_owned(w) for w, _ in workers]
            if all(owned) and all(o.get(topics.account_events) and o.get(topics.raw["crm"]) for o in owned):  # type: ignore[union-attr]
                break
            time.sleep(0.5)
    finally:
        for worker, _ in workers:
            worker.stop()
    assert all(owned), f"not both ready with an assignment: {owned}"
    accounts = [set(o[topics.account_events]) for o in owned]  # type: ignore[index]
    assert not accounts[0] & accounts[1] and accounts[0] | accounts[1] == set(range(settings.partitions))

    every = set(range(settings.partitions))
    for topic in topics.raw.values():  # parsing: each raw topic's partitions split between the two
        raw = [set(o.get(topic, ())) for o in owned]  # type: ignore[union-attr]
        assert all(raw) and not raw[0] & raw[1] and raw[0] | raw[1] == every, f"{topic}: {raw}"

    parsed = settings.topics.parsed(settings.partitions)
    merge = [o for o in owned if any(topic in o for topic in parsed)]  # type: ignore[operator]
    assert len(merge) == 1, f"parsed topics on {len(merge)} workers: {owned}"
    assert {topic: merge[0].get(topic) for topic in parsed} == {topic: [0] for topic in parsed}
    changelogs = {topic.removeprefix(f"{settings.app_id}-") for topic in merge[0]}
    assert {"identity-links-changelog", "identity-accounts-changelog", "ingest-progress-changelog"} <= changelogs
    other = next(o for o in owned if o is not merge[0])
    lightened = {2: (1, 1), 4: (1, 3)}[partitions]  # the merge worker keeps one (pipeline.assignor)
    assert (len(merge[0][topics.account_events]), len(other[topics.account_events])) == lightened  # type: ignore[index]
