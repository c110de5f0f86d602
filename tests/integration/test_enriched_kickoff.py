"""A kickoff meeting known only through enrichment, on the embedded broker with a real worker.

HubSpot's generic webhook says only "object 0-47 (a meeting) was created". The connector's
enrichment step reads the meeting from the (fake) CRM API and puts the full object on the raw
topic; the worker sees a kickoff within the kickoff SLA and emits no kickoff breach for that
account. A control account, won the same day with the same stated segment and no meeting, does
breach under the same pinned wall clock (LIFECYCLE_FROZEN_NOW, weeks past both deadlines), so the
absence is the kickoff's doing.

The input is on the raw topic before the worker starts: the worker reads it as a backfill and
only then announces the pinned wall clock to the account partitions (``_clock_timer``). A worker
started on empty topics announces the pinned instant at once; the partitions' clock is then
already there when the deals arrive, and a pinned clock never moves past it again, so deadlines
registered afterwards never fire (the first version of this test waited for the control
account's breach in vain for that reason).
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timezone

import pytest

from connectors.enrich import Enricher
from connectors.sink import RecordSink
from pipeline.topic_reads import read_topic
from schemas import topics as T
from schemas.sla import SlaBreach, SlaBreachStatus
from schemas.transitions import StageTransition
from tests.connectors.test_enrich import MEETING, MEETING_CREATED, PATH
from tests.connectors.test_poll import FakeVendorApi, api, config  # noqa: F401
from tests.integration import native as n
from tests.integration.conftest import Feeder, unique_settings

pytestmark = pytest.mark.integration
WON = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)     # Monday; the meeting starts Tue 2026-01-06 15:00Z
KICKOFF_DEADLINE = datetime(2026, 1, 12, 9, 0, tzinfo=timezone.utc)   # 5 business days after WON
FROZEN_NOW = "2026-02-16T12:00:00Z"                          # weeks past the kickoff deadline
KICKOFF = "customer-kickoff"


def wait_for(fn, timeout: float = 45.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("condition not met in time")


async def test_kickoff_meeting_recognised_through_enrichment_meets_the_kickoff_sla(
        start_worker, base_settings, tmp_path, api):  # noqa: F811
    bootstrap = base_settings.bootstrap_servers
    base = random.randint(10**8, 10**9)
    kicked, control = str(base), str(base + 1)
    acct_kicked, acct_control = f"acct:hubspot.company:{kicked}", f"acct:hubspot.company:{control}"
    settings = unique_settings(base_settings, "enriched-kickoff", tmp_path).with_(frozen_now=FROZEN_NOW)

    # Both accounts: a deal won on WON, stated segment Enterprise (the kickoff SLA applies to it).
    Feeder(settings).send(n.hubspot_deal_won(f"d{kicked}", kicked, created=WON.replace(day=2), won=WON),
                          n.hubspot_deal_won(f"d{control}", control, created=WON.replace(day=2), won=WON))

    # The kicked-off account's meeting arrives only as a notification; the connector reads the object.
    meeting_path = PATH.replace("51234", str(base))
    api.objects[meeting_path] = {**MEETING, "id": str(base),
                                 "associations": {"companies": {"results": [{"id": kicked,
                                                                             "type": "meeting_event_to_company"}]}}}
    notification = {**MEETING_CREATED, "objectId": base, "eventId": base}
    enricher = Enricher({"hubspot": config(api, "hubspot")})
    try:
        async with RecordSink(bootstrap, enricher=enricher) as sink:
            submitted = await sink.submit("hubspot", [notification], transport="webhook")
            await sink.flush()
    finally:
        await enricher.close()
    assert submitted.unenriched == [] and len(submitted.records) == 1
    assert submitted.records[0].payload["properties"]["hs_meeting_title"] == MEETING["properties"]["hs_meeting_title"]
    assert [path for _, path, _ in api.log if path == meeting_path] == [meeting_path]

    _, feed = start_worker("enriched-kickoff", settings)
    feed.caught_up()

    def kickoff_breaches() -> list[SlaBreach]:
        return [b for b in read_topic(bootstrap, T.SLA_BREACHES, SlaBreach)
                if b.account_id in (acct_kicked, acct_control) and b.sla_id == KICKOFF]

    # The control account shows the pinned clock did run past the kickoff deadline.
    fired = wait_for(kickoff_breaches)
    assert [(b.account_id, b.status, b.deadline) for b in fired] == [
        (acct_control, SlaBreachStatus.BREACHED, KICKOFF_DEADLINE)]
    # Both accounts are under the same clock; give the other partition time to say otherwise.
    time.sleep(2)
    assert {b.account_id for b in kickoff_breaches()} == {acct_control}

    transitions = read_topic(bootstrap, T.STAGE_TRANSITIONS, StageTransition)
    moves = {a: [(t.from_stage, t.to_stage, t.trigger_kind) for t in
                 transitions if t.account_id == a]
             for a in (acct_kicked, acct_control)}
    # The enriched meeting is the kickoff: it moves the account into onboarding at its start time.
    assert ("closed-won", "onboarding", "crm.activity_logged") in moves[acct_kicked]
    assert not any(to == "onboarding" for _, to, _ in moves[acct_control])
