"""One account partition as a function of its message sequence: re-sent messages apply
once, deadlines fire where the watermark passes them, and a merge's outcome does not
depend on when the absorbed account's journal arrives."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pipeline.codecs import ORJSON
from pipeline.core.account import AccountLogic
from pipeline.core.partition import HELD_PER_SLOT, PartitionLogic
from pipeline.core.state import AccountState, held_key
from schemas.accounts import AccountMessage
from schemas.events import IdentityLink
from schemas.identity import AccountMerged, IdentityRule
from tests.core.test_account_sla import ACCOUNT, EMITTED, J, event, ny

OTHER = "acct:hubspot.company:77"
ABSORBED = "acct:stripe.customer:cus_42"


class Tables:
    """The partition's tables, written back after each batch as the agent does."""

    def __init__(self) -> None:
        self.accounts: dict[str, AccountState] = {}
        self.journals: dict = {}
        self.deadlines: dict[str, float] = {}
        self.readings: dict[str, float] = {}

    def run(self, logic: PartitionLogic, messages: list[AccountMessage]) -> list:
        result = logic.process(messages, self.accounts, self.journals, self.deadlines, self.readings)
        self.accounts.update(result.states)
        for target, changes in ((self.journals, result.journals), (self.deadlines, result.deadlines),
                                (self.readings, result.logs)):
            for key, value in changes.items():
                if value is None:
                    target.pop(key, None)
                else:
                    target[key] = value  # type: ignore[index]
        return result


def ingest(seq: int, ev, account: str = ACCOUNT) -> AccountMessage:
    return AccountMessage(type="event", account_id=account, origin="ingest", seq=seq,
                          event=ev.model_copy(update={"account_id": account}))


def logic() -> PartitionLogic:
    return PartitionLogic(AccountLogic(J, clock=lambda: EMITTED), partition=0)


WON = event("crm.deal_won", ny(2025, 3, 7, 16), "won", deal_id="d-42", amount=48000, currency="usd",
            close_date="2025-03-07", deal_type="new_business", segment="enterprise", owner_id="u-ae")
OPP = event("crm.opportunity_created", ny(2025, 3, 4, 10), "opp", deal_id="d-42", deal_name="Acme",
            amount=48000, currency="usd", stage="appointmentscheduled", deal_type="new_business",
            segment="enterprise", owner_id="u-ae")
LATER = event("crm.activity_logged", ny(2025, 4, 30, 9), "far-later", activity_type="call", owner_id="u-x")


def ids(results) -> list[str]:
    out = []
    for r in results:
        for e in r.emitted:
            out += [t.transition_id for t in e.outputs.transitions]
            out += [b.record_id for b in e.outputs.breaches]
            out += [f"{h.handoff_id}/{h.version}" for h in e.outputs.handoffs]
    return out


def test_a_re_sent_message_applies_once() -> None:
    tables, p = Tables(), logic()
    first = tables.run(p, [ingest(1, OPP), ingest(2, WON)])
    again = tables.run(p, [ingest(1, OPP), ingest(2, WON)])
    assert ids([first]) and again.skipped == 2 and not again.emitted


def test_a_deadline_fires_when_another_accounts_event_passes_it() -> None:
    tables, p = Tables(), logic()
    tables.run(p, [ingest(1, OPP), ingest(2, WON)])
    assert tables.deadlines[ACCOUNT] <= LATER.occurred_at.timestamp()
    result = tables.run(p, [ingest(3, LATER, account=OTHER)])
    breaches = [b for e in result.emitted if e.account_id == ACCOUNT for b in e.outputs.breaches]
    assert breaches and all(b.account_id == ACCOUNT for b in breaches)
    assert {b.detected_at for b in breaches} == {LATER.occurred_at}


def merged(journal_position: int) -> list[str]:
    """Absorbed account's journal arrives at ``journal_position`` in the survivor's sequence."""
    tables, p = Tables(), logic()
    merge = AccountMerged(merge_id="m1", from_account=ABSORBED, into_account=ACCOUNT, rule=IdentityRule.EXPLICIT_LINK,
                          reason="link", link=IdentityLink(a="x", b="y", reason="r"), event_id="e",
                          decided_at=ny(2025, 3, 7, 17))
    merge_in = AccountMessage(type="merge_in", account_id=ACCOUNT, merge=merge, journal=[WON],
                              origin="accounts-1", seq=1)
    sequence = [ingest(1, OPP), AccountMessage(type="merge_wait", account_id=ACCOUNT, merge=merge,
                                               origin="ingest", seq=2),
                ingest(3, LATER, account=OTHER), ingest(4, LATER.model_copy(update={"event_id": "hubspot:x2",
                "occurred_at": LATER.occurred_at + timedelta(days=3)}))]
    sequence.insert(journal_position, merge_in)
    results = [tables.run(p, [m]) for m in sequence]
    results.append(tables.run(p, [AccountMessage(type="clock", account_id="", now=datetime(2026, 1, 1, tzinfo=timezone.utc))]))
    survivor = tables.accounts[ACCOUNT]
    assert survivor.awaiting_merge is None and not survivor.held
    assert [v.stage for v in survivor.history][:2] == ["SQL", "closed-won"]  # the journal's deal won
    return ids(results)


