"""The RevOps reports, each a typed function over the read model.

Every report reads rows with plain SQL and does its arithmetic in Python, so the
answers are the same on SQLite and PostgreSQL. Periods are half-open,
``since <= t < until``; either end may be open (``None``).

Accounts merged by identity resolution (``accounts.merged_into``) are counted
as the account they were merged into, so a stitched customer is one account in
every report.

Definitions (what RevOps reads in each column):

* **funnel** — the cohort is the accounts whose *first* stage entry falls in
  the period. ``reached`` counts cohort accounts that ever entered the stage
  (inferred entries included, so a jump does not leave holes); ``converted``
  counts those of them that also reached a *later* path stage, and
  ``conversion = converted / reached``.
* **time in stage** — for each transition leaving a stage in the period, the
  time spent in that stage (the transition's ``time_in_previous_stage_seconds``,
  else the gap since entering it). Stages entered by an inferred transition are
  skipped: the account never really sat in them. p50/p90 interpolate linearly
  (like SQL ``percentile_cont``).
* **speed to stage** — for the funnel's cohort, the median time from an
  account's first stage entry to its first entry into each stage.
* **SLA compliance** — per SLA: ``breached`` = breach rows whose clock started
  in the period (met late or not), ``met_late`` = those the expected event
  closed after the deadline, ``open`` = breached and still unmet. For SLAs whose
  clock starts on entering a stage (journey ``slas[].start`` anchors that are all
  ``stage:``), ``started`` = entries into those stages in the period
  (restricted to the SLA's segments; an account entering twice starts two
  clocks; clocks later cancelled, e.g. by churn, still count as started) and
  ``compliance = 1 − breached / started``. Event-anchored SLAs, the per-deal
  promised time-to-value SLA, and SLAs no longer in the journey report breaches
  only: ``started`` and ``compliance`` are empty. Per owner team the
  same sums, with compliance over the stage-anchored SLAs only.
* **handoffs** — by team pair, for handoffs opened in the period: ``open`` (no
  first action yet), ``accepted``, ``completed``, ``dropped`` (no action within
  the acceptance window and none since), ``late`` (accepted or completed after
  the pipeline had marked it dropped, i.e. after its window).
* **churn** — accounts handed from sales to customer success (the
  ``closed-won → onboarding`` transition) in the period; ``churned`` = those
  with a ``churned`` transition within N days after it. Only accounts whose
  N-day window has ended by ``as_of`` count (``matured``), so a young cohort
  does not look healthier than it is.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from statistics import median
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pipeline.journey import JourneyDefinition, StageKind, load_journey
from pipeline.readmodel.models import accounts, handoffs, sla_breaches, stage_history
from schemas.handoffs import HandoffStatus
from schemas.sla import SlaBreachStatus


# ---- periods ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Period:
    """A half-open time range ``[since, until)``; ``None`` leaves that end open."""

    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} must carry a timezone (UTC offset)")
        if self.since and self.until and self.since >= self.until:
            raise ValueError(f"since ({self.since.isoformat()}) must be before until ({self.until.isoformat()})")

    def contains(self, at: datetime) -> bool:
        return (self.since is None or at >= self.since) and (self.until is None or at < self.until)

    def where(self, column: Any) -> Any:
        clauses = []
        if self.since is not None:
            clauses.append(column >= self.since)
        if self.until is not None:
            clauses.append(column < self.until)
        return sa.and_(sa.true(), *clauses)


def parse_instant(text: str, name: str = "time") -> datetime:
    """``2024-05-01`` or an ISO 8601 datetime; without an offset it is read as UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{name}: {text!r} is not a date (YYYY-MM-DD) or ISO 8601 datetime") from None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


# ---- result types ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Section:
    """One table of a report: its name, the dataclass of its rows, and the rows."""

    name: str
    row_type: type
    rows: Sequence[Any]

    @property
    def columns(self) -> list[str]:
        """Scalar fields only; nested details are for JSON."""
        return [f.name for f in dataclasses.fields(self.row_type)
                if not str(f.type).startswith(("dict", "list"))]


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # transition | handoff | sla
    account_id: str
    ref_id: str
    summary: str
    status: str | None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Timeline:
    title: ClassVar[str] = "Account timeline"
    account_id: str
    current_stage: str | None
    stage_entered_at: datetime | None
    owner_team: str | None
    owner_id: str | None
    segment: str | None
    merged_into: str | None
    merged_from: list[str]
    entries: list[TimelineEntry]

    def sections(self) -> list[Section]:
        return [Section("timeline", TimelineEntry, self.entries)]


