"""The ingest agent: parsed messages (``agents/parse.py``, one topic per raw partition) →
event-time merge → identity → numbered messages on the account topic. It runs on one worker:
all the parsed topics have one partition, so Faust assigns them together, with the identity
tables.

Output is a function of the input alone: records are released in a merged order decided by
the data (``core.merge``: offset-based idleness, no wall-clock quietness), identity is resolved
in that order, and every message sent is numbered per account partition (``core.numbering``),
so an account partition applies each once, in order. A parsed message (one raw message's
records) is the unit of the merge and of the commit: it is acknowledged only once all its
records caused has been sent; its table writes name it (``pipeline.tables.source_position``),
so recovery resumes exactly at the commit.

The parsers deliver at least once: a raw message parsed again after a parser's restart is
dropped here by its raw offset. How far each raw partition has been read (the parser's reports,
``schemas.parsed``) is kept in the ``ingest-progress`` table at the same cut as everything else,
because after a restart the merge reads only what follows its commit.
"""

from __future__ import annotations

import asyncio
import logging
import itertools
import time
from typing import TYPE_CHECKING, Any

import faust
from faust.types import TP

from pipeline import metrics
from pipeline.compat import acknowledge, stale
from pipeline.core.merge import Item, SourceMerge
from pipeline.core.numbering import Counters
from pipeline.ingest import INGEST_ORIGIN, Arrived, MergeEvent, Sourced, resolve_event, unresolvable_letter
from pipeline.tables import source_position
from schemas.base import Record, dumps
from schemas.cloudevents import ce_headers, source_for
from schemas.events import DeadLetter

if TYPE_CHECKING:
    from pipeline.app import LifecyclePipeline

log = logging.getLogger(__name__)
BATCH_MAX = 2000         # messages per account-topic batch
BATCH_WAIT_MAX = 1.0     # seconds: the most a released event waits for its batch while input flows
PACE_AHEAD = BATCH_MAX // 4   # sent messages an account partition of this worker may have not applied
PACE_WAIT_MAX = 2.0           # seconds the ingest waits for one at most (it may wait on a gap)
REMOTE_PACE_AHEAD = 8         # of the ingest's account batches, another worker's partition may have not committed
REMOTE_READ_EVERY = 0.1       # seconds between reads of the group's commits while pacing
REMOTE_READ_TIMEOUT = 1.0     # seconds a read of them may take before the ingest goes on without it
REMOTE_READ_BACKOFF = 5.0     # seconds without reading them after a read failed


