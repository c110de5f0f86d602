"""Two replays side by side: the same RevOps reports over each, and what differs.

Each run's output goes into its own read model (SQLite, through the worker sink's own
``ReadModelWriter``) and is measured with the report queries RevOps already use
(``pipeline.readmodel.queries``), so a number in the what-if means exactly what the same
number means in ``lifecycle report``: no second definition of conversion or compliance.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
import tempfile

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipeline.journey import JourneyDefinition
from pipeline.offline import BreachOutcome, Published, ReplayOutput, matched_rule  # noqa: F401 (re-exported)
from pipeline.readmodel.engine import make_engine, migrate
from pipeline.readmodel.models import accounts
from pipeline.readmodel.queries import (
    FunnelReport, HandoffReport, Period, SlaReport, TimeInStageReport, funnel, handoff_health, sla_compliance,
    time_in_stage,
)
from pipeline.readmodel.writer import ReadModelWriter
from schemas.handoffs import Handoff
from schemas.identity import AccountMerged
from schemas.transitions import StageTransition

WRITE_CHUNK = 5_000
Value = int | float | None


@dataclass(frozen=True)
class RunReports:
    """One run measured: accounts per current stage and the four reports."""

    stages: dict[str, int]
    funnel: FunnelReport
    time_in_stage: TimeInStageReport
    sla: SlaReport
    handoffs: HandoffReport


@dataclass(frozen=True)
class MetricRow:
    """One number, current vs proposed. ``section`` groups rows; ``key`` is what is measured."""

    section: str
    key: str
    metric: str
    baseline: Value
    proposed: Value

    @property
    def delta(self) -> Value:
        if self.baseline is None or self.proposed is None:
            return None
        return round(self.proposed - self.baseline, 4)

    @property
    def changed(self) -> bool:
        return self.baseline != self.proposed


@dataclass(frozen=True)
class AccountChange:
    """An account whose current stage differs, and the entry rule that put it there in each run."""

    account_id: str
    baseline_stage: str | None
    proposed_stage: str | None
    baseline_rule: str
    proposed_rule: str


@dataclass(frozen=True)
class BreachChange:
    """One SLA clock whose outcome differs: ``none`` (met in time or never started), ``breached``
    (still open) or ``met_late``."""

    account_id: str
    sla_id: str
    started_at: datetime
    baseline: str
    proposed: str


@dataclass
class WhatIf:
    """The whole comparison, ready to render."""

    baseline: str
    proposed: str
    since: datetime | None
    until: datetime | None
    records: int
    events: int
    seconds: float
    rows: list[MetricRow] = field(default_factory=list)
    accounts: list[AccountChange] = field(default_factory=list)
    breaches: list[BreachChange] = field(default_factory=list)
    reports: tuple[RunReports, RunReports] | None = None

    @property
    def rate(self) -> float:
        """Canonical events replayed per second (both journeys in one pass)."""
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def section(self, name: str) -> list[MetricRow]:
        return [r for r in self.rows if r.section == name]


# ---- one run into a read model -------------------------------------------------------------------
def write_read_model(output: ReplayOutput, engine: Engine) -> None:
    """What the read-model sink would have written for this run's topics (a run that kept its records)."""
    sink = ReadModelSink(engine)
    records = [*output.transitions, *output.handoffs, *output.breaches]
    for start in range(0, len(records), WRITE_CHUNK):
        sink(records[start:start + WRITE_CHUNK])
    sink.merged(output.merges)


class ReadModelSink:
    """A replay's published records into a read model as they come, one transaction per batch
    (``ReadModelWriter.apply``: idempotent upserts).

    One column does depend on how records are batched: ``ReadModelWriter`` sets an account's
    ``segment`` from the latest handoff *of the last batch that held one of its handoffs*.
    So that a run's reports do not depend on where its batches happen to end (and the two
    runs of a what-if, whose batches end in different places, agree where they should), the
    sink notes each account's latest handoff segment and :meth:`merged`, at the end, sets it."""

    def __init__(self, engine: Engine) -> None:
        migrate(engine)
        self.writer = ReadModelWriter(engine)
        self.segments: dict[str, tuple[datetime, str]] = {}

    def __call__(self, records: Sequence[Published]) -> None:
        segments = self.segments
        for r in records:
            if isinstance(r, Handoff) and r.segment:
                prior = segments.get(r.account_id)
                if prior is None or r.occurred_at >= prior[0]:
                    segments[r.account_id] = (r.occurred_at, r.segment)
        self.writer.apply(records)

    def merged(self, merges: Sequence[AccountMerged]) -> None:
        """Identity's merges (``lifecycle.identity``), once the run is over; then the segments."""
        self.writer.apply([], [(merge.from_account, merge.into_account) for merge in merges])
        rows = [{"a": a, "s": s} for a, (_, s) in self.segments.items()]
        if rows:
            with self.writer.engine.begin() as conn:
                conn.execute(accounts.update().where(accounts.c.account_id == sa.bindparam("a"))
                             .values(segment=sa.bindparam("s")), rows)