@dataclass(frozen=True)
class FunnelStage:
    stage: str
    kind: str
    owner_team: str | None
    reached: int
    converted: int | None
    next_stage: str | None
    conversion: float | None


@dataclass(frozen=True)
class FunnelReport:
    title: ClassVar[str] = "Funnel conversion"
    since: datetime | None
    until: datetime | None
    cohort_size: int
    stages: list[FunnelStage]

    def sections(self) -> list[Section]:
        return [Section("funnel", FunnelStage, self.stages)]


@dataclass(frozen=True)
class StageTime:
    stage: str
    transitions: int
    p50_seconds: float | None
    p90_seconds: float | None


@dataclass(frozen=True)
class TimeInStageReport:
    title: ClassVar[str] = "Time in stage"
    since: datetime | None
    until: datetime | None
    stages: list[StageTime]

    def sections(self) -> list[Section]:
        return [Section("time_in_stage", StageTime, self.stages)]


@dataclass(frozen=True)
class StageSpeed:
    stage: str
    accounts: int
    median_seconds: float | None


@dataclass(frozen=True)
class SpeedReport:
    title: ClassVar[str] = "Speed to stage (from first stage)"
    since: datetime | None
    until: datetime | None
    cohort_size: int
    stages: list[StageSpeed]

    def sections(self) -> list[Section]:
        return [Section("speed", StageSpeed, self.stages)]


@dataclass(frozen=True)
class SlaCompliance:
    sla_id: str
    sla_name: str
    owner_team: str
    start_stage: str | None
    started: int | None
    breached: int
    met_late: int
    open: int
    compliance: float | None


@dataclass(frozen=True)
class TeamCompliance:
    owner_team: str
    started: int | None
    breached: int
    met_late: int
    open: int
    compliance: float | None


@dataclass(frozen=True)
class SlaReport:
    title: ClassVar[str] = "SLA compliance"
    since: datetime | None
    until: datetime | None
    by_sla: list[SlaCompliance]
    by_team: list[TeamCompliance]

    def sections(self) -> list[Section]:
        return [Section("by_sla", SlaCompliance, self.by_sla), Section("by_team", TeamCompliance, self.by_team)]


@dataclass(frozen=True)
class HandoffPair:
    from_team: str | None
    to_team: str
    total: int
    open: int
    accepted: int
    completed: int
    dropped: int
    late: int
    median_first_action_seconds: float | None


@dataclass(frozen=True)
class HandoffItem:
    handoff_id: str
    account_id: str
    from_team: str | None
    to_team: str
    status: str
    late: bool
    occurred_at: datetime
    first_action_at: datetime | None
    dropped_at: datetime | None


@dataclass(frozen=True)
class HandoffReport:
    title: ClassVar[str] = "Handoffs"
    since: datetime | None
    until: datetime | None
    by_pair: list[HandoffPair]
    attention: list[HandoffItem]  # open, late or dropped: the ones someone should look at

    def sections(self) -> list[Section]:
        return [Section("by_pair", HandoffPair, self.by_pair), Section("attention", HandoffItem, self.attention)]


@dataclass(frozen=True)
class ChurnRow:
    segment: str
    window_days: int
    handed_off: int
    matured: int
    churned: int
    churn_rate: float | None


@dataclass(frozen=True)
class ChurnReport:
    title: ClassVar[str] = "Churn after the sales → customer success handoff"
    since: datetime | None
    until: datetime | None
    as_of: datetime
    from_stage: str
    to_stage: str
    churn_stage: str
    rows: list[ChurnRow]

    def sections(self) -> list[Section]:
        return [Section("churn", ChurnRow, self.rows)]


Report = Timeline | FunnelReport | TimeInStageReport | SpeedReport | SlaReport | HandoffReport | ChurnReport


class AccountNotFound(LookupError):
    """The read model holds nothing for this account id."""