class Ingest:
    """The merge and what it has released but not yet sent; one per worker."""

    def __init__(self, pipeline: LifecyclePipeline) -> None:
        self.pipeline = pipeline
        self.app = pipeline.app
        self.settings = pipeline.settings
        self.topics = pipeline.topics
        self.raw_of = pipeline.parsed_topics     # parsed topic → its raw (topic, partition)
        self.merge: SourceMerge[TP, tuple[list[Sourced], _Pending]] = SourceMerge(
            order=lambda tp: self.raw_of[tp.topic])  # the raw partitions' order, as pipeline.offline
        self.lock = asyncio.Lock()               # the merge, the outbox and the identity tables
        self.announced = False                   # "caught up" sent since the last new record
        self._next_offset: dict[TP, int] = {}     # next parsed offset the merge expects, per partition
        self._reports: dict[TP, list[int]] = {}   # per parsed topic: [next raw offset, raw high-water]
        self._assigned: set[TP] = set()           # parsed partitions this worker owns now
        self._start: dict[TP, int] = {}           # their committed offsets when assigned
        self._outbox: list[tuple[str, bytes]] = []   # (account id, AccountMessage JSON)
        self._finished: list[_Pending] = []       # messages wholly released, not yet acknowledged
        self._open = 0                            # messages partly released
        self._outbox_since = time.monotonic()     # when the oldest unsent released message was queued
        self._pushed_since_tick = False
        self._sends: list[tuple[str, str, Record]] = []  # identity facts and dead letters found while releasing
        self._released_at: tuple[str, int, int] | None = None  # the last released message's position
        self._last_record = time.monotonic()
        self._last_watch = time.monotonic()
        self._watch_from: float | None = None    # the first tick after an assignment's recovery
        self._halted = False                      # a flush did not finish: nothing more goes out
        self._sent_through: dict[str, int] = {}   # per account partition: the last number sent (see _pace)
        self._commits_read_at = 0.0               # when the group's commits were last read (see _pace)
        self._commits_unread = False              # the last read failed: not waited for until one succeeds
        self._cpu = metrics.StepCpu("merge")

    # ---- the agent ---------------------------------------------------------------------------
    async def run(self, stream: faust.StreamT) -> None:
        """Acks are manual: a raw record is acknowledged once all its events have been
        released and sent, which the merge does in offset order."""
        try:
            async for event in stream.noack().events():
                message = event.message
                tp = TP(message.topic, message.partition)
                await self._pace()
                async with self.lock:  # a rebalance callback may have run while this waited
                    if tp not in self._assigned or stale(self.app, event):
                        # buffered before a rebalance took it away (its new owner reads it), or in
                        # hand while the identity tables were recovered: read again from the commit
                        continue
                    expected = self._next_offset.get(tp)
                    if expected is None:
                        expected = self._committed(tp)
                    if message.offset < expected:
                        continue  # delivered twice (a fetch in flight when Faust seeked back)
                    if message.offset > expected:  # never seen; the merge would go on without them
                        log.error("ingest: %s records %d..%d skipped by the consumer", tp, expected,
                                  message.offset - 1)
                    records = self._take(tp, event)
                    # Taken out: what the merge needs. The message itself stays until it is
                    # acknowledged at a clean point, which in a backfill can be its end, so its
                    # bytes (up to megabytes) are let go now, not held for the whole backfill.
                    event.value = message.value = None
                    # Each record is one item of the merge, at its oldest event's time (records
                    # of four sources interleave in event time); the message is acknowledged
                    # once all its records are released and sent (see _flush_outbox).
                    pending = _Pending(event, max(1, len(records)))
                    for events in records:
                        self.merge.push(tp, Item(events[0].event.occurred_at, (events, pending)))
                    if not records:
                        # A marker or a repeat: a time-less item, so it is acknowledged in its
                        # partition's order, never ahead of a message still queued (Faust
                        # commits the first run of acknowledged offsets, holes or not, on a
                        # partition with no commit yet).
                        self.merge.push(tp, Item(None, ([], pending)))
                    self._next_offset[tp] = message.offset + 1
                    self._last_record = time.monotonic()
                    self.announced = False
                    self._pushed_since_tick = True
                    await self._release_all(flush_at=BATCH_MAX)
        except BaseException as exc:
            self.pipeline.note_failure(exc)
            raise

    async def tick(self) -> None:
        """The release timer: release what became decidable without a new record (a partition
        reached its end) and send a batch that has waited long enough."""
        await self._watch()
        async with self.lock:
            # While records keep coming, batches fill to BATCH_MAX (each account is then written
            # once per full batch); a part-filled one goes once input pauses or it grew old.
            flowing = self._pushed_since_tick and time.monotonic() - self._outbox_since < BATCH_WAIT_MAX
            self._pushed_since_tick = False
            await self._release_all(flush_at=BATCH_MAX if flowing else 0)

    async def _watch(self) -> None:
        """Input waiting on the broker, yet no record delivered for a while: say so, and read
        again where the silent partitions start (read at assignment, the broker can answer
        before the group has settled; a partition that is in fact read to its end would
        otherwise hold the merge back for good)."""
        now = time.monotonic()
        if self._watch_from is None:  # recovery just ended: silence so far was the recovery's
            self._watch_from = now
        quiet = now - max(self._last_record, self._watch_from)
        if now - self._last_watch < 10 or quiet < 10:
            return
        self._last_watch = now
        lagging = [tp for tp in self._assigned if not self._caught_up(tp)]
        if not lagging:
            return
        c = self.app.consumer
        detail = {f"{tp.topic}/{tp.partition}": dict(
            next=self._next_offset.get(tp), committed=self._committed(tp), highwater=c.highwater(tp),
            active=tp in (c._active_partitions or ()), paused=tp in c._paused_partitions,
            buffered=tp in c._buffered_partitions) for tp in lagging}
        log.warning("ingest stalled %.0fs: %s; flow active %s, queued %d, producer buffer %d, rebalancing %s",
                    quiet, detail, self.app.flow_control.is_active(), len(self.merge),
                    self.app.producer.buffer.size, self.app.rebalancing)
        silent = [tp for tp in lagging if tp not in self._next_offset]
        if silent and not self.app.rebalancing:
            self._start.update(await self.pipeline.committed.get(silent))

    async def flush(self) -> None:
        """Send what was released (call under ``lock``): a stop's last commit."""
        await self._flush_outbox()

    def idle(self) -> bool:
        """Every owned raw partition read to its end and everything released sent (call under ``lock``)."""
        return (bool(self.merge.partitions()) and not len(self.merge) and not self._outbox and not self._finished
                and all(self._caught_up(tp) for tp in self.merge.partitions()))

    # ---- rebalances --------------------------------------------------------------------------
    async def on_revoked(self, revoked: set[TP]) -> None:
        """Before partitions may move: send and commit everything released, so the committed
        offsets are exactly what the identity state has seen (the next owner recovers to them)."""
        if any(tp.topic in self.raw_of for tp in revoked):
            async with self.lock:
                await self._flush_outbox()
                await self.app.consumer.commit()
        self._assigned -= revoked

    async def on_assigned(self, assigned: set[TP]) -> None:
        """Start again from the commit: after a rebalance the tables are recovered to the
        committed input (``pipeline.tables``) and Faust seeks every partition back to its
        committed offset, so what was queued is dropped and read again. Where each partition
        starts is read from the broker here: Faust's own record of it can be missing (its seek
        after recovery has a timeout), and a partition with nothing left to read would then
        never count as caught up."""
        for tp in self.merge.partitions():
            self.merge.drop_partition(tp)
        for pending in self.pipeline.identity_writes:
            pending.discard()  # of released input that was not sent: it is read again
        self._released_at = None
        self._finished, self._open = [], 0  # not acknowledged: read again from the commit
        self._outbox, self._sends, self._halted = [], [], False
        self._sent_through = {}
        self._next_offset.clear()
        self._reports.clear()
        self._watch_from = None
        self._assigned = {tp for tp in assigned if tp.topic in self.raw_of}
        self._start = await self.pipeline.committed.get(self._assigned) if self._assigned else {}
        for tp in self._assigned:
            self.merge.add_partition(tp)

    # ---- the merge ---------------------------------------------------------------------------
    def _take(self, tp: TP, event: Any) -> list[list[Sourced]]:
        """A parsed message's records to merge: none for a marker or for a raw message already
        taken (a parser's repeat). Either way the parser's report moves on, in ``ingest-progress``,
        named by this message like every write it causes. A value that is not a parsed message
        is dead-lettered (this worker's own topic: a bug or a stray producer, never a crash)."""
        message = event.message
        try:
            batch = Arrived.of(event.value)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("ingest: %s/%d/%d is not a parsed message: %s", message.topic, message.partition,
                      message.offset, exc)
            self._queue_dead_letter(DeadLetter.build(
                stage="merge", reason="invalid_parsed_message", detail=f"{type(exc).__name__}: {exc}",
                original=event.value or b"", failed_at=self.pipeline.wall(), source_topic=message.topic,
                origin_ref=f"{message.topic}/{message.partition}/{message.offset}"))
            return []
        known = self._report(tp)
        report = known or [0, 0]
        if known is not None and batch.after is not None and batch.after > report[0]:
            # a parsed message before this one never arrived: taking this one would make the
            # missing one a repeat when the parser sends both again from its commit
            metrics.child(metrics.MESSAGE_GAPS, "parsed", tp.topic).inc()
            log.warning("ingest: %s/%d/%d follows raw offset %d, but raw offsets from %d are missing: "
                        "not taken (the parser sends them again from its commit)", message.topic,
                        message.partition, message.offset, batch.after, report[0])
            return []
        first = batch.position if batch.offset is None else batch.offset
        if batch.after is None and first > report[0]:   # a parser of an earlier version
            log.error("ingest: raw %s/%d records %d..%d never parsed", *self.raw_of[tp.topic], report[0], first - 1)
        fresh = batch.offset is not None and batch.offset >= report[0]
        moved = [max(report[0], batch.position), max(report[1], batch.highwater)]
        if moved != known:  # the first report is kept even if it is [0, 0]: an empty partition
            self._reports[tp] = moved
            self.pipeline.ingest_state[f"raw:{tp.topic}"] = moved
        if not fresh:
            return []
        raw_topic, raw_partition = self.raw_of[tp.topic]
        return batch.sourced(f"{raw_topic}/{raw_partition}/{batch.offset}")

    def _report(self, tp: TP) -> list[int] | None:
        """The parser's last report of ``tp``'s raw partition that this merge has taken:
        [next raw offset, raw high-water mark]; None before any (or while tables recover)."""
        report = self._reports.get(tp)
        if report is None and self.app.flow_control.is_active():
            stored = self.pipeline.ingest_state.get(f"raw:{tp.topic}")
            if stored is not None:
                report = self._reports[tp] = list(stored)
        return report

    def _caught_up(self, tp: TP) -> bool:
        """Its raw partition read to its end by the parser, and every parsed message of it read
        here: an empty queue holds nothing back (offset-based idleness)."""
        report = self._report(tp)
        if report is None or report[0] < report[1]:
            return False
        highwater = self.app.consumer.highwater(tp)
        if highwater is None:
            return False
        position = self._next_offset.get(tp)
        if position is None:
            position = self._committed(tp)
        return position >= highwater

    def _committed(self, tp: TP) -> int:
        """Where consumption of ``tp`` resumed: the committed offset read at assignment."""
        return self._start.get(tp, 0)

    async def _release_all(self, flush_at: int) -> None:
        """Release in slices of a batch, sending each full one, so a partition that becomes
        caught up with thousands queued never blocks the event loop for long."""
        while not self._halted:
            with self._cpu:
                released = self._release(BATCH_MAX)
            if (self._outbox or self._finished) and len(self._outbox) >= flush_at:
                await self._flush_outbox()
            if released < BATCH_MAX:
                return

    def _release(self, limit: int) -> int:
        """Take up to ``limit`` items the merge lets go, resolve identity in that order, queue
        them to send; returns how many were taken."""
        state = self.pipeline.ingest_state
        sent = Counters(state.get("sent"))   # the last number sent to each account partition
        last: tuple[str, int, int] | None = None
        taken = 0
        for _tp, (events, pending) in itertools.islice(self.merge.pop_ready(self._caught_up), limit):
            taken += 1
            if events:
                message = pending.event.message
                last = (message.topic, message.partition, message.offset)
                with source_position(*last):
                    for sourced in events:  # in event time
                        self._resolve(sourced, self.raw_of[message.topic][0], sent)
            if pending.left == pending.records:
                self._open += 1
            pending.left -= 1
            if not pending.left:
                self._open -= 1
                self._finished.append(pending)
        if last is not None:
            self._released_at = last
            with source_position(*last):
                state["sent"] = sent.to_dict()
        return taken

    async def _flush_outbox(self) -> None:
        """Send what was released, then acknowledge it at a clean point. A flush that does not
        finish (cancelled by a shutdown, or a send refused) halts the ingest until the next
        assignment: its messages are numbered, and an account partition that received a later
        number would skip these as repeats when they are sent again (seen: a SIGTERM cancelled
        the first flush, the release timer then sent the second, and the accounts lost their
        earliest events). What was released is read again from the commit."""
        if self._halted:
            return
        try:
            await self._send_released()
        except BaseException as exc:
            self._halted = True
            log.warning("ingest halted until the next assignment: a flush did not finish (%r)", exc)
            raise

    async def _send_released(self) -> None:
        numbered = self.pipeline.ingest_state.get("sent") or {}   # the outbox's last numbers
        outbox, sends = self._outbox, self._sends
        self._outbox, self._sends = [], []
        self._outbox_since = time.monotonic()
        if self._released_at is not None:
            # the identity writes of everything released since the last flush, each key once,
            # named by the last message: all of them are acknowledged together, below
            with source_position(*self._released_at):
                for pending in self.pipeline.identity_writes:
                    pending.flush()
        source = source_for(self.settings.app_id)
        for topic, key, record in sends:  # identity facts (with CloudEvents headers) and dead letters
            if isinstance(record, DeadLetter):
                await self.pipeline.send_dead_letter(record)
            else:
                await self.pipeline.sends.send(topic, key, record.to_json(), headers=ce_headers(record, source))
        if outbox:
            await self.pipeline.route(outbox, from_ingest=True)
            self._sent_through = dict(numbered)
        await self.pipeline.sends.flush()  # the changelog writes, before the acks
        if self._open:
            # A message is partly released: acknowledging the finished ones now could commit
            # records released after some of its records, without those (a restart from that
            # commit would resolve the rest in another order). Acks wait for a clean point: every
            # released message finished, so what is committed is exactly a prefix of the merge.
            return
        done, self._finished = self._finished, []
        for pending in done:
            pending.done()

    async def _pace(self) -> None:
        """Wait (outside the lock, at most ``PACE_WAIT_MAX``) while an account partition of this
        worker has more than ``PACE_AHEAD`` of the sent messages not yet applied.

        Why: a merge's journal reaches the survivor's partition behind everything already sent
        there, and the survivor holds each of its messages until it arrives (``core.partition``).
        In a backfill the ingest ran far ahead of the accounts, and most messages waited in held
        slots, written to the changelog: in ``lifecycle bench``, 29,861 of 35,690 (22.8 MB of
        changelog); paced, 6,799, and the stream worker's peak RSS went from 340 to 274 MiB.
        The output does not depend on it, only how much waits.

        An account partition of another worker is watched through the group's commit there: at
        most ``REMOTE_PACE_AHEAD`` of the ingest's batches written to it (``ingest_batches``) may
        be past that commit (the accounts' forwards there are not counted: many and small, they
        would make the bound far tighter than the local one). Without it, with two workers the
        merge worker paced only against its own partition while the other's fell behind, and the
        survivors held about twice the messages of one worker (29,815 against 15,010)."""
        started = time.monotonic()
        until = started + PACE_WAIT_MAX
        waited_for = None
        while not self.app.should_stop and time.monotonic() < until:
            behind = "local" if self._local_behind() else "remote" if await self._remote_behind() else None
            if behind is None:
                break
            waited_for = behind
            await asyncio.sleep(0.01)
        if waited_for is not None:
            metrics.child(metrics.PACE_WAIT, waited_for).inc(time.monotonic() - started)

    def _local_behind(self) -> bool:
        """An account partition of this worker has not applied more than ``PACE_AHEAD`` sent messages."""
        return any(self._sent_through.get(str(p), 0) - logic.progress.last_seq.get(INGEST_ORIGIN, 0) > PACE_AHEAD
                   for p, logic in list(self.pipeline.accounts_agent.partitions.items()))

    async def _remote_behind(self) -> bool:
        """An account partition of another worker has not committed more than ``REMOTE_PACE_AHEAD``
        of the batches this worker wrote to it (its commit read at most every ``REMOTE_READ_EVERY``)."""
        sent = self.pipeline.ingest_batches
        remote = [p for p, offsets in sent.items() if len(offsets) > REMOTE_PACE_AHEAD
                  and not self.pipeline.accounts_agent.owns(p)]
        if not remote:
            return False
        if time.monotonic() - self._commits_read_at >= REMOTE_READ_EVERY:
            self._commits_read_at = time.monotonic()
            try:
                read = await asyncio.wait_for(
                    self.pipeline.committed.of_group(TP(self.topics.account_events, p) for p in remote),
                    REMOTE_READ_TIMEOUT)
            except Exception as exc:  # a group between generations, a slow broker: do not hold the ingest
                log.debug("ingest pace: the group's commits are not readable now: %r", exc)
                self._commits_read_at = time.monotonic() + REMOTE_READ_BACKOFF
                self._commits_unread = True
                return False
            self._commits_unread = False
            for tp, committed in read.items():
                offsets = sent[tp.partition]
                while offsets and offsets[0] < committed:
                    offsets.popleft()
        return not self._commits_unread and any(len(sent[p]) > REMOTE_PACE_AHEAD for p in remote)

    # ---- the pure step (``pipeline.ingest``), with its metrics and dead letters -------------
    def _resolve(self, sourced: Sourced, topic: str, sent: Counters) -> None:
        """Resolve an event in merged order; queue what it causes on the account topic, each
        message numbered for its account's partition (``sent``), and its identity facts."""
        ev = sourced.event
        assert isinstance(ev, MergeEvent)
        resolved = resolve_event(self.pipeline.resolver, ev)
        for key, fact in resolved.facts:
            self._sends.append((self.topics.identity, key, fact))
        for rule in resolved.rules:
            metrics.child(metrics.IDENTITY_DECISIONS, rule).inc()
        if resolved.account_id is None:
            assert resolved.unresolvable is not None
            self._queue_dead_letter(unresolvable_letter(sourced, resolved.unresolvable, topic=topic,
                                                        now=self.pipeline.wall()))
            return
        partition_of = self.pipeline.partition_of
        for merge in resolved.merges:
            merge.origin, merge.seq = INGEST_ORIGIN, sent.next(partition_of(merge.account_id))
            self._outbox.append((merge.account_id, dumps(merge)))
        account = resolved.account_id
        self._outbox.append((account, ev.message(account, INGEST_ORIGIN, sent.next(partition_of(account)))))

    def _queue_dead_letter(self, record: DeadLetter) -> None:
        """Sent with the next batch, before the record is acknowledged."""
        self._sends.append((self.topics.dead_letter, record.dead_letter_id, record))


class _Pending:
    """A raw message in the merge: its records still to be released; acknowledged once all
    are released and sent, at a clean point (``Ingest._flush_outbox``)."""

    __slots__ = ("event", "records", "left")

    def __init__(self, event: Any, records: int) -> None:
        self.event = event
        self.records = records
        self.left = records

    def done(self) -> None:
        acknowledge(self.event)
