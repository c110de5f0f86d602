"""Native events from four systems, under four different ids, come out as one account's
transitions on the real broker; bad input is dead-lettered while good input flows."""

from __future__ import annotations

import json
import random
import re
from datetime import datetime, timedelta, timezone

import pytest

from pipeline.drive.runner import produce_bytes
from pipeline.topic_reads import read_topic
from schemas import topics as T
from schemas.events import DeadLetter, RawRecord, SourceKind
from schemas.transitions import StageTransition
from tests.integration import native as n

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)


def day(d: float) -> datetime:
    return T0 + timedelta(days=d)


def test_one_account_across_four_systems(start_worker, base_settings):
    worker, feed = start_worker("e2e")
    company = str(random.randint(10**8, 10**9))
    group = f"ws-{company}"
    account = f"acct:hubspot.company:{company}"
    history = [
        n.segment_group(f"msg-g-{company}", group, company, day(0)),
        n.hubspot_company_mql(company, day(1), "example-corp.com", event_id=int(company) + 1),
        n.hubspot_deal_won(f"d{company}", company, created=day(3), won=day(20)),
        n.stripe_subscription_created(f"s{company}", f"cus_{company}", company, day(21)),
        n.hubspot_meeting(f"m{company}", company, day(22)),
        n.zendesk_ticket(int(company) % 100000, int(company) % 7919, day(25), "ops@example-corp.com"),
        n.segment_track(f"msg-t-{company}", group, "Workspace Activated", day(30)),
    ]
    feed.in_order(history)

    mine = [t for t in read_topic(base_settings.bootstrap_servers, T.STAGE_TRANSITIONS, StageTransition)
            if t.account_id == account]
    assert [(t.from_stage, t.to_stage) for t in mine] == [
        (None, "MQL"), ("MQL", "SQL"), ("SQL", "closed-won"), ("closed-won", "onboarding"), ("onboarding", "adoption")]
    assert [t.occurred_at for t in mine] == [day(1), day(3), day(20), day(22), day(30)]
    assert [t.trigger_kind for t in mine] == ["crm.lead_qualified", "crm.opportunity_created", "crm.deal_won",
                                              "crm.activity_logged", "product.track"]
    assert [t.to_owner_team for t in mine] == ["marketing", "sales", "sales", "customer_success", "customer_success"]
    assert mine[2].time_in_previous_stage_seconds == 17 * 86400
    assert not any(t.inferred for t in mine)
    assert len({t.transition_id for t in mine}) == 5

    # What SREs see: the series named by Prometheus conventions, with the values of this run.
    metrics = worker.fetch("/metrics").decode()
    for line in ['lifecycle_stage_transitions_total{from_stage="MQL",to_stage="SQL"} 1.0',
                 'lifecycle_stage_transitions_total{from_stage="closed-won",to_stage="onboarding"} 1.0',
                 'lifecycle_events_ingested_total{outcome="accepted",source="crm"} 3.0',
                 'lifecycle_events_ingested_total{outcome="accepted",source="product"} 2.0',
                 'lifecycle_time_in_stage_seconds_count{stage="SQL"} 1.0',
                 'lifecycle_engine_outcomes_total{outcome="moved"} 5.0',
                 "lifecycle_worker_ready 1.0"]:
        assert line in metrics, line
    # Faust reports a partition's end offset when a fetch brings records from it; the crm
    # records are keyed by their vendor ids, so which of the two partitions they took varies.
    assert re.search(r'^lifecycle_consumer_lag\{partition="[01]",topic="lifecycle\.raw\.crm"\} \d', metrics, re.M)
    assert "lifecycle_faust_messages_received" in metrics  # Faust's own sensor, same registry
    # where the worker's CPU went, step by step: each step ran, so each spent some
    for step in ("parse", "merge", "accounts"):
        spent = re.search(rf'^lifecycle_step_cpu_seconds_total\{{step="{step}"\}} (\S+)$', metrics, re.M)
        assert spent is not None and float(spent.group(1)) > 0, step
    assert "account_id" not in metrics and "acct:" not in metrics  # bounded labels only

    # RevOps can ask why these ids are one account, from Kafka alone.
    import os
    import subprocess
    import sys

    env = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": base_settings.bootstrap_servers,
                        "LIFECYCLE_APP_ID": feed.settings.app_id}
    shown = subprocess.run([sys.executable, "-m", "pipeline.cli", "identity", "show", f"segment.group:{group}"],
                           env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0] == f"segment.group:{group} -> {account}"
    for member in (f"hubspot.company:{company}", f"stripe.customer:cus_{company}", f"hubspot.deal:d{company}",
                   "domain:example-corp.com"):
        assert member in shown.stdout
    assert "explicit link" in shown.stdout and "@" not in shown.stdout

    # Re-delivery of the whole history (a connector retry) changes nothing downstream.
    feed.send(*history)
    feed.caught_up()
    again = [t for t in read_topic(base_settings.bootstrap_servers, T.STAGE_TRANSITIONS, StageTransition)
             if t.account_id == account]
    assert [t.transition_id for t in again] == [t.transition_id for t in mine]