# ---- shared loading ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Tr:
    account_id: str  # as recorded
    root: str        # after merges
    from_stage: str | None
    to_stage: str
    occurred_at: datetime
    inferred: bool
    time_in_previous: float | None


def _merge_roots(conn: Connection) -> dict[str, str]:
    """Merged account id → the id it ends up as, following merge chains."""
    parent = dict(conn.execute(
        sa.select(accounts.c.account_id, accounts.c.merged_into).where(accounts.c.merged_into.is_not(None))
    ).all())
    roots: dict[str, str] = {}
    for start in parent:
        node, seen = start, {start}
        while node in parent and parent[node] not in seen:
            node = parent[node]
            seen.add(node)
        roots[start] = node
    return roots


def _history(conn: Connection, roots: dict[str, str]) -> dict[str, list[_Tr]]:
    """Every transition, grouped by (merged) account, in event-time order."""
    h = stage_history.c
    rows = conn.execute(sa.select(
        h.account_id, h.from_stage, h.to_stage, h.occurred_at, h.inferred, h.time_in_previous_stage_seconds,
    ).order_by(h.account_id, h.occurred_at, h.emitted_at, h.transition_id))
    out: dict[str, list[_Tr]] = defaultdict(list)
    for r in rows:
        root = roots.get(r.account_id, r.account_id)
        out[root].append(_Tr(r.account_id, root, r.from_stage, r.to_stage, r.occurred_at, bool(r.inferred),
                             r.time_in_previous_stage_seconds))
    for trs in out.values():
        trs.sort(key=lambda t: t.occurred_at)
    return out


def _first_entries(history: dict[str, list[_Tr]]) -> dict[str, dict[str, datetime]]:
    """Per account: the first time it entered each stage."""
    out: dict[str, dict[str, datetime]] = {}
    for root, trs in history.items():
        firsts: dict[str, datetime] = {}
        for t in trs:
            if t.to_stage not in firsts or t.occurred_at < firsts[t.to_stage]:
                firsts[t.to_stage] = t.occurred_at
        out[root] = firsts
    return out


def _cohort(firsts: dict[str, dict[str, datetime]], period: Period) -> list[str]:
    return sorted(a for a, f in firsts.items() if f and period.contains(min(f.values())))


def _stage_order(journey: JourneyDefinition, extra: Iterable[str] = ()) -> list[str]:
    """Path stages in order, then the journey's other stages, then unknown ones seen in data."""
    order = [s.id for s in journey.path] + [s.id for s in journey.stages if s.kind is not StageKind.PATH]
    return order + sorted(set(extra) - set(order))


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolation percentile (SQL ``percentile_cont``); ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _ratio(part: int, whole: int | None) -> float | None:
    return round(part / whole, 4) if whole else None


# ---- the reports -------------------------------------------------------------------------------
def account_timeline(engine: Engine, account_id: str) -> Timeline:
    """Stage history, handoffs and SLA breaches of one account (and any merged into it), in time order."""
    with engine.connect() as conn:
        roots = _merge_roots(conn)
        members = sorted({account_id} | {a for a, r in roots.items() if r == account_id})
        account = conn.execute(sa.select(accounts).where(accounts.c.account_id == account_id)).mappings().first()
        entries: list[tuple[datetime, int, TimelineEntry]] = []
        h = stage_history.c
        for r in conn.execute(sa.select(stage_history).where(h.account_id.in_(members))).mappings():
            arrow = f"{r['from_stage'] or '∅'} → {r['to_stage']}"
            entries.append((r["occurred_at"], 0, TimelineEntry(
                at=r["occurred_at"], kind="transition", account_id=r["account_id"], ref_id=r["transition_id"],
                summary=arrow + (" (inferred)" if r["inferred"] else ""), status=r["direction"],
                details={k: r[k] for k in ("trigger_kind", "trigger_event_id", "from_owner_team", "to_owner_team",
                                           "owner_id", "time_in_previous_stage_seconds", "inferred")},
            )))
        for r in conn.execute(sa.select(handoffs).where(handoffs.c.account_id.in_(members))).mappings():
            entries.append((r["occurred_at"], 1, TimelineEntry(
                at=r["occurred_at"], kind="handoff", account_id=r["account_id"], ref_id=r["handoff_id"],
                summary=f"handoff {r['from_team'] or '∅'} → {r['to_team']} ({r['handoff_event']})",
                status=r["status"],
                details={k: r[k] for k in ("version", "from_owner", "to_owner", "from_stage", "to_stage", "segment",
                                           "first_action_at", "overlap_until", "closed_at", "dropped_at")},
            )))
        for r in conn.execute(sa.select(sla_breaches).where(sla_breaches.c.account_id.in_(members))).mappings():
            entries.append((r["deadline"], 2, TimelineEntry(
                at=r["deadline"], kind="sla", account_id=r["account_id"], ref_id=r["breach_id"],
                summary=f"SLA {r['sla_name']} missed ({r['owner_team']}, {r['severity']})", status=r["status"],
                details={k: r[k] for k in ("sla_id", "started_at", "deadline", "met_at", "late_by_seconds",
                                           "breached_at")},
            )))
    if account is None and not entries:
        raise AccountNotFound(f"no account {account_id!r} in the read model")
    entries.sort(key=lambda e: (e[0], e[1], e[2].ref_id))
    get = (lambda k: account[k]) if account is not None else (lambda k: None)
    return Timeline(
        account_id=account_id, current_stage=get("current_stage"), stage_entered_at=get("stage_entered_at"),
        owner_team=get("owner_team"), owner_id=get("owner_id"), segment=get("segment"),
        merged_into=get("merged_into"), merged_from=[m for m in members if m != account_id],
        entries=[e for _, _, e in entries],
    )


