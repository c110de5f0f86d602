"""One account partition's processing: a deterministic function of its message sequence.

The Faust agent hands each batch from ``lifecycle.account-events`` to
:meth:`PartitionLogic.process` with read access to the partition's tables and
writes back what it returns. Everything that decides an output lives here:

* **Exactly-once effect.** Every message carries ``(origin, seq)``, numbered per
  receiving partition (``core.numbering``); a partition remembers the last seq
  applied per origin, so a message re-sent after a restart is skipped, whatever
  state the restart left, and a message after a lost one waits for its re-send.
* **The SLA clock is the partition's event-time watermark** (the newest event
  time it has processed, or the ``clock`` the ingest step sends once every
  input is caught up). When it passes an account's deadline, the account gets a
  tick right there in the sequence: deadlines fire at a point fixed by the data,
  never by when a timer happened to run.
* **Merges.** The identity step announces a merge to both accounts at one point
  of the input: ``merge_out`` to the absorbed account (which forwards its
  journal) and ``merge_wait`` to the survivor, which holds everything addressed
  to it until the journal arrives. The survivor's history is then the same
  however the two partitions interleave. When both accounts live in this
  partition the journal is handed over in place, right after the ``merge_out``
  (a fixed point of the sequence), without the round trip through Kafka during
  which the survivor would hold everything.
"""

from __future__ import annotations

import bisect
import heapq
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pipeline.core.account import AccountLogic, Outputs
from pipeline.core.numbering import Counters, Verdict, check, origin
from pipeline.core.state import AccountState, held_key, journal_key, journal_keys
from schemas.events import LifecycleEvent
from schemas.accounts import AccountMessage


HELD_PER_SLOT = 200   # messages per held slot: a changelog value stays far below Kafka's 1 MB


@dataclass
class Progress:
    """Per-partition bookkeeping, stored with the partition's state."""

    watermark: float | None = None
    last_seq: dict[str, int] = field(default_factory=dict)
    forwarded: int = 0     # messages sent without a partition function (numbered per sender)
    sent: Counters = field(default_factory=Counters)   # per receiving partition
    blocked: list[str] = field(default_factory=list)   # accounts awaiting a merge's journal
    # While any account waits, every clock reading is logged (one key each, see reading_key)
    # so the waiting accounts can replay them in place once their journal is in.
    log_len: int = 0
    log_chunks: list[int] = field(default_factory=list)  # first index of each stored chunk

    def to_dict(self) -> dict:
        return {"watermark": self.watermark, "last_seq": self.last_seq, "forwarded": self.forwarded,
                "sent": self.sent.to_dict(), "blocked": self.blocked, "log_len": self.log_len,
                "log_chunks": self.log_chunks}

    @classmethod
    def from_dict(cls, value: Mapping | None) -> Progress:
        if not value:
            return cls()
        return cls(value.get("watermark"), dict(value.get("last_seq") or {}), int(value.get("forwarded") or 0),
                   Counters(value.get("sent")), list(value.get("blocked") or []), int(value.get("log_len") or 0),
                   list(value.get("log_chunks") or []))


def reading_key(partition: int, first: int) -> str:
    """One stored chunk of the clock log: the readings of one batch, from index ``first``."""
    return f"{partition}|clock|{first}"


@dataclass
class Emitted:
    account_id: str
    outputs: Outputs
    message: AccountMessage


@dataclass
class BatchResult:
    emitted: list[Emitted] = field(default_factory=list)
    forward: list[AccountMessage] = field(default_factory=list)
    states: dict[str, AccountState] = field(default_factory=dict)
    journals: dict[str, LifecycleEvent | None] = field(default_factory=dict)  # journal slots
    deadlines: dict[str, float | None] = field(default_factory=dict)
    logs: dict[str, Any] = field(default_factory=dict)  # progress-table writes: clock-log chunks, held messages
    skipped: int = 0
    gaps: list[AccountMessage] = field(default_factory=list)   # not applied: an earlier message is missing


def merge_key(message: AccountMessage) -> str:
    assert message.merge is not None
    return message.merge.merge_id or f"{message.merge.from_account}>{message.merge.into_account}"


