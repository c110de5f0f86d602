"""The stage engine: idempotency, allowed moves, event time, jumps, deterministic ids."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from pipeline.core.engine import Outcome, apply_event
from pipeline.core.state import DIGEST_BYTES, RECENT_IDS, AccountState, window_digest
from pipeline.journey import load_journey, parse_journey
from schemas.transitions import StageTransition
from tests.core.factories import T0, at, ev

J = load_journey()
NOW = T0 + timedelta(days=400)


def run(events, journey=J, state=None):
    state = state or AccountState(account_id="acct:1")
    results = [apply_event(journey, state, e, NOW) for e in events]
    return state, results, [t for r in results for t in r.transitions]


def path_of(transitions):
    return [(t.from_stage, t.to_stage) for t in transitions]


MQL = lambda d=0, **kw: ev("crm.lead_qualified", d, qualification="mql", **kw)
SQL = lambda d=0, **kw: ev("crm.lead_qualified", d, qualification="sql", **kw)
WON = lambda d=0, **kw: ev("crm.deal_won", d, deal_id="9", **kw)
KICKOFF = lambda d=0, **kw: ev("crm.activity_logged", d, activity_type="kickoff", **kw)
ACTIVATED = lambda d=0, **kw: ev("product.track", d, event="Workspace Activated", **kw)
CANCELED = lambda d=0, **kw: ev("billing.subscription_canceled", d, **kw)
RESUBSCRIBED = lambda d=0, **kw: ev("billing.subscription_created", d, status="active", **kw)


def test_full_buyer_to_customer_journey():
    state, _, trs = run([MQL(0), SQL(2), WON(20), KICKOFF(23), ACTIVATED(40)])
    assert path_of(trs) == [(None, "MQL"), ("MQL", "SQL"), ("SQL", "closed-won"),
                            ("closed-won", "onboarding"), ("onboarding", "adoption")]
    assert state.stage == "adoption"
    assert [t.to_owner_team for t in trs] == ["marketing", "sales", "sales", "customer_success", "customer_success"]
    assert trs[1].from_owner_team == "marketing"
    assert trs[2].time_in_previous_stage_seconds == 18 * 86400
    assert trs[0].time_in_previous_stage_seconds is None
    assert all(not t.inferred for t in trs)


def test_transition_ids_are_deterministic_across_replays():
    events = [MQL(0), SQL(2), WON(20)]
    _, _, first = run(events)
    _, _, second = run(events)
    assert [t.transition_id for t in first] == [t.transition_id for t in second]
    assert first[1].transition_id == StageTransition.make_id("acct:1", "SQL", events[1].event_id)
    assert len({t.transition_id for t in first}) == 3


def test_redelivered_event_changes_nothing():
    e = SQL(2)
    state, results, trs = run([MQL(0), e, e])
    assert results[2].outcome is Outcome.DUPLICATE
    assert path_of(trs) == [(None, "MQL"), ("MQL", "SQL")]
    assert state.events_seen == 2


def test_event_matching_no_stage_or_same_stage_does_not_move():
    state, results, trs = run([MQL(0), ev("support.ticket_created", 1, ticket_id="5"), MQL(2)])
    assert [r.outcome for r in results] == [Outcome.MOVED, Outcome.NO_MATCH, Outcome.SAME_STAGE]
    assert state.stage == "MQL" and len(trs) == 1


def test_jump_emits_inferred_intermediate_stages():
    state, _, trs = run([SQL(0), KICKOFF(5)])
    assert path_of(trs) == [(None, "SQL"), ("SQL", "closed-won"), ("closed-won", "onboarding")]
    inferred = trs[1]
    assert inferred.inferred and inferred.occurred_at == at(5) and inferred.trigger_event_id == trs[2].trigger_event_id
    assert inferred.time_in_previous_stage_seconds == 5 * 86400
    assert trs[2].time_in_previous_stage_seconds == 0
    assert not trs[2].inferred
    assert [v.stage for v in state.history] == ["SQL", "closed-won", "onboarding"]


def test_direct_jump_mode_emits_one_transition():
    data = load_journey().model_dump(by_alias=True, mode="json")
    data["jumps"] = "direct"
    direct = parse_journey(data)
    _, _, trs = run([SQL(0), KICKOFF(5)], journey=direct)
    assert path_of(trs) == [(None, "SQL"), ("SQL", "onboarding")]


def test_first_stage_is_where_the_first_matching_event_puts_it():
    _, _, trs = run([WON(3)])
    assert path_of(trs) == [(None, "closed-won")]


def test_late_event_cannot_move_backwards():
    # The deal was lost on day 1 but the CRM delivered it after the SQL of day 2 ... then a
    # lost deal arriving late (older than the current stage) must not recycle the account.
    state, results, trs = run([MQL(0), SQL(3), ev("crm.deal_lost", 2, reason="budget")])
    assert results[-1].outcome is Outcome.LATE
    assert state.stage == "SQL"
    assert state.ignored[-1].reason == "late" and state.ignored[-1].target == "MQL"


def test_in_order_backward_move_allowed_only_where_defined():
    state, _, trs = run([MQL(0), SQL(3), ev("crm.deal_lost", 10, reason="budget")])
    assert path_of(trs)[-1] == ("SQL", "MQL") and trs[-1].direction == "backward"
    # closed-won → MQL is not in the definition's backward list
    state, results, _ = run([SQL(0), WON(5), ev("crm.deal_lost", 10)])
    assert results[-1].outcome is Outcome.NOT_ALLOWED and state.stage == "closed-won"


def test_late_event_may_still_move_forward():
    state, _, trs = run([MQL(10), SQL(8)])  # SQL happened earlier than MQL but arrived later
    assert path_of(trs) == [(None, "MQL"), ("MQL", "SQL")]
    assert trs[1].time_in_previous_stage_seconds == 0
    assert state.stage_entered_at == at(10)  # never goes back in time


def test_churn_and_re_engagement():
    state, results, trs = run([WON(0), KICKOFF(2), ACTIVATED(20), CANCELED(100), ACTIVATED(110),
                               RESUBSCRIBED(150), ACTIVATED(160)])
    assert path_of(trs) == [(None, "closed-won"), ("closed-won", "onboarding"), ("onboarding", "adoption"),
                            ("adoption", "churned"), ("churned", "re-engaged"), ("re-engaged", "adoption")]
    assert results[4].outcome is Outcome.NOT_ALLOWED  # usage while churned does not un-churn
    assert trs[3].direction == "regression" and trs[4].direction == "return"
    assert not trs[5].inferred  # leaving a return stage is a direct move
    assert state.stage == "adoption"


def test_churn_needs_a_customer():
    state, results, _ = run([MQL(0), CANCELED(3)])
    assert results[1].outcome is Outcome.NOT_ALLOWED and state.stage == "MQL"


def test_owner_and_segment_are_absorbed():
    state, _, trs = run([MQL(0), ev("crm.owner_changed", 1, owner_id="ae-7", object="company"),
                         SQL(2), WON(9, segment="enterprise")])
    assert state.crm_owner_id == "ae-7" and state.segment == "enterprise"
    assert trs[1].owner_id == "ae-7"


def test_idempotency_window_is_bounded():
    state = AccountState(account_id="a")
    for i in range(1000):
        state.remember(f"e{i}")
    assert len(state.recent_event_ids) == RECENT_IDS * DIGEST_BYTES
    assert not state.remember("e999") and state.remember("e0")  # the newest kept, the oldest gone


def test_the_window_is_written_packed_and_read_in_both_forms():
    import hashlib

    state = AccountState(account_id="a")
    for i in range(RECENT_IDS):
        state.remember(f"e{i}")
    written = state.model_dump_json()
    window = orjson.loads(written)["recent_event_ids"]
    assert isinstance(window, str) and len(window) == 684          # 512 bytes in base64, not 64 numbers
    assert AccountState.model_validate_json(written) == state
    # a state written before the window was packed: its digests as a list of integers
    old = [int.from_bytes(hashlib.blake2b(f"e{i}".encode(), digest_size=8).digest(), "big") >> 1
           for i in range(RECENT_IDS)]
    before = AccountState.model_validate_json(f'{{"account_id": "a", "recent_event_ids": {old}}}')
    assert before == state
    assert not before.remember("e7") and before.remember("e64")  # a re-delivery across the upgrade is still seen


def test_a_digest_found_across_two_remembered_ones_is_not_a_repeat():
    digest = window_digest("x")
    state = AccountState(account_id="a", recent_event_ids=b"\0" * 4 + digest + b"\0" * 4)   # straddles two slots
    assert state.remember("x")
    assert not state.remember("x")


@pytest.mark.parametrize("order", [[0, 1, 2, 3], [1, 0, 2, 3], [0, 2, 1, 3]])
def test_same_final_stage_for_shuffled_near_simultaneous_delivery(order):
    events = [MQL(0), SQL(1), WON(2), KICKOFF(3)]
    state, _, _ = run([events[i] for i in order])
    assert state.stage == "onboarding"