@contextmanager
def temporary_read_model(directory: str | Path | None = None) -> Iterator[Engine]:
    """A throw-away, empty SQLite read model."""
    with tempfile.TemporaryDirectory(prefix="lifecycle-whatif-db-", dir=directory) as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'readmodel.db'}")
        try:
            yield engine
        finally:
            engine.dispose()


@contextmanager
def read_model(output: ReplayOutput, directory: str | Path | None = None) -> Iterator[Engine]:
    """A throw-away read model holding one run."""
    with temporary_read_model(directory) as engine:
        write_read_model(output, engine)
        yield engine


def stage_counts(engine: Engine) -> dict[str, int]:
    """Accounts per current stage, merged accounts counted once (as their survivor)."""
    a = accounts.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(a.current_stage, sa.func.count()).where(
            a.merged_into.is_(None), a.current_stage.is_not(None)).group_by(a.current_stage)).all()
    return {stage: n for stage, n in rows}


def measure(engine: Engine, journey: JourneyDefinition, period: Period) -> RunReports:
    return RunReports(stages=stage_counts(engine), funnel=funnel(engine, period, journey),
                      time_in_stage=time_in_stage(engine, period, journey),
                      sla=sla_compliance(engine, period, journey), handoffs=handoff_health(engine, period))


@dataclass(frozen=True)
class RunSummary:
    """What the diff needs of one run, small enough to send between processes: its reports,
    each account's current stage and why, and each SLA clock's outcome."""

    stage_order: list[str]                    # the journey's stages, its path first
    reports: RunReports
    stages: dict[str, str]                    # account → current stage (merged accounts left out)
    why: dict[str, str]                       # account → the entry rule behind its current stage
    breaches: dict[str, BreachOutcome]        # breach id → outcome


def summarize(output: ReplayOutput, engine: Engine, period: Period) -> RunSummary:
    """One finished run, its read model written, measured and reduced to what the diff needs."""
    stages = {a: s.stage for a, s in output.accounts.items() if not s.merged_into and s.stage}
    reasons = {a: why(output, a) for a, s in output.accounts.items() if not s.merged_into and s.history}
    journey = output.journey
    order = [s.id for s in journey.path] + [s.id for s in journey.stages if s not in journey.path]
    return RunSummary(order, measure(engine, journey, period), stages, reasons, output.breach_outcomes)


# ---- the diff -------------------------------------------------------------------------------------
def metric_rows(base: RunReports, prop: RunReports, stage_order: Sequence[str]) -> list[MetricRow]:
    """Every reported number of both runs, matched by what it measures."""
    rows: list[MetricRow] = []

    def side_by_side(section: str, metrics: Sequence[str], before: dict[str, object], after: dict[str, object],
                     order: Sequence[str]) -> None:
        for key in order:
            b, p = before.get(key), after.get(key)
            for metric in metrics:
                rows.append(MetricRow(section, key, metric, getattr(b, metric, None) if b else None,
                                      getattr(p, metric, None) if p else None))

    stages = _ordered(stage_order, base.stages.keys() | prop.stages.keys())
    rows += [MetricRow("stages", s, "accounts", base.stages.get(s, 0), prop.stages.get(s, 0)) for s in stages]
    fb, fp = {s.stage: s for s in base.funnel.stages}, {s.stage: s for s in prop.funnel.stages}
    side_by_side("conversion", ("reached", "converted", "conversion"), fb, fp,
                 [s for s in _ordered(stage_order, fb.keys() | fp.keys())
                  if (fb.get(s) or fp.get(s)).next_stage is not None])  # type: ignore[union-attr]
    tb, tp = {s.stage: s for s in base.time_in_stage.stages}, {s.stage: s for s in prop.time_in_stage.stages}
    side_by_side("time_in_stage", ("transitions", "p50_seconds", "p90_seconds"), tb, tp,
                 [s for s in _ordered(stage_order, tb.keys() | tp.keys())
                  if (tb.get(s) and tb[s].transitions) or (tp.get(s) and tp[s].transitions)])
    sb, sp = {r.sla_id: r for r in base.sla.by_sla}, {r.sla_id: r for r in prop.sla.by_sla}
    side_by_side("sla", ("started", "breached", "met_late", "open", "compliance"), sb, sp,
                 _ordered([r.sla_id for r in prop.sla.by_sla], sb.keys() | sp.keys()))
    teams_b, teams_p = {r.owner_team: r for r in base.sla.by_team}, {r.owner_team: r for r in prop.sla.by_team}
    side_by_side("sla_team", ("started", "breached", "met_late", "open", "compliance"), teams_b, teams_p,
                 sorted(teams_b.keys() | teams_p.keys()))
    hb = {_pair(r.from_team, r.to_team): r for r in base.handoffs.by_pair}
    hp = {_pair(r.from_team, r.to_team): r for r in prop.handoffs.by_pair}
    side_by_side("handoffs", ("total", "open", "accepted", "completed", "dropped", "late",
                              "median_first_action_seconds"), hb, hp, sorted(hb.keys() | hp.keys()))
    return rows