def test_a_merge_gives_the_same_outputs_whenever_the_journal_arrives() -> None:
    outcomes = {tuple(sorted(merged(position))) for position in range(0, 5)}
    assert len(outcomes) == 1
    (only,) = outcomes
    assert len(only) >= 3  # transitions, handoffs and breaches, not an empty agreement


def local_merge(merge_first: bool) -> tuple[Tables, list]:
    """Both accounts in this partition: the absorbed one won a deal, then a link merges it."""
    tables = Tables()
    p = PartitionLogic(AccountLogic(J, clock=lambda: EMITTED), partition=0, partition_of=lambda account: 0)
    merge = AccountMerged(merge_id="m6", from_account=ABSORBED, into_account=ACCOUNT, rule=IdentityRule.EXPLICIT_LINK,
                          reason="link", link=IdentityLink(a="x", b="y", reason="r"), event_id="e",
                          decided_at=ny(2025, 3, 7, 17))
    out = AccountMessage(type="merge_out", account_id=ABSORBED, merge=merge, origin="ingest", seq=3)
    wait = AccountMessage(type="merge_wait", account_id=ACCOUNT, merge=merge, origin="ingest", seq=4)
    first = tables.run(p, [ingest(1, OPP, account=ABSORBED), ingest(2, WON, account=ABSORBED)])
    pair = [out, wait] if merge_first else [wait.model_copy(update={"seq": 3}), out.model_copy(update={"seq": 4})]
    result = tables.run(p, [*pair, ingest(5, LATER)])
    return tables, [first, result]


def test_a_merge_within_one_partition_hands_the_journal_over_in_place() -> None:
    """No round trip through the account topic: nothing forwarded, nothing held, the survivor
    has the absorbed account's history by the end of the batch, in either announcement order."""
    outcomes = []
    for merge_first in (True, False):
        tables, results = local_merge(merge_first)
        assert not results[1].forward and not any("|held|" in k for k in results[1].logs)
        survivor = tables.accounts[ACCOUNT]
        assert survivor.awaiting_merge is None and survivor.held_len == 0
        assert [v.stage for v in survivor.history][:2] == ["SQL", "closed-won"]
        assert tables.accounts[ABSORBED].merged_into == ACCOUNT
        outcomes.append(sorted(ids(results)))
    assert outcomes[0] == outcomes[1] and outcomes[0]



def test_the_sla_clock_never_runs_ahead_of_the_wall_clock() -> None:
    """An event dated after the wall clock (within the accepted skew) moves the partition's clock
    only to the wall clock: deadlines before the event's date but after now must not fire."""
    wall = ny(2025, 3, 7, 12)
    p = PartitionLogic(AccountLogic(J, clock=lambda: wall), partition=0)
    Tables().run(p, [ingest(1, OPP), ingest(2, LATER)])
    assert p.progress.watermark == wall.timestamp()


def test_a_pinned_clock_fires_deadlines_registered_behind_it() -> None:
    """With the wall clock pinned, a clock reading arrives before a backfilled deal; the kickoff
    deadline that deal registers already lies behind the clock. The next reading of the same
    instant fires it (a live clock would move on; a pinned one never does)."""
    wall = ny(2025, 4, 1, 9)
    p, tables = PartitionLogic(AccountLogic(J, clock=lambda: wall), partition=0), Tables()
    tables.run(p, [AccountMessage(type="clock", account_id="", now=wall)])
    tables.run(p, [ingest(1, OPP), ingest(2, WON)])
    result = tables.run(p, [AccountMessage(type="clock", account_id="", now=wall)])
    breaches = [b for e in result.emitted for b in e.outputs.breaches]
    assert [(b.sla_id, b.status.value) for b in breaches if b.sla_id == "customer-kickoff"] == [
        ("customer-kickoff", "breached")]
    assert not p.clock_due(wall)  # nothing due is left behind the clock


def awaiting_merge(merge_id: str) -> tuple[Tables, PartitionLogic, AccountMerged]:
    """A partition whose ACCOUNT was told of a merge (merge_wait) and waits for the journal."""
    tables, p = Tables(), logic()
    merge = AccountMerged(merge_id=merge_id, from_account=ABSORBED, into_account=ACCOUNT,
                          rule=IdentityRule.EXPLICIT_LINK, reason="link", link=IdentityLink(a="x", b="y", reason="r"),
                          event_id="e", decided_at=ny(2025, 3, 7, 17))
    tables.run(p, [AccountMessage(type="merge_wait", account_id=ACCOUNT, merge=merge, origin="ingest", seq=1)])
    return tables, p, merge


