"""The seeded sample: deterministic, parseable by the real parsers, and telling plausible stories."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timezone

import pytest

from connectors.base import Ignored, ParseError
from connectors.registry import parse_raw
from pipeline.core.engine import apply_event
from pipeline.core.state import AccountState
from pipeline.journey import load_journey
from pipeline.sample import SampleConfig, expected_dead_letters, expected_ignored, generate, main, plans, read_jsonl, write_jsonl
from schemas.events import LifecycleEvent, RawRecord

CONFIG = SampleConfig()


@pytest.fixture(scope="module")
def records() -> list[RawRecord]:
    return generate(CONFIG)


@pytest.fixture(scope="module")
def parsed(records) -> list[tuple[RawRecord, list[LifecycleEvent] | ParseError | Ignored]]:
    out: list[tuple[RawRecord, list[LifecycleEvent] | ParseError | Ignored]] = []
    for record in records:
        try:
            out.append((record, parse_raw(record)))
        except (ParseError, Ignored) as exc:
            out.append((record, exc))
    return out


def test_same_seed_same_bytes_and_another_seed_differs(tmp_path, records):
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    assert write_jsonl(records, a) == len(records)
    write_jsonl(generate(SampleConfig()), b)
    write_jsonl(generate(SampleConfig(seed=8)), c)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert list(read_jsonl(a)) == records
    assert all(r.transport == "sample" for r in records)


def test_default_size_suits_a_quick_demo_and_scales_linearly_with_accounts(records):
    assert 3_000 <= len(records) <= 6_000
    doubled = len(generate(SampleConfig(accounts=CONFIG.accounts * 2)))
    assert 1.6 <= doubled / len(records) <= 2.4
    # Adding accounts does not rewrite the earlier ones.
    assert plans(SampleConfig(accounts=15)) == plans(SampleConfig(accounts=30))[:15]


def test_every_record_parses_except_the_planted_malformed_ones(parsed):
    refused = [(r.vendor, e.reason) for r, e in parsed if isinstance(e, ParseError)]
    assert len(refused) == expected_dead_letters(CONFIG)
    assert Counter(reason for _, reason in refused) == {"missing_field": 2, "bad_timestamp": 1}
    assert {vendor for vendor, _ in refused} == {"stripe", "segment", "zendesk"}
    # A refund, a GDPR deletion and a CDC delete are normal traffic: ignored, not dead letters.
    skipped = sorted((r.vendor, e.type) for r, e in parsed if isinstance(e, Ignored))
    assert len(skipped) == expected_ignored(CONFIG)
    assert set(skipped) == {("stripe", "charge.refunded"), ("hubspot", "contact.privacyDeletion"),
                            ("salesforce", "DELETE")}
    assert expected_dead_letters(SampleConfig(accounts=400)) == 30
    assert expected_ignored(SampleConfig(accounts=400)) == 30
    events = [e for _, es in parsed if not isinstance(es, (ParseError, Ignored)) for e in es]
    kinds = Counter(e.kind for e in events)
    for kind in ("crm.lead_qualified", "crm.opportunity_created", "crm.deal_won", "crm.deal_lost",
                 "crm.activity_logged", "billing.subscription_created", "billing.subscription_canceled",
                 "billing.invoice_paid", "product.track", "product.group", "support.ticket_created",
                 "support.satisfaction_rated"):
        assert kinds[kind] > 0, kind
    assert {e.vendor for e in events} == {"hubspot", "salesforce", "stripe", "segment", "zendesk"}


def test_records_are_in_event_time_order(parsed):
    times = [max(e.occurred_at for e in es) for _, es in parsed if not isinstance(es, (ParseError, Ignored))]
    assert times == sorted(times)
    assert CONFIG.start <= times[0] and times[-1] < CONFIG.end


def test_the_story_mix_and_identity_clues():
    many = plans(SampleConfig(accounts=200, seed=3))
    stories = Counter(p.story for p in many)
    full = sum(stories[s] for s in ("adoption", "renewal", "advocate"))
    assert 0.22 <= full / len(many) <= 0.40
    assert 0.15 <= (stories["stall_mql"] + stories["stall_sql"]) / len(many) <= 0.28
    assert 0.10 <= (stories["churn"] + stories["reengage"]) / len(many) <= 0.22
    assert stories["lost"] and stories["self_serve"]
    crm = Counter(p.crm for p in many if p.crm)
    assert 0.6 <= crm["hubspot"] / sum(crm.values()) <= 0.8
    assert Counter(p.linkage for p in many)["domain"] > 0
    assert {"on_time", "late", "never"} <= {p.kickoff for p in many}
    finals = Counter(p.final_stage for p in many)
    assert {"MQL", "SQL", "adoption", "renewal", "advocate", "churned", "re-engaged"} <= set(finals)
    assert all(p.account_key.startswith(("hubspot.company:", "salesforce.account:")) == (p.crm is not None)
               for p in many)


def _group_by_account(events: list[LifecycleEvent], free_domains: set[str]) -> dict[str, list[LifecycleEvent]]:
    """Naive identity stitching for the test: identifiers on one event or joined by a link are one account."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        parent[find(a)] = find(b)

    def usable(identifier: str) -> bool:
        return not (identifier.startswith("domain:") and identifier.split(":", 1)[1] in free_domains)

    for e in events:
        ids = [i for i in e.identifiers if usable(i)]
        for other in ids[1:]:
            union(ids[0], other)
        for link in e.links:
            union(link.a, link.b)
    groups: dict[str, list[LifecycleEvent]] = defaultdict(list)
    for e in events:
        groups[find(next((i for i in e.identifiers if usable(i)), e.identifiers[0]))].append(e)
    return {root: sorted(evs, key=lambda e: (e.occurred_at, e.event_id)) for root, evs in groups.items()}


def test_ground_truth_matches_what_the_engine_makes_of_the_parsed_events(parsed):
    journey = load_journey()
    events = [e for _, es in parsed if not isinstance(es, (ParseError, Ignored)) for e in es]
    groups = _group_by_account(events, set(journey.identity.free_email_domains))
    truth = plans(CONFIG)
    # Each account's events end up in exactly one group, and no group holds two accounts.
    roots = {}
    for plan in truth:
        members = [root for root, evs in groups.items() if any(plan.account_key in e.identifiers for e in evs)]
        assert len(members) == 1, (plan.account_key, plan.story)
        roots[plan.account_key] = members[0]
    assert len(set(roots.values())) == len(truth)

    final = same_path = 0
    now = datetime(2027, 1, 1, tzinfo=timezone.utc)
    misses = []
    for plan in truth:
        state = AccountState(account_id=plan.account_key)
        for event in groups[roots[plan.account_key]]:
            apply_event(journey, state, event, now)
        visited = [v.stage for v in state.history if not v.inferred]
        final += state.stage == plan.final_stage
        same_path += visited == plan.path
        if visited != plan.path:
            misses.append((plan.story, plan.crm, plan.path, visited))
    assert final / len(truth) >= 0.9, misses
    assert same_path / len(truth) >= 0.85, misses


def test_cli_writes_the_requested_sample(tmp_path, capsys):
    out = tmp_path / "s.jsonl"
    assert main(["--accounts", "3", "--seed", "5", "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == len(generate(SampleConfig(accounts=3, seed=5)))
    assert RawRecord.from_json(lines[0]).transport == "sample"
    assert f"wrote {len(lines)} records" in capsys.readouterr().out
