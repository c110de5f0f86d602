"""Issue 10 item 7: identity merges keep the journey. A HubSpot contact reaches MQL and SQL
before it is associated with its company; after the merge the company's stream continues
SQL → closed-won with the right time in SQL, the contact's stream ends with a ``merged``
record, and the read model's funnel counts one account. Run through the worker's own steps
(parse → identity → PartitionLogic → AccountLogic) by the offline driver."""

from __future__ import annotations

from datetime import timedelta

from pipeline.core.account import MERGED_KIND, AccountLogic
from pipeline.core.state import AccountState
from pipeline.readmodel.engine import make_engine, migrate
from pipeline.readmodel.queries import funnel
from pipeline.readmodel.writer import ReadModelWriter
from schemas.events import IdentityLink
from schemas.identity import AccountMerged, IdentityRule
from tests import histories as h
from tests.core.test_account_sla import EMITTED, J, event, ny

COMPANY, CONTACT, DEAL = 900100, 500100, 700100
SURVIVOR, PROVISIONAL = f"acct:hubspot.company:{COMPANY}", f"acct:hubspot.contact:{CONTACT}"


def _stream(out, account):
    return [t for t in out.transitions if t.account_id == account]


def test_the_survivor_continues_from_sql_with_the_time_spent_in_sql() -> None:
    out, stats = h.replay(h.contact_first(COMPANY, CONTACT), now=h.day(11))
    assert not stats.dead_letters
    company = _stream(out, SURVIVOR)
    assert [(t.from_stage, t.to_stage) for t in company] == [(None, "MQL"), ("MQL", "SQL"), ("SQL", "closed-won")]
    assert [t.occurred_at for t in company] == [h.day(0), h.day(2), h.day(10)]
    assert company[2].time_in_previous_stage_seconds == timedelta(days=8).total_seconds()
    assert not any(t.provisional for t in company)
    assert [m.from_account for m in out.merges] == [PROVISIONAL]


def test_the_provisional_stream_is_marked_and_ends_with_a_merged_record() -> None:
    out, _ = h.replay(h.contact_first(COMPANY, CONTACT), now=h.day(11))
    contact = _stream(out, PROVISIONAL)
    assert [(t.from_stage, t.to_stage, t.direction) for t in contact] == [
        (None, "MQL", "forward"), ("MQL", "SQL", "forward"), ("SQL", "SQL", "merged")]
    assert all(t.provisional for t in contact)
    marker = contact[-1]
    assert marker.merged_into == SURVIVOR and marker.trigger_kind == MERGED_KIND
    # stamped at the merge (the association on day 5), not at the contact's last event (day 2)
    assert marker.occurred_at == h.day(5)
    # The survivor re-played the contact's transitions: same triggers, under its own id.
    assert {t.trigger_event_id for t in contact[:2]} <= {t.trigger_event_id for t in _stream(out, SURVIVOR)}


def test_the_funnel_counts_the_customer_once(tmp_path) -> None:
    out, _ = h.replay(h.contact_first(COMPANY, CONTACT), now=h.day(11))
    engine = make_engine(f"sqlite:///{tmp_path / 'rm.db'}")
    migrate(engine)
    ReadModelWriter(engine).apply([*out.transitions, *out.handoffs, *out.breaches])  # the topic alone
    stages = {s.stage: s.reached for s in funnel(engine, journey=J).stages}
    assert (stages["MQL"], stages["SQL"], stages["closed-won"]) == (1, 1, 1)


def test_a_deal_created_before_its_company_association_is_provisional_and_merged_away() -> None:
    out, _ = h.replay(h.deal_before_company(COMPANY, DEAL), now=h.day(4))
    deal = _stream(out, f"acct:hubspot.deal:{DEAL}")
    assert [(t.from_stage, t.to_stage, t.direction, t.provisional) for t in deal] == [
        (None, "SQL", "forward", True), ("SQL", "SQL", "merged", True)]
    assert deal[-1].merged_into == SURVIVOR
    company = _stream(out, SURVIVOR)
    assert [(t.from_stage, t.to_stage, t.occurred_at, t.provisional) for t in company] == [
        (None, "SQL", h.day(1), False)]


def test_an_absorbed_account_that_reached_no_stage_publishes_no_merged_record() -> None:
    logic, survivor = AccountLogic(J, clock=lambda: EMITTED), AccountState(account_id=SURVIVOR)
    note = event("crm.company_updated", ny(2025, 3, 3, 9), "upd", changed=["name"])
    merge = AccountMerged(merge_id="m", from_account="acct:stripe.customer:cus_1", into_account=SURVIVOR,
                          rule=IdentityRule.EXPLICIT_LINK, reason="r", link=IdentityLink(a="a", b="b", reason="r"),
                          event_id="e1", decided_at=ny(2025, 3, 4, 9))
    out = logic.on_merge_in(survivor, [note.model_copy(update={"account_id": merge.from_account})], merge)
    assert not out.transitions
    # With a stage, the record names the merge's own event and time.
    won = event("crm.deal_won", ny(2025, 3, 3, 10), "won2", deal_id="d", deal_type="new_business")
    out = logic.on_merge_in(AccountState(account_id=SURVIVOR), [won.model_copy(update={"account_id": merge.from_account})],
                            merge)
    marker, replayed = out.transitions
    assert (marker.account_id, marker.trigger_event_id, marker.occurred_at) == (merge.from_account, "e1", merge.decided_at)
    assert (replayed.account_id, replayed.to_stage) == (SURVIVOR, "closed-won")