class PartitionLogic:
    """The state machine of one partition; rebuild (``load``) after every assignment."""

    def __init__(self, logic: AccountLogic, partition: int,
                 partition_of: Callable[[str], int] | None = None) -> None:
        self.logic = logic
        self.partition = partition
        self.partition_of = partition_of   # None: every message for another account goes out
        # numbered per receiving partition when those are known (core.numbering)
        self.origin = f"accounts-{partition}" if partition_of is None else origin(f"accounts-{partition}")
        self.progress = Progress()
        self._heap: list[tuple[float, str]] = []
        self.caught_up = False  # the last message was the ingest step's "caught up" clock

    def load(self, progress: Mapping | None, deadlines: Iterable[tuple[str, float]]) -> None:
        """Restore from the partition's tables (after recovery: exactly the committed state)."""
        self.progress = Progress.from_dict(progress)
        self._heap = [(due, account) for account, due in deadlines if due is not None]
        heapq.heapify(self._heap)

    def process(self, messages: Iterable[AccountMessage], accounts: Mapping[str, AccountState | None],
                journals: Mapping[str, LifecycleEvent | None], deadlines: Mapping[str, float | None],
                readings: Mapping[str, list[float] | None] | None = None) -> BatchResult:
        run = _Batch(self, accounts, journals, deadlines, readings or {})
        last_seq = self.progress.last_seq
        for message in messages:
            verdict = check(last_seq, message.origin, message.seq)
            if verdict is not Verdict.APPLY:
                if verdict is Verdict.GAP:
                    run.result.gaps.append(message)
                else:
                    run.result.skipped += 1
                continue
            if message.type == "clock":
                self.caught_up = True
                if message.now is not None:
                    run.advance(message.now, fire_due=True)
                    run.deliver_local()
                continue
            self.caught_up = False
            if message.type == "event" and message.event is not None:
                run.advance(message.event.occurred_at)
            run.deliver(message.account_id, message)
            run.deliver_local()
        run.store_readings()
        return run.result

    def clock_due(self, now: datetime) -> bool:
        """Caught up, and the wall clock has passed the next deadline: time for a clock message."""
        return self.caught_up and bool(self._heap) and self._heap[0][0] <= now.timestamp()

    def next_seq(self) -> int:
        self.progress.forwarded += 1
        return self.progress.forwarded


