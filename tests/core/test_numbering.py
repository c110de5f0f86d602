"""Account-topic messages numbered per receiving partition: a repeat is skipped, a message after a
missing one waits for its sender's re-send, and the re-sent sequence gives the outputs of an
unbroken one (the SIGTERM failure of the consistency verifier: a cancelled first send, a second
one delivered, the first's events then skipped as repeats)."""

from __future__ import annotations

from pipeline.core.account import AccountLogic
from pipeline.core.numbering import Counters, Verdict, check
from pipeline.core.partition import PartitionLogic, Progress
from pipeline.ingest import INGEST_ORIGIN
from schemas.accounts import AccountMessage
from schemas.identity import AccountMerged, IdentityRule
from schemas.events import IdentityLink
from tests.core.test_account_sla import ACCOUNT, EMITTED, J
from tests.core.test_partition import LATER, OPP, OTHER, WON, Tables, ids


def numbered(seq: int, ev, account: str = ACCOUNT) -> AccountMessage:
    return AccountMessage(type="event", account_id=account, origin=INGEST_ORIGIN, seq=seq,
                          event=ev.model_copy(update={"account_id": account}))


def logic() -> PartitionLogic:
    return PartitionLogic(AccountLogic(J, clock=lambda: EMITTED), partition=0, partition_of=lambda account: 0)


def test_check_tells_apply_repeat_and_gap() -> None:
    last: dict[str, int] = {}
    assert check(last, "ingest/p", 1) is Verdict.APPLY and last == {"ingest/p": 1}
    assert check(last, "ingest/p", 1) is Verdict.REPEAT
    assert check(last, "ingest/p", 3) is Verdict.GAP and last == {"ingest/p": 1}   # 2 is missing
    assert check(last, "ingest/p", 2) is Verdict.APPLY
    assert check(last, "ingest/p", 3) is Verdict.APPLY
    assert check(last, None, None) is Verdict.APPLY   # a clock reading is not numbered


def test_messages_numbered_by_earlier_versions_are_deduplicated_without_gap_detection() -> None:
    last: dict[str, int] = {}
    assert check(last, "ingest", 7) is Verdict.APPLY     # one sequence per sender: jumps are normal
    assert check(last, "ingest", 7) is Verdict.REPEAT
    assert check(last, "ingest", 12) is Verdict.APPLY


def test_counters_number_each_partition_from_one_and_survive_storage() -> None:
    sent = Counters()
    assert [sent.next(0), sent.next(2), sent.next(0), sent.next(0), sent.next(2)] == [1, 1, 2, 3, 2]
    again = Counters(sent.to_dict())
    assert again.next(0) == 4 and again.next(1) == 1
    progress = Progress(sent=Counters({"3": 9}))
    assert Progress.from_dict(progress.to_dict()).sent.next(3) == 10


def test_a_message_after_a_missing_one_waits_for_the_re_send_and_the_outputs_are_the_unbroken_ones() -> None:
    unbroken_tables, unbroken = Tables(), logic()
    reference = ids([unbroken_tables.run(unbroken, [numbered(1, OPP), numbered(2, WON)]),
                     unbroken_tables.run(unbroken, [numbered(3, LATER, account=OTHER)])])

    tables, p = Tables(), logic()
    # the first send (1) is lost; the second (2, 3) arrives: neither is applied
    held = tables.run(p, [numbered(2, WON), numbered(3, LATER, account=OTHER)])
    assert not held.emitted and len(held.gaps) == 2 and not tables.accounts
    # the sender restarts from its commit and sends everything again, in order
    again = tables.run(p, [numbered(1, OPP), numbered(2, WON)])
    rest = tables.run(p, [numbered(3, LATER, account=OTHER)])
    assert ids([held, again, rest]) == reference
    assert tables.accounts[ACCOUNT] == unbroken_tables.accounts[ACCOUNT]


def test_forwarded_merges_are_numbered_per_receiving_partition() -> None:
    where = {ACCOUNT: 0, OTHER: 1, "acct:c": 2}
    p = PartitionLogic(AccountLogic(J, clock=lambda: EMITTED), partition=0, partition_of=where.__getitem__)
    tables = Tables()
    tables.run(p, [numbered(1, OPP)])
    forwards = []
    for i, into in enumerate([OTHER, "acct:c", OTHER], start=1):
        merge = AccountMerged(merge_id=f"m{i}", from_account=ACCOUNT if i == 1 else f"acct:gone{i}",
                              into_account=into, rule=IdentityRule.EXPLICIT_LINK, reason="link",
                              link=IdentityLink(a="x", b="y", reason="r"), event_id=f"e{i}", decided_at=OPP.occurred_at)
        result = tables.run(p, [AccountMessage(type="merge_out", account_id=merge.from_account, merge=merge,
                                               origin=INGEST_ORIGIN, seq=i + 1)])
        forwards += result.forward
    assert [(m.account_id, m.origin, m.seq) for m in forwards] == [
        (OTHER, "accounts-0/p", 1), ("acct:c", "accounts-0/p", 1), (OTHER, "accounts-0/p", 2)]
