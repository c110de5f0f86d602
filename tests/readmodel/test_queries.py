"""Each report against the story in ``story.py``, whose answers are worked out by hand."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from pipeline.readmodel import ReadModelWriter
from pipeline.readmodel.queries import (
    AccountNotFound,
    Period,
    account_timeline,
    churn_after_handoff,
    funnel,
    handoff_health,
    parse_instant,
    percentile,
    sla_compliance,
    speed_to_stage,
    time_in_stage,
)
from tests.readmodel import story
from tests.readmodel.story import DAY, MARCH_END, T0, at

MARCH = Period(T0, MARCH_END)


@pytest.fixture
def loaded(engine: Engine) -> Engine:
    ReadModelWriter(engine).apply(story.story())
    return engine


def by_stage(rows: list) -> dict:
    return {r.stage: r for r in rows}


def test_funnel_for_the_march_cohort(loaded: Engine) -> None:
    report = funnel(loaded, MARCH, story.journey())
    assert report.cohort_size == 4  # A B C D; E starts in April
    got = {r.stage: (r.reached, r.converted, r.conversion) for r in report.stages}
    assert got == {
        "MQL": (3, 3, 1.0),               # A B D; C started at SQL
        "SQL": (4, 3, 0.75),              # D went back to MQL
        "closed-won": (3, 3, 1.0),        # B's is inferred, still counted
        "onboarding": (3, 1, 0.3333),
        "adoption": (1, 0, 0.0),
        "renewal": (0, 0, None),
        "advocate": (0, None, None),      # end of the road
        "churned": (2, None, None),
        "re-engaged": (0, None, None),
    }
    assert [r.stage for r in report.stages][:3] == ["MQL", "SQL", "closed-won"]
    assert by_stage(report.stages)["SQL"].next_stage == "closed-won"


def test_funnel_all_time_includes_april(loaded: Engine) -> None:
    report = funnel(loaded, Period(), story.journey())
    assert report.cohort_size == 5
    assert by_stage(report.stages)["MQL"].reached == 4


def test_time_in_stage_percentiles(loaded: Engine) -> None:
    rows = by_stage(time_in_stage(loaded, Period(), story.journey()).stages)
    days = {s: (r.transitions, r.p50_seconds and r.p50_seconds / DAY, r.p90_seconds and r.p90_seconds / DAY)
            for s, r in rows.items() if r.transitions}
    assert days == {
        "MQL": (4, 4.5, 5.0),                           # A 2, B 4, D 5 (derived), E 5
        "SQL": (4, 7.0, pytest.approx(16.4)),           # C 3, D 6, A 8, B 20
        "closed-won": (2, 3.0, pytest.approx(3.8)),     # C 2, A 4; B's inferred closed-won skipped
        "onboarding": (2, 54.0, pytest.approx(84.4)),   # A 16, C 92
        "adoption": (1, 30.0, 30.0),
    }


def test_time_in_stage_counts_transitions_leaving_in_the_period(loaded: Engine) -> None:
    rows = by_stage(time_in_stage(loaded, MARCH, story.journey()).stages)
    assert rows["onboarding"].transitions == 1 and rows["onboarding"].p50_seconds == 16 * DAY  # C leaves in June
    assert rows["MQL"].transitions == 3                                                         # E leaves in April


def test_speed_to_stage(loaded: Engine) -> None:
    report = speed_to_stage(loaded, MARCH, story.journey())
    got = {r.stage: (r.accounts, r.median_seconds / DAY if r.median_seconds is not None else None)
           for r in report.stages}
    assert got["MQL"] == (3, 0.0)
    assert got["SQL"] == (4, 3.0)            # A 2, B 4, C 0, D 5
    assert got["closed-won"] == (3, 10.0)    # C 3, A 10, B 24
    assert got["onboarding"] == (3, 14.0)    # C 5, A 14, B 24
    assert got["adoption"] == (1, 30.0)
    assert got["churned"] == (2, 78.5)       # A 60, C 97
    assert got["renewal"] == (0, None)


def test_sla_compliance_per_sla_and_team(loaded: Engine) -> None:
    report = sla_compliance(loaded, Period(), story.journey())
    rows = {r.sla_id: (r.started, r.breached, r.met_late, r.open, r.compliance) for r in report.by_sla}
    assert rows == {
        "kickoff": (2, 2, 1, 1, 0.0),                    # A and B (C is self_serve, not covered)
        "onboarding-complete": (3, 1, 0, 1, 0.6667),
        "mql-follow-up": (5, 1, 0, 1, 0.8),              # D entered MQL twice: two clocks
        "renewal-touch": (None, 1, 0, 1, None),          # event-anchored: breaches only
        "promised-ttv": (None, 1, 1, 0, None),           # not in the journey: breaches only
    }
    teams = {t.owner_team: (t.started, t.breached, t.met_late, t.open, t.compliance) for t in report.by_team}
    assert teams == {
        "customer_success": (5, 5, 2, 3, 0.4),           # 1 - 3 anchored breaches / 5 started
        "sales": (5, 1, 0, 1, 0.8),
    }


def test_sla_compliance_in_a_period(loaded: Engine) -> None:
    report = sla_compliance(loaded, Period(since=at(14)), story.journey())
    rows = {r.sla_id: (r.started, r.breached, r.compliance) for r in report.by_sla}
    assert rows["kickoff"] == (1, 1, 0.0)
    assert rows["onboarding-complete"] == (2, 0, 1.0)
    assert rows["mql-follow-up"] == (2, 0, 1.0)
    assert rows["promised-ttv"] == (None, 1, None)


def test_handoff_health(loaded: Engine) -> None:
    report = handoff_health(loaded, Period())
    pairs = {(p.from_team, p.to_team): p for p in report.by_pair}
    ms = pairs[("marketing", "sales")]
    assert (ms.total, ms.open, ms.accepted, ms.completed, ms.dropped, ms.late) == (2, 1, 0, 1, 0, 0)
    assert ms.median_first_action_seconds == 1 * DAY
    sc = pairs[("sales", "customer_success")]
    assert (sc.total, sc.open, sc.accepted, sc.completed, sc.dropped, sc.late) == (3, 0, 2, 0, 1, 1)
    assert sc.median_first_action_seconds == 5 * DAY   # A 9 days, C 1 day
    attention = {(i.handoff_id, i.status, i.late) for i in report.attention}
    assert attention == {("ho-B1", "opened", False), ("ho-A2", "accepted", True), ("ho-B2", "dropped", False)}


def test_handoff_health_in_a_period(loaded: Engine) -> None:
    report = handoff_health(loaded, Period(since=at(6), until=at(25)))
    assert [(p.from_team, p.to_team, p.total) for p in report.by_pair] == [("sales", "customer_success", 2)]


def test_churn_after_handoff(loaded: Engine) -> None:
    report = churn_after_handoff(loaded, Period(), as_of=at(200))
    rows = {(r.segment, r.window_days): (r.handed_off, r.matured, r.churned, r.churn_rate) for r in report.rows}
    assert rows[("all", 30)] == (3, 3, 0, 0.0)
    assert rows[("all", 90)] == (3, 3, 1, 0.3333)       # A churned 46 days after; C 92 days after
    assert rows[("enterprise", 90)] == (1, 1, 1, 1.0)
    assert rows[("self_serve", 90)] == (1, 1, 0, 0.0)


def test_churn_counts_only_windows_that_have_ended(loaded: Engine) -> None:
    report = churn_after_handoff(loaded, Period(), windows_days=(30, 90), as_of=at(50))
    rows = {(r.segment, r.window_days): (r.handed_off, r.matured, r.churn_rate) for r in report.rows}
    assert rows[("all", 30)] == (3, 2, 0.0)      # A (day 14) and C (day 8) matured; B (day 25) not yet
    assert rows[("all", 90)] == (3, 0, None)
    with pytest.raises(ValueError, match="positive"):
        churn_after_handoff(loaded, Period(), windows_days=(0,))


def test_timeline_in_time_order(loaded: Engine) -> None:
    tl = account_timeline(loaded, "A")
    assert (tl.current_stage, tl.segment, tl.merged_into) == ("churned", "enterprise", None)
    kinds = [(e.at, e.kind) for e in tl.entries]
    assert kinds == sorted(kinds, key=lambda k: (k[0], ["transition", "handoff", "sla"].index(k[1])))
    assert [e.summary for e in tl.entries if e.kind == "transition"] == [
        "∅ → MQL", "MQL → SQL", "SQL → closed-won", "closed-won → onboarding", "onboarding → adoption",
        "adoption → churned"]
    assert {e.ref_id for e in tl.entries if e.kind == "handoff"} == {"ho-A1", "ho-A2"}
    assert [e.status for e in tl.entries if e.kind == "sla"] == ["met_late", "breached"]
    assert tl.entries[2].kind == "handoff" and tl.entries[2].at == at(2)  # after the SQL transition at day 2


def test_timeline_of_unknown_account(loaded: Engine) -> None:
    with pytest.raises(AccountNotFound, match="nope"):
        account_timeline(loaded, "nope")


def test_merged_accounts_count_once(loaded: Engine) -> None:
    ReadModelWriter(loaded).mark_merged("D", "A")
    tl = account_timeline(loaded, "A")
    assert tl.merged_from == ["D"]
    assert {e.account_id for e in tl.entries} == {"A", "D"}
    report = funnel(loaded, MARCH, story.journey())
    assert report.cohort_size == 3
    assert by_stage(report.stages)["MQL"].reached == 2


def test_empty_read_model_gives_empty_reports(engine: Engine) -> None:
    assert funnel(engine, MARCH, story.journey()).cohort_size == 0
    assert all(r.p50_seconds is None for r in time_in_stage(engine).stages)
    assert handoff_health(engine).by_pair == []
    assert all(r.started == 0 or r.started is None for r in sla_compliance(engine, journey=story.journey()).by_sla)


def test_period_and_instant_validation() -> None:
    assert parse_instant("2024-03-01") == T0
    assert parse_instant("2024-03-01T02:00:00+02:00") == T0
    with pytest.raises(ValueError, match="not a date"):
        parse_instant("yesterday")
    with pytest.raises(ValueError, match="before until"):
        Period(at(2), at(1))
    with pytest.raises(ValueError, match="timezone"):
        Period(since=T0.replace(tzinfo=None))
    assert Period(at(1), at(2)).contains(at(1)) and not Period(at(1), at(2)).contains(at(2))
    assert at(1) - timedelta(days=1) == T0


def test_percentile_interpolates_like_percentile_cont() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.9) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([10.0, 1.0, 5.0], 0.9) == pytest.approx(9.0)
