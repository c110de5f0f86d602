"""Identity stitching: one account per customer across CRM, billing, product and support."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, MutableMapping
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from pipeline.core.identity import ABSORBED_KEPT, LINKS_KEPT, IdentityResolver, Resolution, UnresolvableEvent
from pipeline.journey import IdentityConfig
from pipeline.ingest import resolve_event
from schemas.events import IdentityLink, LifecycleEvent, SourceKind
from schemas.identity import AccountMerged, IdentityDecision, IdentityRule, parse_identity_record

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=timezone.utc)

SOURCES = {"hubspot": SourceKind.CRM, "salesforce": SourceKind.CRM, "stripe": SourceKind.BILLING,
           "segment": SourceKind.PRODUCT, "zendesk": SourceKind.SUPPORT}


def ev(event_id: str, *identifiers: str, links: tuple[tuple[str, str, str], ...] = (),
       at: int = 0, vendor: str | None = None, kind: str = "crm.company_updated") -> LifecycleEvent:
    """A canonical event ``at`` hours after T0; the vendor defaults to the first identifier's."""
    vendor = vendor or identifiers[0].split(".")[0].split(":")[0]
    when = T0 + timedelta(hours=at)
    return LifecycleEvent(
        event_id=event_id, source=SOURCES.get(vendor, SourceKind.CRM), vendor=vendor, kind=kind,
        occurred_at=when, ingested_at=when, identifiers=list(identifiers),
        links=[IdentityLink(a=a, b=b, reason=r) for a, b, r in links])