def account_changes(base: RunSummary, prop: RunSummary) -> list[AccountChange]:
    """Accounts whose current stage differs between the runs, with why (the matching entry rule)."""
    before, after = base.stages, prop.stages
    changes = []
    for account_id in sorted(before.keys() | after.keys()):
        if before.get(account_id) != after.get(account_id):
            changes.append(AccountChange(account_id, before.get(account_id), after.get(account_id),
                                         base.why.get(account_id, NO_STAGE), prop.why.get(account_id, NO_STAGE)))
    return changes


NO_STAGE = "no stage (no event matched an entry rule)"


def why(out: ReplayOutput, account_id: str) -> str:
    """The entry rule behind the account's current stage: ``stages[i].entry[j]`` and its trigger."""
    state = out.accounts.get(account_id)
    if state is None or state.merged_into or not state.history:
        return NO_STAGE
    visit = next((v for v in reversed(state.history) if not v.inferred), state.history[-1])
    rule = out.entry_rules.get(StageTransition.make_id(account_id, visit.stage, visit.trigger_event_id))
    when = visit.entered_at.strftime("%Y-%m-%d")
    if rule is None:
        return f"{visit.stage} on {when} (event {visit.trigger_event_id})"
    return f"{visit.stage} on {when}: {rule}"


def breach_changes(base: RunSummary, prop: RunSummary, period: Period) -> list[BreachChange]:
    """SLA clocks (by breach id) whose outcome differs, clocks started in the period."""
    def outcomes(run: RunSummary) -> dict[str, BreachOutcome]:
        return {bid: o for bid, o in run.breaches.items() if period.contains(o[2])}

    before, after = outcomes(base), outcomes(prop)
    changes = []
    for breach_id in before.keys() | after.keys():
        b, p = before.get(breach_id), after.get(breach_id)
        if (b and b[3]) != (p and p[3]):
            account_id, sla_id, started_at, _ = b or p  # type: ignore[misc]
            changes.append(BreachChange(account_id, sla_id, started_at, b[3] if b else "none", p[3] if p else "none"))
    return sorted(changes, key=lambda c: (c.sla_id, c.account_id, c.started_at))


def breach_counts(changes: Sequence[BreachChange]) -> Counter[tuple[str, str, str]]:
    """``(sla, baseline outcome, proposed outcome)`` → clocks: the shape of a change at a glance."""
    return Counter((c.sla_id, c.baseline, c.proposed) for c in changes)


def compare(base: ReplayOutput, prop: ReplayOutput, period: Period, *, records: int, events: int,
            seconds: float, baseline_name: str, proposed_name: str,
            workdir: str | Path | None = None) -> WhatIf:
    """Measure both runs (which kept their records) with the read-model reports and diff them."""
    summaries = []
    for out in (base, prop):
        with read_model(out, workdir) as engine:
            summaries.append(summarize(out, engine, period))
    return diff(summaries[0], summaries[1], period, records=records, events=events, seconds=seconds,
                baseline_name=baseline_name, proposed_name=proposed_name)


def diff(base: RunSummary, prop: RunSummary, period: Period, *, records: int, events: int, seconds: float,
         baseline_name: str, proposed_name: str) -> WhatIf:
    """Two measured runs side by side."""
    return WhatIf(baseline=baseline_name, proposed=proposed_name, since=period.since, until=period.until,
                  records=records, events=events, seconds=seconds,
                  rows=metric_rows(base.reports, prop.reports, prop.stage_order),
                  accounts=account_changes(base, prop), breaches=breach_changes(base, prop, period),
                  reports=(base.reports, prop.reports))


def _ordered(preferred: Sequence[str], keys: set[str] | frozenset[str]) -> list[str]:
    known = [k for k in preferred if k in keys]
    return known + sorted(set(keys) - set(known))


def _pair(from_team: str | None, to_team: str) -> str:
    return f"{from_team or '∅'} → {to_team}"
