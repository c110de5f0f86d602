"""The ingest step keeps pace with the account partitions: it waits while one of its own worker
has more than ``PACE_AHEAD`` of its sent messages not yet applied, or one of another worker has
not committed more than ``REMOTE_PACE_AHEAD`` of the batches written to it, so a merge's
journal, sent behind them, reaches the survivor soon and little waits in held slots."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from types import SimpleNamespace
from typing import Any

from pipeline.agents import ingest as ingest_module
from faust.types import TP

from pipeline.agents.ingest import PACE_AHEAD, REMOTE_PACE_AHEAD, Ingest
from pipeline.ingest import INGEST_ORIGIN
from tests.fakes import IngestPipeline


class Pipeline(IngestPipeline):
    """With one local account partition (0), and another worker's commits in ``commits``."""

    def __init__(self) -> None:
        super().__init__()
        self.applied = {INGEST_ORIGIN: 0}
        self.accounts_agent = SimpleNamespace(partitions={0: SimpleNamespace(progress=SimpleNamespace(
            last_seq=self.applied))}, owns=lambda partition: partition == 0)
        self.commits: dict[int, int] = {}          # the group's commits there (another worker's)
        self.reads = 0

    async def committed_at(self, tps: Any) -> dict[TP, int]:
        return {}

    async def of_group(self, tps: Any) -> dict[TP, int]:
        self.reads += 1
        if self.commits is None:
            raise ConnectionError("the group is rebalancing")
        if self.commits == "slow":
            await asyncio.sleep(60)
        return {tp: self.commits.get(tp.partition, 0) for tp in tps}


async def _sent(ingest: Ingest, pipeline: Pipeline, numbers: dict[str, int]) -> None:
    """Release-and-flush as far as ``numbers`` (the ingest's counters per account partition)."""
    pipeline.ingest_state["sent"] = numbers
    ingest._outbox = [("acct:a", b"{}")]
    await ingest._flush_outbox()


async def _timed(ingest: Ingest) -> float:
    started = time.monotonic()
    await ingest._pace()
    return time.monotonic() - started


async def test_the_ingest_waits_while_a_local_partition_is_far_behind_and_goes_on_once_it_caught_up(
        monkeypatch) -> None:
    monkeypatch.setattr(ingest_module, "PACE_WAIT_MAX", 10.0)
    pipeline = Pipeline()
    ingest = Ingest(pipeline)  # type: ignore[arg-type]
    assert await _timed(ingest) < 0.05                   # nothing sent yet

    await _sent(ingest, pipeline, {"0": PACE_AHEAD, "1": 5 * PACE_AHEAD})   # 1 is another worker's
    assert await _timed(ingest) < 0.05                   # partition 0 is PACE_AHEAD behind: fine

    await _sent(ingest, pipeline, {"0": 3 * PACE_AHEAD, "1": 6 * PACE_AHEAD})
    unsent = {"0": 9 * PACE_AHEAD}
    pipeline.ingest_state["sent"] = unsent               # released, not flushed: not waited for

    async def catch_up() -> None:
        await asyncio.sleep(0.3)
        pipeline.applied[INGEST_ORIGIN] = 2 * PACE_AHEAD  # now PACE_AHEAD behind what was sent

    helper = asyncio.ensure_future(catch_up())
    waited = await _timed(ingest)
    await helper
    assert 0.25 < waited < 5.0                        # woken by the catch-up, not the bound


async def test_the_wait_is_bounded_and_ends_at_a_stop(monkeypatch) -> None:
    pipeline = Pipeline()
    ingest = Ingest(pipeline)  # type: ignore[arg-type]
    await _sent(ingest, pipeline, {"0": 4 * PACE_AHEAD})
    monkeypatch.setattr(ingest_module, "PACE_WAIT_MAX", 0.2)
    assert 0.15 < await _timed(ingest) < 5.0             # a partition stuck (on a gap): not forever
    pipeline.app.should_stop = True
    assert await _timed(ingest) < 0.05


async def test_a_rebalance_forgets_what_was_sent() -> None:
    pipeline = Pipeline()
    ingest = Ingest(pipeline)  # type: ignore[arg-type]
    await _sent(ingest, pipeline, {"0": 4 * PACE_AHEAD})
    await ingest.on_assigned(set())
    assert await _timed(ingest) < 0.05


async def test_the_ingest_waits_while_another_workers_partition_has_not_committed_its_batches(
        monkeypatch) -> None:
    monkeypatch.setattr(ingest_module, "PACE_WAIT_MAX", 10.0)
    pipeline = Pipeline()
    ingest = Ingest(pipeline)  # type: ignore[arg-type]
    # partition 0 is this worker's own (paced by what it applied); 1 is another worker's
    pipeline.ingest_batches = {0: deque(range(100, 150)), 1: deque(range(10, 10 + REMOTE_PACE_AHEAD))}
    assert await _timed(ingest) < 0.05          # 1 has REMOTE_PACE_AHEAD batches past its commit: fine

    pipeline.ingest_batches[1] = deque(range(10, 10 + 3 * (REMOTE_PACE_AHEAD + 1), 3))  # one too many

    async def commit() -> None:
        await asyncio.sleep(0.3)
        pipeline.commits[1] = 10 + 3        # the first batch applied and committed: REMOTE_PACE_AHEAD left

    helper = asyncio.ensure_future(commit())
    waited = await _timed(ingest)
    await helper
    assert 0.25 < waited < 5.0                  # woken by the commit, not the bound
    assert pipeline.reads < 30                  # the commits read at most every REMOTE_READ_EVERY
    assert list(pipeline.ingest_batches[1]) == list(range(13, 10 + 3 * (REMOTE_PACE_AHEAD + 1), 3))  # committed: gone


async def test_unreadable_commits_do_not_hold_the_ingest() -> None:
    pipeline = Pipeline()
    ingest = Ingest(pipeline)  # type: ignore[arg-type]
    pipeline.ingest_batches = {1: deque(range(10 * REMOTE_PACE_AHEAD))}
    pipeline.commits = None   # type: ignore[assignment]
    assert await _timed(ingest) < 0.05


async def test_a_slow_read_of_the_commits_does_not_hold_the_ingest(monkeypatch) -> None:
    monkeypatch.setattr(ingest_module, "REMOTE_READ_TIMEOUT", 0.2)
    pipeline = Pipeline()
    ingest = Ingest(pipeline)  # type: ignore[arg-type]
    pipeline.ingest_batches = {1: deque(range(10 * REMOTE_PACE_AHEAD))}
    pipeline.commits = "slow"   # type: ignore[assignment]
    assert 0.15 < await _timed(ingest) < 1.0
    assert await _timed(ingest) < 0.05       # and not read again at once: a slow broker costs one wait
    assert pipeline.reads == 1