class JsonTable(MutableMapping[str, Any]):
    """Behaves like a Faust table over RocksDB: values are JSON bytes, every read decodes a
    fresh copy (so an in-place change that is not re-assigned is lost), and iterating is
    forbidden (a worker sees only its partitions)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.reads = 0
        self.writes = 0

    def __getitem__(self, key: str) -> Any:
        self.reads += 1
        return orjson.loads(self.data[key])

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes += 1
        self.data[key] = orjson.dumps(value)

    def __delitem__(self, key: str) -> None:
        del self.data[key]

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("identity resolution must not iterate over a table")

    def __len__(self) -> int:
        raise AssertionError("identity resolution must not size a table")


class World:
    """A resolver over fresh state, plain dicts unless told otherwise."""

    def __init__(self, config: IdentityConfig | None = None, json_tables: bool = False) -> None:
        self.links: MutableMapping[str, Any] = JsonTable() if json_tables else {}
        self.accounts: MutableMapping[str, Any] = JsonTable() if json_tables else {}
        self.resolver = IdentityResolver(config or IdentityConfig(), self.links, self.accounts)

    def feed(self, *events: LifecycleEvent) -> list[Resolution]:
        return [self.resolver.resolve(e) for e in events]

    def account(self, identifier: str) -> str | None:
        return self.resolver.account_of(identifier)


def rules(res: Resolution) -> dict[str, str]:
    return {d.identifier: d.rule.value for d in res.decisions}


def decided_rules(w: World, event: LifecycleEvent) -> tuple[str, ...]:
    """What the worker counts in lifecycle_identity_decisions_total (the core counts nothing)."""
    return resolve_event(w.resolver, event).rules


# ---- first sight, co-occurrence, provisional ---------------------------------------

def test_first_sight_makes_a_provisional_account_and_a_redelivery_decides_nothing() -> None:
    w = World()
    (res,) = w.feed(ev("stripe:evt_1", "stripe.customer:cus_9"))
    assert res.account_id == "acct:stripe.customer:cus_9"
    assert res.new_account and res.merges == []
    assert rules(res) == {"stripe.customer:cus_9": "first_sight"}
    assert w.accounts["acct:stripe.customer:cus_9"]["provisional"] is True

    again = w.resolver.resolve(ev("stripe:evt_1", "stripe.customer:cus_9"))
    assert again == Resolution("acct:stripe.customer:cus_9", [], [], False)
    assert decided_rules(w, ev("stripe:evt_1", "stripe.customer:cus_9")) == ()
    assert decided_rules(w, ev("stripe:evt_2", "stripe.customer:cus_8")) == ("first_sight",)


def test_ids_of_one_object_join_and_later_events_with_any_of_them_find_the_account() -> None:
    w = World()
    (first,) = w.feed(ev("hs:1", "hubspot.company:123", "hubspot.contact:51", "hubspot.deal:9"))
    assert first.account_id == "acct:hubspot.company:123"
    assert rules(first) == {"hubspot.company:123": "first_sight", "hubspot.contact:51": "co_occurrence",
                            "hubspot.deal:9": "co_occurrence"}
    assert w.accounts["acct:hubspot.company:123"]["provisional"] is False
    contact_only, deal_only = w.feed(ev("hs:2", "hubspot.contact:51", at=1), ev("hs:3", "hubspot.deal:9", at=2))
    assert contact_only.account_id == deal_only.account_id == "acct:hubspot.company:123"
    assert contact_only.decisions == deal_only.decisions == []


def test_a_person_in_two_workspaces_does_not_merge_them() -> None:
    w = World()
    w.feed(ev("seg:1", "segment.group:g1", "segment.user:u1"))
    (other,) = w.feed(ev("seg:2", "segment.user:u1", "segment.group:g2", at=1))
    assert other.account_id == "acct:segment.group:g2"
    assert other.merges == []
    assert w.account("segment.user:u1") == "acct:segment.group:g1"
    assert w.account("segment.group:g1") == "acct:segment.group:g1"
    # both workspaces known already: still no merge, and the event goes to its own workspace
    (known,) = w.feed(ev("seg:3", "segment.group:g2", "segment.user:u1", at=2))
    assert known.account_id == "acct:segment.group:g2" and known.merges == []
    assert w.account("segment.user:u1") == "acct:segment.group:g1"


# ---- explicit links -----------------------------------------------------------------

def test_explicit_link_joins_and_keeps_the_sources_reason() -> None:
    w = World()
    (res,) = w.feed(ev("stripe:evt_1", "stripe.customer:cus_9",
                       links=(("stripe.customer:cus_9", "hubspot.company:123", "stripe customer metadata.hubspot_company_id"),)))
    assert res.account_id == "acct:hubspot.company:123"
    (linked,) = [d for d in res.decisions if d.identifier == "stripe.customer:cus_9"]
    assert linked.rule is IdentityRule.EXPLICIT_LINK
    assert linked.via == "hubspot.company:123"
    assert "stripe customer metadata.hubspot_company_id" in linked.reason
    assert linked.event_id == "stripe:evt_1" and linked.decided_at == T0
    assert w.accounts[res.account_id]["provisional"] is False


def test_a_link_already_known_is_not_a_new_fact() -> None:
    w = World()
    link = (("stripe.customer:cus_9", "hubspot.company:123", "metadata"),)
    w.feed(ev("stripe:1", "stripe.customer:cus_9", links=link))
    later = w.feed(*(ev(f"stripe:{i}", "stripe.customer:cus_9", links=link, at=i) for i in range(2, 6)))
    assert all(r.decisions == [] and r.merges == [] for r in later)
    assert len(w.accounts["acct:hubspot.company:123"]["links"]) == 1


# ---- email-domain fallback --------------------------------------------------------------

def test_domain_fallback_on_joins_a_support_org_known_only_by_domain() -> None:
    w = World()
    w.feed(ev("hs:1", "hubspot.company:123", "domain:acme.com"))
    (res,) = w.feed(ev("zd:1", "zendesk.organization:77", "domain:ACME.com.", at=1))
    assert res.account_id == "acct:hubspot.company:123"
    assert rules(res) == {"zendesk.organization:77": "email_domain"}


def test_domain_fallback_off_keeps_them_apart_and_stores_no_domain() -> None:
    w = World(IdentityConfig(email_domain_fallback=False))
    w.feed(ev("hs:1", "hubspot.company:123", "domain:acme.com"))
    (res,) = w.feed(ev("zd:1", "zendesk.organization:77", "domain:acme.com", at=1))
    assert res.account_id == "acct:zendesk.organization:77"
    assert "domain:acme.com" not in w.links
    with pytest.raises(UnresolvableEvent):
        w.resolver.resolve(ev("x:1", "domain:acme.com", at=2))


def test_free_mail_domains_never_join() -> None:
    w = World()
    a, b = w.feed(ev("stripe:1", "stripe.customer:cus_1", "domain:gmail.com"),
                  ev("stripe:2", "stripe.customer:cus_2", "domain:Gmail.com", at=1))
    assert a.account_id != b.account_id
    assert w.resolver.explain("domain:gmail.com") is None
    with pytest.raises(UnresolvableEvent):
        w.resolver.resolve(ev("seg:1", "domain:gmail.com", vendor="segment", at=2))


def test_domain_fallback_never_joins_two_crm_companies() -> None:
    w = World()
    _, second = w.feed(ev("hs:1", "hubspot.company:1", "domain:acme.com"),
                       ev("hs:2", "hubspot.company:2", "domain:acme.com", at=1))
    assert second.account_id == "acct:hubspot.company:2"
    assert w.account("hubspot.company:1") == "acct:hubspot.company:1"
    assert w.account("domain:acme.com") == "acct:hubspot.company:1"
    w.feed(ev("hs:3", "hubspot.company:3", at=2))
    (known,) = w.feed(ev("hs:4", "hubspot.company:3", "domain:acme.com", at=3))
    assert known.account_id == "acct:hubspot.company:3" and known.merges == []


def test_domain_fallback_pulls_a_provisional_account_into_the_crm_one() -> None:
    w = World()
    (zd,) = w.feed(ev("zd:1", "zendesk.organization:77", "domain:acme.com"))
    assert zd.account_id == "acct:zendesk.organization:77"
    (hs,) = w.feed(ev("hs:1", "hubspot.company:123", "domain:acme.com", at=1))
    assert hs.account_id == "acct:hubspot.company:123"
    assert [(m.from_account, m.into_account, m.rule) for m in hs.merges] == [
        ("acct:zendesk.organization:77", "acct:hubspot.company:123", IdentityRule.EMAIL_DOMAIN)]
    assert w.account("zendesk.organization:77") == "acct:hubspot.company:123"


# ---- anchors and merges ---------------------------------------------------------------

def test_crm_id_arriving_later_promotes_a_provisional_account() -> None:
    w = World()
    w.feed(ev("stripe:1", "stripe.customer:cus_9"), ev("stripe:2", "stripe.customer:cus_9", at=1))
    (res,) = w.feed(ev("stripe:3", "stripe.customer:cus_9", at=5,
                       links=(("stripe.customer:cus_9", "hubspot.company:123", "metadata.hubspot_company_id"),)))
    assert res.account_id == "acct:hubspot.company:123" and res.new_account
    (merge,) = res.merges
    assert (merge.from_account, merge.into_account) == ("acct:stripe.customer:cus_9", "acct:hubspot.company:123")
    assert merge.decided_at == T0 + timedelta(hours=5)
    assert merge.link == IdentityLink(a="stripe.customer:cus_9", b="hubspot.company:123", reason="metadata.hubspot_company_id")
    assert w.accounts["acct:stripe.customer:cus_9"]["merged_into"] == "acct:hubspot.company:123"
    assert w.resolver.current_account("acct:stripe.customer:cus_9") == "acct:hubspot.company:123"


def test_person_and_deal_ids_do_not_anchor_when_an_account_id_is_present() -> None:
    w = World()
    (res,) = w.feed(ev("hs:1", "hubspot.deal:9", "hubspot.contact:51", "hubspot.company:123"))
    assert res.account_id == "acct:hubspot.company:123"
    assert w.accounts[res.account_id]["anchor"] == "hubspot.company:123"
    (alone,) = w.feed(ev("hs:2", "hubspot.contact:77", at=1))
    assert alone.account_id == "acct:hubspot.contact:77"
    (joined,) = w.feed(ev("hs:3", "hubspot.company:5", "hubspot.contact:77", at=2))
    assert joined.account_id == "acct:hubspot.company:5"
    assert [m.from_account for m in joined.merges] == ["acct:hubspot.contact:77"]


def test_an_account_made_and_promoted_within_one_event_leaves_no_trace() -> None:
    w = World()
    (res,) = w.feed(ev("stripe:1", "stripe.customer:cus_1", "hubspot.company:1",
                       links=(("stripe.customer:cus_1", "zendesk.organization:1", "org external_id"),)))
    assert res.account_id == "acct:hubspot.company:1" and res.new_account
    assert res.merges == []
    assert {d.account_id for d in res.decisions} == {"acct:hubspot.company:1"}
    assert "acct:stripe.customer:cus_1" not in w.accounts
    assert w.accounts["acct:hubspot.company:1"]["absorbed"] == []
    assert w.account("zendesk.organization:1") == "acct:hubspot.company:1"


def test_late_link_merges_two_accounts_into_the_better_anchor() -> None:
    w = World()
    w.feed(ev("seg:1", "segment.group:g1", "segment.user:u1"),
           ev("seg:2", "segment.group:g1", "segment.user:u2", at=1),
           ev("hs:1", "hubspot.company:123", "hubspot.contact:51", at=2))
    (res,) = w.feed(ev("seg:3", "segment.group:g1", at=3,
                       links=(("segment.group:g1", "hubspot.company:123", "group trait crm_company_id"),)))
    assert res.account_id == "acct:hubspot.company:123" and not res.new_account
    (merge,) = res.merges
    assert merge.from_account == "acct:segment.group:g1"
    assert merge.rule is IdentityRule.EXPLICIT_LINK and merge.event_id == "seg:3"
    assert merge.merge_id == AccountMerged(from_account=merge.from_account, into_account=merge.into_account,
                                           rule=merge.rule, reason="x", link=merge.link, event_id="other",
                                           decided_at=T0).merge_id
    for ident in ("segment.group:g1", "segment.user:u1", "segment.user:u2", "hubspot.contact:51"):
        assert w.links[ident] == "acct:hubspot.company:123"
    (after,) = w.feed(ev("seg:4", "segment.user:u2", at=4))
    assert after.account_id == "acct:hubspot.company:123"


def test_equal_anchors_merge_into_the_older_account() -> None:
    w = World()
    # company 2 is processed first and sorts first, but company 9 was seen earlier in event time
    w.feed(ev("hs:2", "hubspot.company:2", at=5), ev("hs:9", "hubspot.company:9", at=1))
    (res,) = w.feed(ev("hs:m", "hubspot.company:2", at=6,
                       links=(("hubspot.company:2", "hubspot.company:9", "hubspot company merge"),)))
    assert res.account_id == "acct:hubspot.company:9"
    assert [m.from_account for m in res.merges] == ["acct:hubspot.company:2"]


def test_anchor_preference_is_configurable() -> None:
    w = World(IdentityConfig(anchor_preference=("stripe.customer", "hubspot.company")))
    w.feed(ev("hs:1", "hubspot.company:123"), ev("stripe:1", "stripe.customer:cus_9", at=1))
    (res,) = w.feed(ev("stripe:2", "stripe.customer:cus_9", at=2,
                       links=(("stripe.customer:cus_9", "hubspot.company:123", "metadata"),)))
    assert res.account_id == "acct:stripe.customer:cus_9"
    assert w.account("hubspot.company:123") == "acct:stripe.customer:cus_9"


def test_a_chain_of_merges_resolves_every_identifier_and_old_id_to_the_last_survivor() -> None:
    w = World()
    w.feed(ev("zd:1", "zendesk.organization:77", "zendesk.user:5"),
           ev("stripe:1", "stripe.customer:cus_9", at=1),
           ev("hs:1", "hubspot.company:123", at=2))
    (ab,) = w.feed(ev("zd:2", "zendesk.organization:77", at=3,
                      links=(("zendesk.organization:77", "stripe.customer:cus_9", "org external_id"),)))
    assert [(m.from_account, m.into_account) for m in ab.merges] == [
        ("acct:zendesk.organization:77", "acct:stripe.customer:cus_9")]
    (bc,) = w.feed(ev("stripe:2", "stripe.customer:cus_9", at=4,
                      links=(("stripe.customer:cus_9", "hubspot.company:123", "metadata"),)))
    assert [(m.from_account, m.into_account) for m in bc.merges] == [
        ("acct:stripe.customer:cus_9", "acct:hubspot.company:123")]
    for ident in ("zendesk.organization:77", "zendesk.user:5", "stripe.customer:cus_9"):
        assert w.account(ident) == "acct:hubspot.company:123"
    assert w.resolver.current_account("acct:zendesk.organization:77") == "acct:hubspot.company:123"
    absorbed = [a.account_id for a in w.resolver.explain("zendesk.user:5").absorbed]
    assert absorbed == ["acct:zendesk.organization:77", "acct:stripe.customer:cus_9"]


def test_anonymous_visitor_is_stitched_by_identify_then_group() -> None:
    w = World()
    (anon,) = w.feed(ev("seg:1", "segment.anonymous:a1", kind="product.page"))
    assert anon.account_id == "acct:segment.anonymous:a1"
    (ident,) = w.feed(ev("seg:2", "segment.user:u1", "segment.anonymous:a1", at=1, kind="product.identify"))
    assert ident.account_id == "acct:segment.user:u1"
    assert [m.from_account for m in ident.merges] == ["acct:segment.anonymous:a1"]
    (alias,) = w.feed(ev("seg:3", "segment.user:u1", at=2, kind="product.identify",
                         links=(("segment.anonymous:a2", "segment.user:u1", "segment alias previousId"),)))
    assert rules(alias) == {"segment.anonymous:a2": "explicit_link"}
    (group,) = w.feed(ev("seg:4", "segment.group:g1", "segment.user:u1", at=3, kind="product.group"))
    assert group.account_id == "acct:segment.group:g1"
    for ident_ in ("segment.anonymous:a1", "segment.anonymous:a2", "segment.user:u1"):
        assert w.account(ident_) == "acct:segment.group:g1"


# ---- explain ------------------------------------------------------------------------------

def test_explain_lists_account_members_links_and_merges_with_why() -> None:
    w = World()
    w.feed(ev("zd:1", "zendesk.organization:77", "domain:acme.com"),
           ev("stripe:evt_1", "stripe.customer:cus_9", at=1,
              links=(("stripe.customer:cus_9", "hubspot.company:123", "stripe customer metadata.hubspot_company_id"),)),
           ev("hs:1", "hubspot.company:123", "domain:acme.com", at=2))
    ex = w.resolver.explain("stripe.customer:cus_9")
    assert ex is not None
    assert ex.account_id == "acct:hubspot.company:123" and ex.anchor == "hubspot.company:123"
    assert not ex.provisional
    assert ex.membership is not None and ex.membership.rule is IdentityRule.EXPLICIT_LINK
    assert ex.membership.event_id == "stripe:evt_1"
    assert {m.identifier: m.rule.value for m in ex.members} == {
        "hubspot.company:123": "first_sight", "stripe.customer:cus_9": "explicit_link",
        "zendesk.organization:77": "first_sight", "domain:acme.com": "email_domain"}
    assert [(ln.a, ln.b, ln.reason) for ln in ex.links] == [
        ("stripe.customer:cus_9", "hubspot.company:123", "stripe customer metadata.hubspot_company_id")]
    assert [a.account_id for a in ex.absorbed] == ["acct:zendesk.organization:77"]
    text = ex.render()
    assert text.splitlines()[0] == "stripe.customer:cus_9 -> acct:hubspot.company:123"
    assert "stripe customer metadata.hubspot_company_id" in text
    assert "acct:zendesk.organization:77" in text and "email-domain fallback" in text

    by_account = w.resolver.explain("acct:zendesk.organization:77")
    assert by_account is not None and by_account.account_id == "acct:hubspot.company:123"
    assert by_account.membership is None
    assert w.resolver.explain("hubspot.company:404") is None


# ---- state, records, determinism ---------------------------------------------------------

def four_systems() -> list[LifecycleEvent]:
    """One customer, Acme, as the four systems each see it."""
    return [
        ev("hs:company", "hubspot.company:123", "domain:acme.com", at=0),
        ev("hs:deal", "hubspot.deal:9", "hubspot.company:123", "hubspot.contact:51", at=1, kind="crm.deal_won"),
        ev("stripe:cus", "stripe.customer:cus_9", "domain:acme.com", at=2, kind="billing.customer_created",
           links=(("stripe.customer:cus_9", "hubspot.company:123", "stripe customer metadata.hubspot_company_id"),)),
        ev("seg:group", "segment.group:g1", "segment.user:u7", at=3, kind="product.group",
           links=(("segment.group:g1", "hubspot.company:123", "segment group trait crm_company_id"),)),
        ev("seg:track", "segment.group:g1", "segment.user:u8", "segment.anonymous:a3", at=4, kind="product.track"),
        ev("zd:ticket", "zendesk.organization:77", "zendesk.user:5", "domain:acme.com", at=5,
           kind="support.ticket_created"),
    ]


def test_four_systems_end_as_one_account_in_any_order() -> None:
    events = four_systems()
    every_id = {i for e in events for i in e.identifiers} | {ln.b for e in events for ln in e.links}
    for order in itertools.permutations(events):
        w = World()
        results = w.feed(*order)
        assert results[-1].account_id == "acct:hubspot.company:123", [e.event_id for e in order]
        assert {w.account(i) for i in every_id} == {"acct:hubspot.company:123"}
        live = w.accounts["acct:hubspot.company:123"]
        assert set(live["members"]) == every_id
        # every absorbed account the pipeline was told about really was absorbed
        for res in results:
            for merge in res.merges:
                assert w.resolver.current_account(merge.from_account) == "acct:hubspot.company:123"


def play(world: World, events: list[LifecycleEvent]) -> list[tuple[str, list[bytes], list[bytes], bool]]:
    return [(r.account_id, [d.to_json() for d in r.decisions], [m.to_json() for m in r.merges], r.new_account)
            for r in world.feed(*events)]


def test_deterministic_and_the_same_over_json_tables_as_over_dicts() -> None:
    events = list(reversed(four_systems())) + four_systems()
    plain_a, plain_b, faustish = World(), World(), World(json_tables=True)
    out_a = play(plain_a, events)
    assert out_a == play(plain_b, events) == play(faustish, events)
    assert orjson.dumps(plain_a.accounts) == orjson.dumps(plain_b.accounts)
    assert {k: orjson.loads(v) for k, v in faustish.accounts.data.items()} == orjson.loads(orjson.dumps(plain_a.accounts))
    assert {k: orjson.loads(v) for k, v in faustish.links.data.items()} == plain_a.links


def test_known_event_touches_only_the_links_table() -> None:
    w = World(json_tables=True)
    w.feed(*four_systems())
    links, accounts = w.links, w.accounts
    assert isinstance(links, JsonTable) and isinstance(accounts, JsonTable)
    links.reads = links.writes = accounts.reads = accounts.writes = 0
    (res,) = w.feed(ev("seg:again", "segment.group:g1", "segment.user:u7", at=9, kind="product.track"))
    assert res.account_id == "acct:hubspot.company:123" and not res.decisions
    assert (links.reads, links.writes, accounts.reads, accounts.writes) == (2, 0, 0, 0)
    (billing,) = w.feed(ev("stripe:again", "stripe.customer:cus_9", at=9, kind="billing.invoice_paid",
                           links=(("stripe.customer:cus_9", "hubspot.company:123", "stripe customer metadata.hubspot_company_id"),)))
    assert billing.account_id == "acct:hubspot.company:123"
    assert accounts.writes == links.writes == 0 and accounts.reads == 1


def test_records_round_trip_through_the_identity_topic() -> None:
    w = World()
    w.feed(ev("stripe:1", "stripe.customer:cus_9"))
    (res,) = w.feed(ev("stripe:2", "stripe.customer:cus_9", at=1,
                       links=(("stripe.customer:cus_9", "hubspot.company:123", "metadata"),)))
    for record in [*res.decisions, *res.merges]:
        back = parse_identity_record(record.to_json())
        assert type(back) is type(record) and back == record
    assert all(isinstance(d, IdentityDecision) and d.decision_id.startswith("idd-") for d in res.decisions)
    assert res.merges[0].merge_id.startswith("merge-")


def test_evidence_is_capped_but_membership_is_not() -> None:
    w = World()
    w.feed(ev("hs:1", "hubspot.company:1"))
    n = LINKS_KEPT + 20
    w.feed(*(ev(f"seg:{i}", "segment.user:u%d" % i, at=1,
                links=(("segment.user:u%d" % i, "hubspot.company:1", "user trait company_id"),)) for i in range(n)))
    acct = w.accounts["acct:hubspot.company:1"]
    assert len(acct["links"]) == LINKS_KEPT
    assert len(acct["members"]) == n + 1
    for i in range(ABSORBED_KEPT + 5):
        w.feed(ev(f"zd:{i}", f"zendesk.organization:{i}", at=2,
                  links=((f"zendesk.organization:{i}", f"zendesk.user:{i}", "requester organization_id"),)),
               ev(f"zd:l{i}", f"zendesk.organization:{i}", at=3,
                  links=((f"zendesk.organization:{i}", "hubspot.company:1", "org external_id"),)))
    acct = w.accounts["acct:hubspot.company:1"]
    assert len(acct["absorbed"]) == ABSORBED_KEPT
    assert len(acct["links"]) == LINKS_KEPT
    assert w.account(f"zendesk.user:{ABSORBED_KEPT + 4}") == "acct:hubspot.company:1"
    assert acct["absorbed"][-1][0] == f"acct:zendesk.organization:{ABSORBED_KEPT + 4}"
    assert len(orjson.dumps(w.accounts["acct:zendesk.organization:0"])) < 300


def test_namespaces_are_configuration_not_core_knowledge() -> None:
    # The default comes from the vendor modules: a HubSpot contact is a person, so the company anchors.
    default = World()
    default.feed(ev("hubspot:1", "hubspot.contact:7"), ev("hubspot:2", "hubspot.company:1", "hubspot.contact:7"))
    assert default.account("hubspot.contact:7") == "acct:hubspot.company:1"
    # A vendor the core has never heard of, declared in the journey's identity config.
    config = IdentityConfig(namespaces={**IdentityConfig().namespaces, "pipedrive.person": "person",
                                        "pipedrive.org": "crm_account"},
                            anchor_preference=("pipedrive.org", *IdentityConfig().anchor_preference))
    w = World(config)
    w.feed(ev("pipedrive:1", "pipedrive.person:5"), ev("pipedrive:2", "pipedrive.org:9", "pipedrive.person:5"))
    assert w.account("pipedrive.person:5") == "acct:pipedrive.org:9"
    # Unconfigured, the same person id would have anchored its own account and been merged as an equal.
    plain = World()
    plain.feed(ev("pipedrive:1", "pipedrive.person:5"))
    assert plain.account("pipedrive.person:5") == "acct:pipedrive.person:5"
