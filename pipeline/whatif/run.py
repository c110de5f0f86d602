"""One what-if end to end: journeys checked first, history spooled, the replay (one pass, or one
process per journey), the diff."""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from pipeline.journey import JourneyDefinition, load_journey
from pipeline.offline import OfflinePipeline, SourceKey
from pipeline.readmodel.queries import Period
from pipeline.whatif.compare import ReadModelSink, RunSummary, WhatIf, diff, summarize, temporary_read_model
from pipeline.whatif.history import Spool, export_files, read_partition, spool_files, spool_topics
from schemas.topics import DEFAULT, Topics


PARALLEL_FROM = 20_000   # records: below this a what-if replays in one process (jobs=None)


@dataclass(frozen=True)
class WhatIfConfig:
    proposed: str | Path
    baseline: str | Path | None = None      # None: the shipped journey (or LIFECYCLE_JOURNEY)
    since: datetime | None = None
    until: datetime | None = None
    files: tuple[str | Path, ...] = ()       # export files / directories; none: the raw topics
    vendor: str | None = None
    bootstrap: str | None = None
    topics: Topics = DEFAULT                 # the raw topics' namespace (LIFECYCLE_TOPIC_NAMESPACE)
    now: datetime | None = None              # the pinned wall clock (LIFECYCLE_FROZEN_NOW); None: now
    partitions: int = 4                      # account partitions of the worker being mirrored
    allowed_lateness_seconds: float = 0.0
    accept_test_mode: bool = False
    progress: bool = True
    jobs: int | None = None                  # processes; None: one per journey for a large history


def load_journeys(config: WhatIfConfig) -> tuple[JourneyDefinition, JourneyDefinition]:
    """Proposed first: a broken proposal fails before anything is read (``JourneyError``)."""
    proposed = load_journey(config.proposed)
    return load_journey(config.baseline), proposed


@dataclass(frozen=True)
class _Pass:
    """One replay pass over the spooled history, as sent to a worker process."""

    config: WhatIfConfig
    journeys: tuple[JourneyDefinition, ...]
    paths: dict[SourceKey, str]
    now: datetime
    workdir: str


@dataclass(frozen=True)
class Replayed:
    """Both runs measured, and what the replay read."""

    summaries: tuple[RunSummary, ...]
    records: int
    events: int
    seconds: float


def jobs_for(config: WhatIfConfig, records: int, journeys: int) -> int:
    """Processes to replay in: ``config.jobs``, else one per journey on a machine with the
    cores for it, but one for a small history (starting processes costs more than it saves)."""
    if config.jobs is not None:
        return max(1, min(config.jobs, journeys))
    if records < PARALLEL_FROM:
        return 1
    return max(1, min(journeys, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else os.cpu_count() or 1))


def replay(config: WhatIfConfig, journeys: Sequence[JourneyDefinition], spool: Spool,
           stream: IO[str] | None = None, workdir: str | Path | None = None) -> Replayed:
    """Every journey over the spooled history, each run streamed into its own throw-away read
    model and measured there. With one job, all journeys in one pass (parsing, the merge and
    equal identity settings shared); with more, each journey in its own process, which reads
    and parses the spooled history itself. One progress bar: records replayed (the mean over
    the processes)."""
    from schemas.base import utcnow

    now = config.now or utcnow()
    jobs = jobs_for(config, spool.records, len(journeys))
    with tempfile.TemporaryDirectory(prefix="lifecycle-whatif-db-", dir=workdir) as tmp, \
            tqdm(total=spool.records, unit="rec", desc="replay" if jobs == 1 else f"replay ({jobs} processes)",
                 disable=not config.progress, file=stream or sys.stderr, mininterval=0.5) as bar:
        started = time.monotonic()
        if jobs == 1:
            summaries, records, events = _replay_pass(_Pass(config, tuple(journeys), spool.paths(), now, tmp),
                                                      bar.update)
        else:
            summaries, records, events = _replay_parallel(config, journeys, spool.paths(), now, tmp, bar)
        seconds = time.monotonic() - started
        bar.set_postfix_str(f"{events / seconds if seconds else 0:,.0f} events/s")
    return Replayed(tuple(summaries), records, events, seconds)


