"""One what-if end to end: journeys checked first, history spooled, one replay pass, the diff."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from tqdm import tqdm

from pipeline.journey import JourneyDefinition, load_journey
from pipeline.offline import OfflinePipeline, ReplayOutput
from pipeline.readmodel.queries import Period
from pipeline.whatif.compare import WhatIf, compare
from pipeline.whatif.history import Spool, export_files, spool_files, spool_topics
from schemas.topics import DEFAULT, Topics


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


def load_journeys(config: WhatIfConfig) -> tuple[JourneyDefinition, JourneyDefinition]:
    """Proposed first: a broken proposal fails before anything is read (``JourneyError``)."""
    proposed = load_journey(config.proposed)
    return load_journey(config.baseline), proposed


def replay(config: WhatIfConfig, journeys: Sequence[JourneyDefinition], spool: Spool,
           stream: IO[str] | None = None) -> tuple[list[ReplayOutput], OfflinePipeline, float]:
    """Both journeys over the spooled history in one pass; returns outputs, the driver, seconds."""
    from schemas.base import utcnow

    now = config.now or utcnow()
    pipeline = OfflinePipeline(journeys, now=now, partitions=config.partitions, until=config.until,
                               accept_test_mode=config.accept_test_mode,
                               allowed_lateness_seconds=config.allowed_lateness_seconds)
    started = time.monotonic()
    with tqdm(total=spool.records, unit="rec", desc="replay", disable=not config.progress,
              file=stream or sys.stderr, mininterval=0.5) as bar:
        outputs = pipeline.run(spool.sources(), progress=bar.update)
        seconds = time.monotonic() - started
        bar.set_postfix_str(f"{pipeline.stats.events / seconds if seconds else 0:,.0f} events/s")
    return outputs, pipeline, seconds


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
        (before, after), pipeline, seconds = replay(config, [baseline, proposed], spool, stream)
    return compare(before, after, period, records=pipeline.stats.records, events=pipeline.stats.events,
                   seconds=seconds, baseline_name=_name(config.baseline, baseline),
                   proposed_name=_name(config.proposed, proposed))


def _name(path: str | Path | None, journey: JourneyDefinition) -> str:
    return f"{journey.name} v{journey.version} ({Path(path).name if path else 'shipped'})"
