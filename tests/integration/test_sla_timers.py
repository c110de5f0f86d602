"""SLA deadlines fire at the deadline, driven by timers, on the real broker; exactly once
across restarts; and a replay of the same history yields the same breach ids.

The journey here keeps the default SLAs but counts every day as a business day
(calendar arithmetic is unit-tested in tests/core/test_calendar.py), so a
"5 business days" deadline can be placed a few seconds from now on any day.
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from pipeline.journey import load_journey
from pipeline.topic_reads import read_topic
from schemas import topics as T
from schemas.sla import SlaBreach, SlaBreachStatus
from tests.integration import native as n
from tests.integration.conftest import unique_settings

pytestmark = pytest.mark.integration
KICKOFF = "customer-kickoff"


@pytest.fixture
def every_day_journey(tmp_path: Path) -> str:
    data = load_journey().model_dump(mode="json", by_alias=True, exclude_defaults=False)
    data["calendar"] = {"timezone": "UTC", "weekend": [], "holidays": [], "holiday_country": None}
    path = tmp_path / "journey.yaml"
    path.write_text(yaml.safe_dump(data))
    load_journey(path)  # still valid
    return str(path)


def breaches_for(bootstrap: str, accounts: set[str]) -> list[SlaBreach]:
    return [b for b in read_topic(bootstrap, T.SLA_BREACHES, SlaBreach) if b.account_id in accounts]


def wait_for(fn, timeout: float = 30.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def test_kickoff_sla_live_restart_and_replay(start_worker, base_settings, every_day_journey, tmp_path):
    bootstrap = base_settings.bootstrap_servers
    settings = unique_settings(base_settings, "sla", tmp_path).with_(journey_path=every_day_journey)
    worker, feed = start_worker("sla", settings)
    base = random.randint(10**8, 10**9)
    on_time, late, never = (str(base + i) for i in range(3))
    acct = {c: f"acct:hubspot.company:{c}" for c in (on_time, late, never)}
    mine = set(acct.values())

    now = datetime.now(timezone.utc).replace(microsecond=0)
    lead = 6.0  # seconds until the deadlines of the late and never accounts
    won_on_time = now - timedelta(days=5, seconds=-30)
    won_late = won_never = now - timedelta(days=5) + timedelta(seconds=lead)
    deadline = won_late + timedelta(days=5)
    feed.send(
        n.hubspot_deal_won(f"d{on_time}", on_time, created=won_on_time - timedelta(days=1), won=won_on_time),
        n.hubspot_deal_won(f"d{late}", late, created=won_late - timedelta(days=1), won=won_late),
        n.hubspot_deal_won(f"d{never}", never, created=won_never - timedelta(days=1), won=won_never),
    )
    # After its deal: fed live, records on two raw partitions are merged in arrival order.
    feed.caught_up()
    feed.send(n.hubspot_meeting(f"m{on_time}", on_time, won_on_time + timedelta(days=4)))  # business day 4: in time

    # At the deadline, with no event at all: the timer fires it.
    def kickoff_breaches() -> list[SlaBreach]:
        return [b for b in breaches_for(bootstrap, mine) if b.sla_id == KICKOFF]

    fired = wait_for(lambda: len(kickoff_breaches()) >= 2 and kickoff_breaches(), timeout=lead + 30)
    assert {b.account_id for b in fired} == {acct[late], acct[never]}
    for b in fired:
        assert b.status is SlaBreachStatus.BREACHED and b.deadline == deadline
        assert b.emitted_at >= deadline  # never early
        delay = (b.emitted_at - deadline).total_seconds()
        print(f"deadline → breach record: {delay:.2f}s")
        assert delay < 15, "a breach should follow its deadline within a few timer ticks"

    # The kickoff finally happens: met late, with how late; same breach id.
    kicked_off = datetime.now(timezone.utc)
    feed.send(n.hubspot_meeting(f"m{late}", late, kicked_off))
    met = wait_for(lambda: [b for b in kickoff_breaches() if b.status is SlaBreachStatus.MET_LATE])
    assert len(met) == 1 and met[0].account_id == acct[late]
    first = next(b for b in fired if b.account_id == acct[late])
    assert met[0].breach_id == first.breach_id and met[0].record_id != first.record_id
    assert met[0].late_by_seconds == pytest.approx((kicked_off - deadline).total_seconds(), abs=0.01)

    # A clean restart recovers the tables: nothing fires twice.
    worker.stop()
    worker, feed = start_worker("sla", settings)
    time.sleep(3)
    # A killed worker replays what it had not committed: ids stay the same.
    worker.kill()
    worker, feed = start_worker("sla", settings)
    time.sleep(3)
    feed.caught_up()
    records = kickoff_breaches()
    never_records = [b for b in records if b.account_id == acct[never]]
    assert {b.breach_id for b in never_records} == {next(b.breach_id for b in fired if b.account_id == acct[never])}
    assert {b.status for b in never_records} == {SlaBreachStatus.BREACHED}
    assert not [b for b in records if b.account_id == acct[on_time]]
    live = {(b.breach_id, b.status) for b in breaches_for(bootstrap, mine)}
    worker.stop()

    # Replay the same history from the beginning in event time, as a fresh application.
    replay_started = datetime.now(timezone.utc)
    replay_settings = unique_settings(base_settings, "replay", tmp_path / "replay").with_(
        journey_path=every_day_journey)
    _, replay_feed = start_worker("replay", replay_settings)
    replay_feed.caught_up()

    def replayed() -> set[tuple[str, SlaBreachStatus]]:
        return {(b.breach_id, b.status) for b in breaches_for(bootstrap, mine) if b.emitted_at >= replay_started}

    wait_for(lambda: replayed() >= live, timeout=30)
    assert replayed() == live