class _Batch:
    """One batch's working set: each account loaded once, written back once."""

    def __init__(self, owner: PartitionLogic, accounts: Mapping, journals: Mapping, deadlines: Mapping,
                 readings: Mapping) -> None:
        self.owner = owner
        self._readings = readings
        self._new_readings: list[float] = []          # this batch's part of the clock log
        self._new_from = owner.progress.log_len
        self._log: tuple[int, list[float]] | None = None
        self._holding: dict[str, list[AccountMessage]] = {}   # this batch's held slot per account
        self._local: deque[AccountMessage] = deque()   # sent to accounts of this partition, not yet delivered
        self.logic = owner.logic
        self._accounts = accounts
        self._journals = journals
        self._deadlines = deadlines
        self.result = BatchResult()

    # ---- table access through the batch's working set --------------------------------
    def state(self, account_id: str) -> AccountState:
        states = self.result.states
        if account_id not in states:
            states[account_id] = self._accounts.get(account_id) or AccountState(account_id=account_id)
        return states[account_id]

    def journal(self, state: AccountState) -> list[LifecycleEvent]:
        written = self.result.journals
        events = [written[k] if k in written else self._journals.get(k) for k in journal_keys(state)]
        return [e for e in events if e is not None]

    def deadline(self, account_id: str) -> float | None:
        if account_id in self.result.deadlines:
            return self.result.deadlines[account_id]
        return self._deadlines.get(account_id)

    # ---- the clock ---------------------------------------------------------------------
    def advance(self, now: datetime, fire_due: bool = False) -> None:
        """The partition's clock reached ``now``: tick every account whose deadline passed.

        A clock that does not move (``fire_due``: a wall clock pinned, or the same instant
        again) still fires what came due meanwhile: deadlines registered after the clock
        reached them, by events older than it, would otherwise wait for a later reading."""
        progress = self.owner.progress
        # never ahead of the wall clock: an event dated within the accepted future skew
        # (``pipeline.ingest``) must not fire deadlines before they pass
        ts = min(now.timestamp(), self.logic.clock().timestamp())
        if progress.watermark is not None and ts <= progress.watermark:
            if not fire_due:
                return
            ts = progress.watermark
        else:
            progress.watermark = ts
            # An account awaiting a merge must see every clock reading, in place: once its journal
            # is in, each fires what the merged state has due by then, as an unblocked one would.
            if progress.blocked:
                self._new_readings.append(ts)
                progress.log_len += 1
                if self._log is not None:
                    self._log[1].append(ts)
        heap = self.owner._heap
        reading = datetime.fromtimestamp(ts, timezone.utc)
        while heap and heap[0][0] <= ts:
            due, account_id = heapq.heappop(heap)
            if self.deadline(account_id) != due:
                continue  # superseded by a later write
            self.deliver(account_id, AccountMessage(type="tick", account_id=account_id, now=reading))
            if self.deadline(account_id) == due:  # a tick that moves nothing must not loop
                self.result.deadlines[account_id] = None

    # ---- one message for one account -------------------------------------------------
    def deliver(self, account_id: str, message: AccountMessage) -> None:
        state = self.state(account_id)
        if state.awaiting_merge is not None and not (
                message.type == "merge_in" and merge_key(message) == state.awaiting_merge):
            if message.type == "merge_in":
                state.early_merges[merge_key(message)] = message.journal
            else:
                self.hold(state, message)
                state.held_at.append(self.owner.progress.log_len)
            return
        self.apply(state, message)
        self.reschedule(state)

    def apply(self, state: AccountState, message: AccountMessage) -> None:
        account_id = state.account_id
        kind = message.type
        if state.merged_into:
            if kind == "event" and message.event is not None:  # in flight when it merged
                self.send(AccountMessage(type="event", account_id=state.merged_into,
                                         event=message.event.model_copy(update={"account_id": state.merged_into})))
            return
        if kind == "event" and message.event is not None:
            self.emit(state, self.logic.on_event(state, message.event), message)
        elif kind == "tick" and message.now is not None:
            self.emit(state, self.logic.on_tick(state, message.now), message)
        elif kind == "merge_out" and message.merge is not None:
            self.send(AccountMessage(type="merge_in", account_id=message.merge.into_account, merge=message.merge,
                                     journal=self.journal(state)))
            for key in journal_keys(state):
                self.result.journals[key] = None
            self.result.states[account_id] = self.logic.on_merge_out(state, message.merge)
        elif kind == "merge_wait" and message.merge is not None:
            key = merge_key(message)
            if key in state.early_merges:
                self.merge_in(state, state.early_merges.pop(key), message)
            else:
                state.awaiting_merge = key
                state.blocked_at = self.owner.progress.log_len
                self.owner.progress.blocked.append(account_id)
        elif kind == "merge_in" and message.merge is not None:
            if state.awaiting_merge == merge_key(message):
                self.merge_in(state, message.journal, message)
            else:  # arrived before the survivor was told: keep until merge_wait
                state.early_merges[merge_key(message)] = message.journal

    def merge_in(self, state: AccountState, journal: list, message: AccountMessage) -> None:
        """Apply the absorbed account's journal, then what waited: each held message in
        order, and between them the clock readings that came meanwhile. A reading is
        delivered where it would have fired something had the account not waited: the
        first reading at or past the account's next deadline, as the heap does live."""
        account_id = state.account_id
        waited = state.awaiting_merge is not None
        held = list(zip(self.release_held(state), state.held_at))
        index = state.blocked_at
        if waited:
            state.awaiting_merge = None
            self.owner.progress.blocked.remove(account_id)
        state.held_at, state.blocked_at = [], 0  # log positions depend on other accounts
        # emitted with the journal it replayed, whichever message completed the merge (a journal
        # that came before its merge_wait is applied at the merge_wait), so what triggered each
        # output can be told the same way however the two arrived
        carrier = message if message.type == "merge_in" else AccountMessage(
            type="merge_in", account_id=account_id, merge=message.merge, journal=journal)
        self.emit(state, self.logic.on_merge_in(state, journal, merge=message.merge), carrier)
        end = self.owner.progress.log_len
        for i, (queued, held_at) in enumerate([*held, (None, end)]):
            current = self.state(account_id)  # a held merge_out replaces the state
            if waited:
                index = self.replay_readings(current, index, held_at)
            if current.awaiting_merge is not None:  # a further merge began: the rest waits again
                current.blocked_at = index
                for m, _ in held[i:]:
                    self.hold(current, m)
                current.held_at = [at for _, at in held[i:]]
                return
            if queued is not None:
                self.apply(current, queued)
        if waited:  # (a merge applied at once, inside another's replay, must leave the log alone)
            self.truncate_log()

    def hold(self, state: AccountState, message: AccountMessage) -> None:
        """Queue a message for an account awaiting a merge. The batch's messages for one account
        share one held slot: one changelog write per account and batch, however many wait (a
        survivor can wait through a whole backlog of the account topic for its journal)."""
        chunk = self._holding.get(state.account_id)
        if chunk is None or len(chunk) >= HELD_PER_SLOT:
            # the list itself: the progress table's codec writes its JSON form once the batch
            # ends, and a recovered slot comes back as that form (see release_held)
            chunk = self._holding[state.account_id] = []
            self.result.logs[held_key(state.account_id, state.held_len)] = chunk
            state.held_len += 1
        chunk.append(message)

    def release_held(self, state: AccountState) -> list[AccountMessage]:
        """The account's held messages, in order (the state's own list first, as written by
        earlier versions); their slots are freed. A slot holds a list (one batch's messages) or,
        as written by earlier versions, one message."""
        written, stored = self.result.logs, self._readings
        messages = list(state.held)
        for i in range(state.held_len):
            key = held_key(state.account_id, i)
            value = written[key] if key in written else stored.get(key)
            for held in value if isinstance(value, list) else () if value is None else (value,):
                messages.append(held if isinstance(held, AccountMessage) else AccountMessage.model_validate(held))
            written[key] = None
        self._holding.pop(state.account_id, None)
        state.held, state.held_len = [], 0
        return messages

    def replay_readings(self, state: AccountState, index: int, until: int) -> int:
        """Deliver the readings ``index .. until-1`` that fire something; returns ``until``."""
        base, readings = self.log()
        while index < until and not state.merged_into and state.awaiting_merge is None:
            due = self.logic.notify_at(state)
            if due is None:
                break
            index = base + bisect.bisect_left(readings, due.timestamp(), index - base, until - base)
            if index >= until:
                break
            self.apply(state, AccountMessage(type="tick", account_id=state.account_id,
                                             now=datetime.fromtimestamp(readings[index - base], timezone.utc)))
            index += 1
            if self.logic.notify_at(state) == due:  # as live: a tick that moves nothing is not repeated
                break
        return max(index, until)

    def log(self) -> tuple[int, list[float]]:
        """The kept clock log (stored chunks, then this batch's) and the index of its first
        reading; loaded once per batch."""
        if self._log is None:
            progress, partition = self.owner.progress, self.owner.partition
            log: list[float] = []
            for first in progress.log_chunks:
                log.extend(self._readings.get(reading_key(partition, first)) or ())
            base = progress.log_chunks[0] if progress.log_chunks else self._new_from
            self._log = (base, log + self._new_readings)
        return self._log

    def truncate_log(self) -> None:
        """No account waits any more: the logged readings are not needed."""
        progress = self.owner.progress
        if progress.blocked:
            return
        for first in progress.log_chunks:
            self.result.logs[reading_key(self.owner.partition, first)] = None
        progress.log_chunks = []
        self._new_readings, self._new_from, self._log = [], progress.log_len, None

    def store_readings(self) -> None:
        if self._new_readings:
            self.result.logs[reading_key(self.owner.partition, self._new_from)] = self._new_readings
            self.owner.progress.log_chunks.append(self._new_from)

    def emit(self, state: AccountState, out: Outputs, message: AccountMessage) -> None:
        for event in out.journal:
            self.result.journals[journal_key(state.account_id, state.journal_len)] = event
            state.journal_len += 1
        if out:
            self.result.emitted.append(Emitted(state.account_id, out, message))

    def send(self, message: AccountMessage) -> None:
        """To another account: delivered in place if it lives in this partition (see
        :meth:`deliver_local`), else numbered and forwarded through the account topic."""
        owner = self.owner
        if owner.partition_of is None:
            seq = owner.next_seq()
        else:
            target = owner.partition_of(message.account_id)
            if target == owner.partition:
                self._local.append(message)
                return
            seq = owner.progress.sent.next(target)
        message.origin, message.seq = owner.origin, seq
        self.result.forward.append(message)

    def deliver_local(self) -> None:
        """What the last message sent to accounts of this partition, in the order sent, right
        after it: a point of the partition's sequence that is the same in every run."""
        while self._local:
            message = self._local.popleft()
            self.deliver(message.account_id, message)

    def reschedule(self, state: AccountState) -> None:
        account_id = state.account_id
        current = self.result.states.get(account_id, state)
        due = None if current.merged_into or current.awaiting_merge else self.logic.notify_at(current)
        due_ts = due.timestamp() if due is not None else None
        if due_ts != self.deadline(account_id):
            self.result.deadlines[account_id] = due_ts
            if due_ts is not None:
                heapq.heappush(self.owner._heap, (due_ts, account_id))