def test_messages_held_for_a_merge_are_written_once_per_batch_and_not_with_the_state() -> None:
    tables, p, merge = awaiting_merge("m2")
    writes = [tables.run(p, [ingest(2 + i, ev)]).logs for i, ev in enumerate((OPP, WON))]
    # each batch writes only its own slot; the state carries a count, not the messages
    assert [sorted(k for k in w if "|held|" in k) for w in writes] == [[held_key(ACCOUNT, 0)], [held_key(ACCOUNT, 1)]]
    state = tables.accounts[ACCOUNT]
    assert (state.held, state.held_len) == ([], 2)
    # as a restarted worker reads them: each slot through the progress table's codec, back as JSON
    tables.readings = {k: ORJSON.loads(ORJSON.dumps(v)) for k, v in tables.readings.items()}
    assert [m["event"]["event_id"] for m in tables.readings[held_key(ACCOUNT, 0)]] == [OPP.event_id]
    result = tables.run(p, [AccountMessage(type="merge_in", account_id=ACCOUNT, merge=merge, journal=[],
                                           origin="accounts-1", seq=1)])
    assert {k: v for k, v in result.logs.items() if "|held|" in k} == {held_key(ACCOUNT, 0): None,
                                                                       held_key(ACCOUNT, 1): None}
    survivor = tables.accounts[ACCOUNT]
    assert (survivor.awaiting_merge, survivor.held, survivor.held_len) == (None, [], 0)
    assert [v.stage for v in survivor.history][:2] == ["SQL", "closed-won"]  # OPP then WON, applied in order
    assert not any("|held|" in k for k in tables.readings)


def test_one_batch_holds_all_its_messages_for_an_account_in_one_slot() -> None:
    """A survivor can wait through a long backlog: each batch adds one slot, not one per message."""
    tables, p, merge = awaiting_merge("m4")
    held = tables.run(p, [ingest(2, OPP), ingest(3, WON)]).logs
    assert {k: [m.event.event_id for m in v] for k, v in held.items() if "|held|" in k} == {
        held_key(ACCOUNT, 0): [OPP.event_id, WON.event_id]}
    assert tables.accounts[ACCOUNT].held_len == 1
    tables.run(p, [AccountMessage(type="merge_in", account_id=ACCOUNT, merge=merge, journal=[],
                                  origin="accounts-1", seq=1)])
    assert [v.stage for v in tables.accounts[ACCOUNT].history][:2] == ["SQL", "closed-won"]


def test_a_held_slot_holds_at_most_its_bound_of_messages() -> None:
    """A changelog value must stay below the broker's message limit, however many wait."""
    tables, p, merge = awaiting_merge("m7")
    many = [ingest(2 + i, LATER.model_copy(update={"event_id": f"later-{i}"})) for i in range(HELD_PER_SLOT + 5)]
    held = tables.run(p, many).logs
    assert [len(held[held_key(ACCOUNT, i)]) for i in range(2)] == [HELD_PER_SLOT, 5]
    assert tables.accounts[ACCOUNT].held_len == 2
    tables.run(p, [AccountMessage(type="merge_in", account_id=ACCOUNT, merge=merge, journal=[],
                                  origin="accounts-1", seq=1)])
    assert tables.accounts[ACCOUNT].events_seen == HELD_PER_SLOT + 5


def test_a_held_slot_written_one_message_each_by_earlier_versions_is_still_released() -> None:
    tables, p, merge = awaiting_merge("m5")
    state = tables.accounts[ACCOUNT]
    tables.accounts[ACCOUNT] = state.model_copy(update={"held_len": 2, "held_at": [0, 0]})
    tables.readings = {held_key(ACCOUNT, i): ORJSON.loads(ORJSON.dumps(ingest(2 + i, ev)))
                       for i, ev in enumerate((OPP, WON))}
    result = tables.run(p, [AccountMessage(type="merge_in", account_id=ACCOUNT, merge=merge, journal=[],
                                           origin="accounts-1", seq=1)])
    assert {k: v for k, v in result.logs.items() if "|held|" in k} == {held_key(ACCOUNT, 0): None,
                                                                       held_key(ACCOUNT, 1): None}
    assert [v.stage for v in tables.accounts[ACCOUNT].history][:2] == ["SQL", "closed-won"]


def test_a_state_written_before_held_slots_still_releases_its_held_list() -> None:
    tables, p, merge = awaiting_merge("m3")
    state = tables.accounts[ACCOUNT]
    tables.accounts[ACCOUNT] = state.model_copy(update={"held": [ingest(2, OPP), ingest(3, WON)], "held_at": [0, 0]})
    tables.run(p, [AccountMessage(type="merge_in", account_id=ACCOUNT, merge=merge, journal=[],
                                  origin="accounts-1", seq=1)])
    survivor = tables.accounts[ACCOUNT]
    assert (survivor.held, survivor.held_len) == ([], 0)
    assert [v.stage for v in survivor.history][:2] == ["SQL", "closed-won"]