def test_bad_input_is_dead_lettered_and_good_input_still_flows(start_worker, base_settings):
    worker, feed = start_worker("dlq")
    company = str(random.randint(10**8, 10**9))
    before = len(read_topic(base_settings.bootstrap_servers, T.DEAD_LETTER, DeadLetter))
    no_id = n.stripe_subscription_created(f"x{company}", f"cus_x{company}", company, day(5))
    del no_id.payload["id"]
    test_mode = n.stripe_subscription_created(f"t{company}", f"cus_t{company}", company, day(6))
    test_mode.payload["livemode"] = False
    test_mode.payload["data"]["object"]["livemode"] = False
    produce_bytes(base_settings.bootstrap_servers, T.RAW_CRM, [b"\xff\xfe not even utf-8", b'{"vendor": "hubspot"}'])
    feed.send(no_id, test_mode, n.hubspot_company_mql(company, day(1), "x.com", event_id=int(company) + 7),
              RawRecord(source=SourceKind.BILLING, vendor="paypal", event_id="p1",
                        received_at=day(2), payload={"id": "p1"}))
    feed.caught_up()

    dead = read_topic(base_settings.bootstrap_servers, T.DEAD_LETTER, DeadLetter)[before:]
    reasons = sorted((d.stage, d.reason) for d in dead)
    assert reasons == [("decode", "invalid_envelope"), ("decode", "invalid_envelope"),
                       ("parse", "missing_field"), ("parse", "test_mode"), ("parse", "unknown_vendor")]
    binary = next(d for d in dead if d.original_base64)
    assert binary.original_base64 and binary.source_topic == T.RAW_CRM
    stripe = next(d for d in dead if d.reason == "missing_field")
    assert stripe.vendor == "stripe" and json.loads(stripe.original)["payload"]["type"] == "customer.subscription.created"
    assert "id" in stripe.detail

    good = [t for t in read_topic(base_settings.bootstrap_servers, T.STAGE_TRANSITIONS, StageTransition)
            if t.account_id == f"acct:hubspot.company:{company}"]
    assert [(t.from_stage, t.to_stage) for t in good] == [(None, "MQL")]

    metrics = worker.fetch("/metrics").decode()
    assert 'lifecycle_dead_letters_total{reason="invalid_envelope",stage="decode"} 2.0' in metrics
    assert 'lifecycle_dead_letters_total{reason="unknown_vendor",stage="parse"} 1.0' in metrics


def test_a_late_link_merges_accounts_and_moves_history(start_worker, base_settings):
    """Billing knew the customer before the CRM did; the CRM company arrives later with the
    same web domain: the provisional billing account merges into the CRM account, whose
    history now starts at closed-won from the subscription."""
    from schemas.identity import AccountMerged, parse_identity_record

    worker, feed = start_worker("merge")
    company = str(random.randint(10**8, 10**9))
    domain = f"latelink-{company}.com"
    customer = f"cus_late{company}"
    feed.in_order([
        n.stripe_customer_created(f"c{company}", customer, f"ap@{domain}", day(0)),
        n.stripe_subscription_created(f"s{company}", customer, None, day(1)),
    ])
    provisional = f"acct:stripe.customer:{customer}"
    survivor = f"acct:hubspot.company:{company}"

    def transitions(account: str) -> list[StageTransition]:
        return [t for t in read_topic(base_settings.bootstrap_servers, T.STAGE_TRANSITIONS, StageTransition)
                if t.account_id == account]

    assert [(t.from_stage, t.to_stage) for t in transitions(provisional)] == [(None, "closed-won")]
    feed.in_order([n.hubspot_company(company, domain, created=day(5), updated=day(6))])
    feed.caught_up()

    moved = transitions(survivor)
    assert [(t.from_stage, t.to_stage, t.trigger_kind, t.occurred_at) for t in moved] == [
        (None, "closed-won", "billing.subscription_created", day(1))]
    merges = [r for m in read_topic(base_settings.bootstrap_servers, T.IDENTITY)
              if isinstance(r := parse_identity_record(m.value), AccountMerged)]
    assert [(m.from_account, m.into_account) for m in merges if m.into_account == survivor] == [(provisional, survivor)]

    import sqlalchemy as sa

    from pipeline.readmodel.engine import make_engine

    with make_engine(feed.settings.resolved_database_url).connect() as conn:
        rows = dict(conn.execute(sa.text("select account_id, merged_into from accounts where account_id in (:a, :b)"),
                                 {"a": provisional, "b": survivor}).all())
    assert rows == {provisional: survivor, survivor: None}