def funnel(engine: Engine, period: Period = Period(), journey: JourneyDefinition | None = None) -> FunnelReport:
    """Per stage: how many of the period's cohort reached it, and how many of those went further."""
    journey = journey or load_journey()
    with engine.connect() as conn:
        firsts = _first_entries(_history(conn, _merge_roots(conn)))
    cohort = _cohort(firsts, period)
    path = [s.id for s in journey.path]
    reached: dict[str, set[str]] = defaultdict(set)
    for a in cohort:
        for stage in firsts[a]:
            reached[stage].add(a)
    rows = []
    for stage in _stage_order(journey, reached):
        n = len(reached[stage])
        spec = journey.by_id.get(stage)
        if stage in path and path.index(stage) + 1 < len(path):
            later = set().union(*(reached[s] for s in path[path.index(stage) + 1:]))
            converted: int | None = len(reached[stage] & later)
            nxt: str | None = path[path.index(stage) + 1]
        else:
            converted, nxt = None, None
        rows.append(FunnelStage(
            stage=stage, kind=spec.kind.value if spec else "unknown", owner_team=spec.owner if spec else None,
            reached=n, converted=converted, next_stage=nxt,
            conversion=_ratio(converted, n) if converted is not None else None,
        ))
    return FunnelReport(since=period.since, until=period.until, cohort_size=len(cohort), stages=rows)


def time_in_stage(engine: Engine, period: Period = Period(),
                  journey: JourneyDefinition | None = None) -> TimeInStageReport:
    """p50/p90 of the time accounts spent in each stage, over transitions leaving it in the period."""
    journey = journey or load_journey()
    with engine.connect() as conn:
        history = _history(conn, {})  # durations belong to each recorded stream, merges aside
    spent: dict[str, list[float]] = defaultdict(list)
    for trs in history.values():
        entered: dict[str, _Tr] = {}
        for t in trs:
            if t.from_stage is not None and period.contains(t.occurred_at):
                entry = entered.get(t.from_stage)
                seconds = t.time_in_previous
                if seconds is None and entry is not None:
                    seconds = (t.occurred_at - entry.occurred_at).total_seconds()
                if seconds is not None and not (entry is not None and entry.inferred):
                    spent[t.from_stage].append(seconds)
            entered[t.to_stage] = t
    stages = [
        StageTime(stage=s, transitions=len(spent[s]), p50_seconds=percentile(spent[s], 0.5),
                  p90_seconds=percentile(spent[s], 0.9))
        for s in _stage_order(journey, spent)
    ]
    return TimeInStageReport(since=period.since, until=period.until, stages=stages)


