"""A real change: the customer-kickoff SLA from 5 to 3 business days, on accounts whose deal
and kickoff dates are known. Which accounts move is worked out here from those dates with
a plain weekday count in the journey's time zone, not by the SLA tracker under test."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from pipeline.journey import load_journey
from pipeline.offline import OfflinePipeline, RawInput
from pipeline.readmodel.queries import Period
from pipeline.whatif.compare import breach_counts, compare
from schemas import topics as T
from schemas.events import RawRecord
from tests.integration import native as n
from tests.whatif.helpers import kickoff_journey

NY = ZoneInfo("America/New_York")    # the shipped journey's calendar (no US holiday in these weeks)
WON = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)   # a Monday, 10:00 in New York
NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
# account → kickoff meeting (None: never held)
KICKOFFS: dict[str, datetime | None] = {
    "900000001": WON + timedelta(days=1),                 # Tue: 1 business day
    "900000002": WON + timedelta(days=2, hours=3),        # Wed
    "900000003": WON + timedelta(days=4),                 # Fri: 4 business days
    "900000004": datetime(2026, 3, 9, 13, 0, tzinfo=timezone.utc),  # Mon 09:00 EDT, just inside 5
    "900000005": WON + timedelta(days=9),                 # next Wed: 7 business days
    "900000006": None,
}


def add_business_days(start: datetime, days: int) -> datetime:
    """``days`` weekdays later at the same New York wall-clock time."""
    local = start.astimezone(NY)
    while days:
        local = (local + timedelta(days=1)).replace(tzinfo=NY)
        if local.weekday() < 5:
            days -= 1
    return local.astimezone(timezone.utc)


def breached(within_days: int) -> set[str]:
    deadline = add_business_days(WON, within_days)
    return {f"acct:hubspot.company:{c}" for c, at in KICKOFFS.items() if at is None or at > deadline}


def history() -> dict[tuple[str, int], list[RawInput]]:
    records: list[RawRecord] = []
    for company, kickoff in KICKOFFS.items():
        records.append(n.hubspot_deal_won(f"d{company}", company, created=WON - timedelta(days=20), won=WON))
        if kickoff is not None:
            records.append(n.hubspot_meeting(f"m{company}", company, kickoff))
    topic = T.RAW[records[0].source]
    return {(topic, 0): [RawInput(topic, 0, i, r.to_json()) for i, r in enumerate(records)]}


def test_kickoff_sla_5_to_3_business_days_moves_exactly_the_expected_accounts(tmp_path: Path):
    expected_before, expected_after = breached(5), breached(3)
    assert expected_after - expected_before == {"acct:hubspot.company:900000003", "acct:hubspot.company:900000004"}

    baseline, proposed = load_journey(), load_journey(kickoff_journey(tmp_path, 3))
    pipeline = OfflinePipeline([baseline, proposed], now=NOW)
    before, after = pipeline.run(history())

    def kickoff_breaches(out) -> set[str]:  # type: ignore[no-untyped-def]
        return {b.account_id for b in out.breaches if b.sla_id == "customer-kickoff"}

    assert kickoff_breaches(before) == expected_before
    assert kickoff_breaches(after) == expected_after

    result = compare(before, after, Period(), records=pipeline.stats.records, events=pipeline.stats.events,
                     seconds=1.0, baseline_name="current", proposed_name="proposed")
    moved = expected_after - expected_before
    assert {c.account_id for c in result.breaches} == moved
    assert breach_counts(result.breaches) == {("customer-kickoff", "none", "met_late"): len(moved)}
    sla = {(r.key, r.metric): (r.baseline, r.proposed) for r in result.section("sla")}
    assert sla[("customer-kickoff", "started")] == (len(KICKOFFS), len(KICKOFFS))
    assert sla[("customer-kickoff", "breached")] == (len(expected_before), len(expected_after))
    assert sla[("customer-kickoff", "open")] == (1, 1)                       # never held
    assert sla[("customer-kickoff", "met_late")] == (len(expected_before) - 1, len(expected_after) - 1)
    changed = {r.key for r in result.rows if r.changed and r.section in ("sla", "sla_team")}
    assert changed == {"customer-kickoff", "customer_success"}               # nothing else moves
    assert result.accounts == []                                              # an SLA moves no stage
