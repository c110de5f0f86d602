"""``lifecycle worker --role``: a stream worker and a separate read-model sink worker.

The stream worker publishes transitions and writes no SQL; the sink worker, in its own
consumer group, fills the read model from the output topics."""

from __future__ import annotations

import json
import random
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, text

from tests.integration import native as n

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)


def test_stream_and_sink_roles_split_the_work(start_worker, base_settings, tmp_path):
    from tests.integration.conftest import unique_settings

    settings = unique_settings(base_settings, "roles", tmp_path)
    stream, feed = start_worker("roles", settings.with_(role="stream"))
    company = str(random.randint(10**8, 10**9))
    account = f"acct:hubspot.company:{company}"
    # the two records can land on different raw partitions, and live, a later one read first is
    # merged first (this test is about roles); the stream group consumes no sink topics
    feed.in_order([n.hubspot_company_mql(company, T0, "roles-corp.com", event_id=int(company) + 1),
                   n.hubspot_deal_won(f"d{company}", company, created=T0 + timedelta(days=2),
                                      won=T0 + timedelta(days=9))])

    db = tmp_path / "readmodel.db"
    assert not db.exists(), "the stream role must not write the read model"
    assert stream.get("/api/reports/funnel") == 404  # no read model behind a stream worker

    sink, _ = start_worker("roles-sink", settings.with_(role="sink"))
    engine = create_engine(settings.resolved_database_url)
    deadline = time.monotonic() + 60
    rows: list = []
    while time.monotonic() < deadline:
        if db.exists():
            with engine.connect() as conn:
                try:
                    rows = conn.execute(text("SELECT from_stage, to_stage FROM stage_history "
                                             "WHERE account_id = :a ORDER BY occurred_at"), {"a": account}).all()
                except Exception:  # tables not migrated yet
                    rows = []
        if len(rows) == 3:
            break
        time.sleep(0.3)
    assert [tuple(r) for r in rows] == [(None, "MQL"), ("MQL", "SQL"), ("SQL", "closed-won")]
    funnel = json.loads(sink.fetch("/api/reports/funnel"))
    assert funnel  # the sink worker serves the report API over what it wrote