def _replay_parallel(config: WhatIfConfig, journeys: Sequence[JourneyDefinition], paths: dict[SourceKey, str],
                     now: datetime, workdir: str, bar: tqdm) -> tuple[list[RunSummary], int, int]:
    """One process per journey; the bar follows the records they have read (shared counters).

    A journey holds compiled rules that do not pickle: forked workers inherit them, spawned
    ones load them again from the configured files (``load_journeys``)."""
    global _inherited
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    read = ctx.Array("q", len(journeys), lock=False)
    _inherited = tuple(journeys)
    try:
        with ProcessPoolExecutor(max_workers=len(journeys), mp_context=ctx, initializer=_child_init,
                                 initargs=(read,)) as pool:
            futures = [pool.submit(_child, i, _Pass(config, (), paths, now, workdir)) for i in range(len(journeys))]
            pending = set(futures)
            while pending:
                _, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
                bar.update(sum(read) // len(journeys) - bar.n)
                if any(f.done() and f.exception() for f in futures):
                    for f in pending:
                        f.cancel()
                    break
            results = [f.result() for f in futures]   # raises a worker's exception
    finally:
        _inherited = ()
    summaries = [r[0][0] for r in results]
    records, events = results[0][1], results[0][2]
    return summaries, records, events


_read_counts: Any = None                            # in a worker: the per-journey counters of records read
_inherited: tuple[JourneyDefinition, ...] = ()      # the journeys, for forked workers


def _child_init(counts: Any) -> None:
    global _read_counts
    _read_counts = counts


def _child(index: int, job: _Pass) -> tuple[list[RunSummary], int, int]:
    counts = _read_counts
    journey = _inherited[index] if _inherited else load_journeys(job.config)[index]

    def progress(n: int) -> None:
        counts[index] += n

    return _replay_pass(replace(job, journeys=(journey,)), progress)


def _replay_pass(job: _Pass, progress: Callable[[int], None]) -> tuple[list[RunSummary], int, int]:
    """One pass of ``job.journeys`` over the spooled partitions, each into its own read model."""
    config = job.config
    period = Period(config.since, config.until)
    with ExitStack() as stack:
        engines = [stack.enter_context(temporary_read_model(job.workdir)) for _ in job.journeys]
        sinks = [ReadModelSink(engine) for engine in engines]
        pipeline = OfflinePipeline(job.journeys, now=job.now, partitions=config.partitions, until=config.until,
                                   accept_test_mode=config.accept_test_mode,
                                   allowed_lateness_seconds=config.allowed_lateness_seconds, sinks=sinks)
        outputs = pipeline.run({key: read_partition(key, path) for key, path in job.paths.items()},
                               progress=progress)
        summaries = []
        for out, sink, engine in zip(outputs, sinks, engines):
            sink.merged(out.merges)
            summaries.append(summarize(out, engine, period))
    return summaries, pipeline.stats.records, pipeline.stats.events


def gather(config: WhatIfConfig, spool: Spool, stream: IO[str] | None = None) -> None:
    """The history into the spool: export files through the replay connector, or the raw topics."""
    if config.files:
        spool_files(export_files(config.files), spool, config.vendor, progress=config.progress)
        return
    if not config.bootstrap:
        raise ValueError("no history: give --from-files or set KAFKA_BOOTSTRAP_SERVERS")
    with tqdm(unit="rec", desc="read raw topics", disable=not config.progress, file=stream or sys.stderr,
              mininterval=0.5) as bar:
        spool_topics(config.bootstrap, spool, tuple(config.topics.raw.values()), progress=bar.update)


def run_whatif(config: WhatIfConfig, stream: IO[str] | None = None) -> WhatIf:
    baseline, proposed = load_journeys(config)
    period = Period(config.since, config.until)
    with Spool() as spool:
        gather(config, spool, stream)
        done = replay(config, [baseline, proposed], spool, stream)
    before, after = done.summaries
    return diff(before, after, period, records=done.records, events=done.events, seconds=done.seconds,
                baseline_name=_name(config.baseline, baseline), proposed_name=_name(config.proposed, proposed))


def _name(path: str | Path | None, journey: JourneyDefinition) -> str:
    return f"{journey.name} v{journey.version} ({Path(path).name if path else 'shipped'})"