def speed_to_stage(engine: Engine, period: Period = Period(),
                   journey: JourneyDefinition | None = None) -> SpeedReport:
    """Median time from each cohort account's first stage entry to its first entry of every stage."""
    journey = journey or load_journey()
    with engine.connect() as conn:
        firsts = _first_entries(_history(conn, _merge_roots(conn)))
    cohort = _cohort(firsts, period)
    deltas: dict[str, list[float]] = defaultdict(list)
    for a in cohort:
        start = min(firsts[a].values())
        for stage, at in firsts[a].items():
            deltas[stage].append((at - start).total_seconds())
    stages = [
        StageSpeed(stage=s, accounts=len(deltas[s]), median_seconds=median(deltas[s]) if deltas[s] else None)
        for s in _stage_order(journey, deltas)
    ]
    return SpeedReport(since=period.since, until=period.until, cohort_size=len(cohort), stages=stages)


def sla_compliance(engine: Engine, period: Period = Period(),
                   journey: JourneyDefinition | None = None) -> SlaReport:
    """Breaches, late recoveries and open breaches per SLA and owner team, with compliance where knowable."""
    journey = journey or load_journey()
    b = sla_breaches.c
    with engine.connect() as conn:
        roots = _merge_roots(conn)
        breaches = conn.execute(
            sa.select(b.sla_id, b.sla_name, b.owner_team, b.status, b.met_at).where(period.where(b.started_at))
        ).all()
        segments = {a: s for a, s in conn.execute(sa.select(accounts.c.account_id, accounts.c.segment))}
        anchors = {r.id: _start_stages(r) for r in journey.slas}
        start_stages = set().union(*(a for a in anchors.values() if a))
        entries = conn.execute(
            sa.select(stage_history.c.account_id, stage_history.c.to_stage)
            .where(stage_history.c.to_stage.in_(start_stages), period.where(stage_history.c.occurred_at))
        ).all() if start_stages else []

    def segment_of(account_id: str) -> str:
        root = roots.get(account_id, account_id)
        return segments.get(root) or segments.get(account_id) or journey.segmentation.default

    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"breached": 0, "met_late": 0, "open": 0})
    names: dict[str, tuple[str, str]] = {}
    for r in breaches:
        c = counts[r.sla_id]
        c["breached"] += 1
        if r.status == SlaBreachStatus.MET_LATE.value:
            c["met_late"] += 1
        else:
            c["open"] += 1
        names[r.sla_id] = (r.sla_name, r.owner_team)

    by_sla: list[SlaCompliance] = []
    for rule in journey.slas:
        stages = anchors[rule.id]
        started = None
        if stages:
            started = sum(
                1 for e in entries
                if e.to_stage in stages and (not rule.segments or segment_of(e.account_id) in rule.segments)
            )
        c = counts[rule.id]
        by_sla.append(SlaCompliance(
            sla_id=rule.id, sla_name=rule.name, owner_team=rule.owner,
            start_stage=", ".join(stages) if stages else None,
            started=started, **c,
            compliance=round(max(0.0, 1 - c["breached"] / started), 4) if started else None,
        ))
    known = {r.id for r in journey.slas}
    for sla_id in sorted(set(names) - known):
        name, team = names[sla_id]
        by_sla.append(SlaCompliance(sla_id=sla_id, sla_name=name, owner_team=team, start_stage=None,
                                    started=None, **counts[sla_id], compliance=None))

    teams: dict[str, dict[str, int]] = defaultdict(
        lambda: {"started": 0, "anchored_breached": 0, "breached": 0, "met_late": 0, "open": 0, "anchored": 0})
    for row in by_sla:
        t = teams[row.owner_team]
        for k in ("breached", "met_late", "open"):
            t[k] += getattr(row, k)
        if row.started is not None:
            t["anchored"] += 1
            t["started"] += row.started
            t["anchored_breached"] += row.breached
    by_team = [
        TeamCompliance(
            owner_team=team, started=t["started"] if t["anchored"] else None, breached=t["breached"],
            met_late=t["met_late"], open=t["open"],
            compliance=round(max(0.0, 1 - t["anchored_breached"] / t["started"]), 4) if t["started"] else None,
        )
        for team, t in sorted(teams.items())
    ]
    return SlaReport(since=period.since, until=period.until, by_sla=by_sla, by_team=by_team)


