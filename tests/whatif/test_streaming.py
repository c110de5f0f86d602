"""A replay that streams its records into a read model (a what-if's runs) writes exactly the
read model of one that keeps them and writes them at the end, and keeps what the diff needs."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from pipeline import offline
from pipeline.journey import load_journey
from pipeline.offline import OfflinePipeline, RawInput
from pipeline.readmodel.engine import make_engine
from pipeline.readmodel.models import TABLES
from pipeline.readmodel.queries import Period
from pipeline.sample import SampleConfig, generate
from pipeline.whatif.compare import ReadModelSink, summarize, write_read_model
from schemas import topics as T
from tests.whatif.helpers import kickoff_journey

NOW = datetime(2026, 11, 2, 12, tzinfo=timezone.utc)


def _rows(engine: sa.Engine) -> dict[str, set[tuple]]:
    with engine.connect() as conn:
        return {t.name: {tuple(r) for r in conn.execute(sa.select(*[c for c in t.c if c.name != "updated_at"]))}
                for t in TABLES}


def _sources() -> dict[tuple[str, int], list[RawInput]]:
    sources: dict[tuple[str, int], list[RawInput]] = {}
    for record in generate(SampleConfig(accounts=30, seed=7)):
        key = (T.RAW[record.source], 0)
        part = sources.setdefault(key, [])
        part.append(RawInput(key[0], 0, len(part), record.to_json()))
    return sources


def test_streamed_read_model_equals_the_kept_one(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(offline, "SINK_BATCH", 97)   # many small batches, kinds interleaved
    journeys = [load_journey(), load_journey(kickoff_journey(tmp_path, 3))]
    kept = OfflinePipeline(journeys, now=NOW).run(_sources())
    engines = [make_engine(f"sqlite:///{tmp_path / f'streamed-{i}.db'}") for i in range(2)]
    sinks = [ReadModelSink(e) for e in engines]
    streamed = OfflinePipeline(journeys, now=NOW, sinks=sinks).run(_sources())
    for i, (k, s) in enumerate(zip(kept, streamed)):
        sinks[i].merged(s.merges)
        assert not s.transitions and not s.handoffs and not s.breaches and not s.triggers   # nothing kept
        reference = make_engine(f"sqlite:///{tmp_path / f'kept-{i}.db'}")
        write_read_model(k, reference)
        assert len(k.transitions) > 100 and len(k.breaches) > 10
        assert _rows(engines[i]) == _rows(reference)
        assert s.entry_rules == k.entry_rules and s.breach_outcomes == k.breach_outcomes
        assert summarize(s, engines[i], Period()) == summarize(k, reference, Period())