def _start_stages(rule: Any) -> tuple[str, ...] | None:
    """The stages whose entry starts this SLA's clock; ``None`` if any start anchor is an event."""
    starts = rule.start if isinstance(rule.start, tuple) else (rule.start,)
    if not starts or any(a.stage is None for a in starts):
        return None
    return tuple(a.stage for a in starts)


def handoff_health(engine: Engine, period: Period = Period()) -> HandoffReport:
    """Handoffs opened in the period by team pair: open, accepted, completed, dropped, late."""
    h = handoffs.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(
            h.handoff_id, h.account_id, h.from_team, h.to_team, h.status, h.occurred_at, h.first_action_at,
            h.dropped_at,
        ).where(period.where(h.occurred_at)).order_by(h.occurred_at, h.handoff_id)).all()
    pairs: dict[tuple[str | None, str], list[Any]] = defaultdict(list)
    attention: list[HandoffItem] = []
    done = (HandoffStatus.ACCEPTED.value, HandoffStatus.COMPLETED.value)
    for r in rows:
        pairs[(r.from_team, r.to_team)].append(r)
        late = r.status in done and r.dropped_at is not None
        if late or r.status in (HandoffStatus.OPENED.value, HandoffStatus.DROPPED.value):
            attention.append(HandoffItem(
                handoff_id=r.handoff_id, account_id=r.account_id, from_team=r.from_team, to_team=r.to_team,
                status=r.status, late=late, occurred_at=r.occurred_at, first_action_at=r.first_action_at,
                dropped_at=r.dropped_at,
            ))
    by_pair = []
    for (from_team, to_team), rs in sorted(pairs.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
        status = [r.status for r in rs]
        waits = [(r.first_action_at - r.occurred_at).total_seconds() for r in rs if r.first_action_at]
        by_pair.append(HandoffPair(
            from_team=from_team, to_team=to_team, total=len(rs),
            open=status.count(HandoffStatus.OPENED.value), accepted=status.count(HandoffStatus.ACCEPTED.value),
            completed=status.count(HandoffStatus.COMPLETED.value), dropped=status.count(HandoffStatus.DROPPED.value),
            late=sum(1 for r in rs if r.status in done and r.dropped_at is not None),
            median_first_action_seconds=median(waits) if waits else None,
        ))
    return HandoffReport(since=period.since, until=period.until, by_pair=by_pair, attention=attention)


def churn_after_handoff(
    engine: Engine,
    period: Period = Period(),
    windows_days: Sequence[int] = (30, 90),
    as_of: datetime | None = None,
    from_stage: str = "closed-won",
    to_stage: str = "onboarding",
    churn_stage: str = "churned",
) -> ChurnReport:
    """Share of accounts that churned within N days of the sales → customer success handoff."""
    if not windows_days or any(w <= 0 for w in windows_days):
        raise ValueError(f"windows must be positive numbers of days, got {list(windows_days)}")
    as_of = as_of or datetime.now(timezone.utc)
    with engine.connect() as conn:
        roots = _merge_roots(conn)
        history = _history(conn, roots)
        segments = {a: s for a, s in conn.execute(sa.select(accounts.c.account_id, accounts.c.segment))}
    handed: dict[str, datetime] = {}
    for root, trs in history.items():
        at = next((t.occurred_at for t in trs if t.from_stage == from_stage and t.to_stage == to_stage), None)
        if at is not None and period.contains(at):
            handed[root] = at
    rows = []
    by_segment: dict[str, list[str]] = defaultdict(list)
    for root in handed:
        by_segment[segments.get(root) or "unknown"].append(root)
    groups = [("all", sorted(handed))] + sorted(by_segment.items())
    for segment, members in groups:
        for days in windows_days:
            window = timedelta(days=days)
            matured = [a for a in members if handed[a] + window <= as_of]
            churned = [
                a for a in matured
                if any(t.to_stage == churn_stage and handed[a] < t.occurred_at <= handed[a] + window
                       for t in history[a])
            ]
            rows.append(ChurnRow(segment=segment, window_days=days, handed_off=len(members), matured=len(matured),
                                 churned=len(churned), churn_rate=_ratio(len(churned), len(matured))))
    return ChurnReport(since=period.since, until=period.until, as_of=as_of, from_stage=from_stage,
                       to_stage=to_stage, churn_stage=churn_stage, rows=rows)
