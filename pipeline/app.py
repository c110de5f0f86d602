"""The Faust application: thin wiring around the pure core.

Topology (every arrow a Kafka topic)::

    lifecycle.raw.{crm,billing,product,support}   RawRecord (native payloads), 1 partition each
        └─ ingest: parse → event-time merge (core.merge) → identity → seq number
             │      ─→ lifecycle.account-events   AccountBatch per partition, keyed by account
             │      (bad input → lifecycle.dead-letter; identity facts → lifecycle.identity)
             └─ accounts (core.partition: engine, SLA, handoffs, merges, the clock)
                  ─→ lifecycle.stage-transitions / .handoffs / .sla-breaches
                  └─ readmodel (batched SQL sink)

Output is a function of the input alone (README, Delivery guarantees):

* the ingest step releases events in a merged order decided by the data
  (offset-based idleness, no wall-clock quietness) and resolves identity in that
  order; it numbers what it sends, so a partition applies each message once;
* SLA deadlines fire inside the accounts agent when the partition's event-time
  watermark passes them; the wall clock enters only as ``clock`` messages sent
  once every input is caught up;
* every table write names the input offset that caused it, and recovery drops
  writes of uncommitted input (``pipeline.tables``), so a restarted worker
  resumes from exactly the committed state.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import faust
from faust.types import TP
from kafka.partitioner.default import murmur2

from pipeline import metrics
from pipeline.codecs import ORJSON, STR, codec_for
from pipeline.compat import patch_faust_durable_commit, patch_faust_end_offsets
from pipeline.core.account import AccountLogic
from pipeline.core.identity import IdentityResolver
from pipeline.ingest import parse_record, resolve_event
from pipeline.core.merge import Item, SourceMerge
from pipeline.core.partition import Emitted, PartitionLogic
from pipeline.core.state import AccountState
from pipeline.journey import JourneyDefinition, load_journey
from pipeline.kafka_clients import faust_credentials
from pipeline.settings import Settings
from schemas.accounts import AccountBatch, AccountMessage
from pipeline.tables import CommittedOffsets, checkpointed_table, source_position
from schemas.base import utcnow
from schemas.cloudevents import ce_headers, source_for
from schemas.events import DeadLetter, LifecycleEvent
from schemas.handoffs import Handoff
from schemas.identity import parse_identity_record
from schemas.sla import SlaBreach, SlaBreachStatus
from schemas.transitions import StageTransition

log = logging.getLogger(__name__)
BATCH_MAX = 500  # messages per account-topic batch
RELEASE_INTERVAL = 0.1  # seconds: how often a part-filled batch is sent once input pauses
BATCH_WAIT_MAX = 1.0  # seconds: the most a released event waits for its batch while input flows


def faust_config(settings: Settings) -> dict[str, Any]:
    """Faust settings tuned for fast start (seconds, not ~30 s) and at-least-once delivery."""
    return dict(
        broker=f"kafka://{settings.bootstrap_servers}",
        broker_credentials=faust_credentials(settings),
        store="memory://",
        datadir=str(settings.data_dir / "faust"),
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=settings.commit_interval,
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=10.0,
        stream_recovery_delay=0.0,
        stream_wait_empty=False,
        producer_linger=0.02,
        web_enabled=settings.web_enabled,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        processing_guarantee="at_least_once",
    )


class LifecyclePipeline:
    """Builds the Faust app, its topics, tables, agents and timer from settings."""

    def __init__(self, settings: Settings, journey: JourneyDefinition | None = None) -> None:
        if not settings.bootstrap_servers:
            raise ValueError("settings.bootstrap_servers must be set (start the embedded broker first)")
        self.settings = settings
        self.topics = settings.topics  # names in this deployment's namespace
        self.journey = journey or load_journey(settings.journey_path)
        self.wall = _wall_clock(settings.frozen_now)
        self.logic = AccountLogic(self.journey, clock=self.wall)
        (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
        patch_faust_end_offsets()
        patch_faust_durable_commit()
        self.app = _App(settings.app_id, **faust_config(settings))
        self.app.webserver_hooks.append(self._mount_read_model)
        app = self.app

        # ---- topics -----------------------------------------------------------------
        self.raw_topic = app.topic(*self.topics.raw.values(), value_serializer="raw", key_serializer="raw", partitions=1)
        self.account_topic = app.topic(self.topics.account_events, key_serializer=STR,
                                       value_serializer=codec_for(AccountBatch), partitions=settings.partitions)
        self.transitions_topic = app.topic(self.topics.stage_transitions, key_serializer=STR,
                                           value_serializer=codec_for(StageTransition), partitions=settings.partitions)
        self.handoffs_topic = app.topic(self.topics.handoffs, key_serializer=STR, value_serializer=codec_for(Handoff),
                                        partitions=settings.partitions)
        self.breaches_topic = app.topic(self.topics.sla_breaches, key_serializer=STR, value_serializer=codec_for(SlaBreach),
                                        partitions=settings.partitions)
        self.identity_topic = app.topic(self.topics.identity, key_serializer=STR, value_serializer="raw", partitions=1)
        self.dead_letter_topic = app.topic(self.topics.dead_letter, key_serializer=STR, value_serializer=codec_for(DeadLetter),
                                           partitions=1)

        # ---- tables: changelogged, recovered to exactly the committed input -----------------
        committed = self.committed = CommittedOffsets(app)
        self.accounts = checkpointed_table(app, "accounts", settings.partitions, codec_for(AccountState), committed)
        self.journals = checkpointed_table(app, "journal", settings.partitions, codec_for(LifecycleEvent),
                                           committed)
        self.deadlines = checkpointed_table(app, "deadlines", settings.partitions, ORJSON, committed)
        self.progress = checkpointed_table(app, "progress", settings.partitions, ORJSON, committed)
        self.identity_links = checkpointed_table(app, "identity-links", 1, ORJSON, committed)
        self.identity_accounts = checkpointed_table(app, "identity-accounts", 1, ORJSON, committed)
        self.ingest_state = checkpointed_table(app, "ingest-progress", 1, ORJSON, committed)
        self.resolver = IdentityResolver(self.journey.identity, self.identity_links, self.identity_accounts)

        # ---- ingest: the event-time merge and what it has released but not yet sent ----------
        self.merge: SourceMerge[TP, tuple[list[LifecycleEvent], _Pending]] = SourceMerge(
            order=lambda tp: (tp.topic, tp.partition))
        self._next_offset: dict[TP, int] = {}     # next raw offset the merge expects, per partition
        self._outbox: list[AccountMessage] = []
        self._outbox_done: list[_Pending] = []
        self._announced = False                  # "caught up" sent since the last new record
        self._pushed_since_tick = False
        self._outbox_since = time.monotonic()     # when the oldest unsent released message was queued
        self._sends: list[tuple[Any, str, Any]] = []  # identity facts and dead letters found while releasing
        self._clock_sent: set[int] = set()        # partitions with a self-clock in flight
        self._release_lock = asyncio.Lock()
        self._raw_assigned: set[TP] = set()       # raw partitions this worker owns now
        # ---- accounts: one state machine per owned partition --------------------------------
        self.partitions: dict[int, PartitionLogic] = {}
        self._account_assigned: set[int] = set()
        self._accounts_lock = asyncio.Lock()     # held for each batch, so a revoke waits for it
        self.started = False
        self.failed: BaseException | None = None

        app.agent(self.raw_topic, name="ingest")(self._ingest)
        app.agent(self.account_topic, name="accounts")(self._accounts)
        app.timer(RELEASE_INTERVAL)(self._ingest_timer)
        app.timer(settings.timer_interval)(self._clock_timer)
        if settings.sink_enabled:
            from pipeline.sink import ReadModelSink, sink_topics

            self.sink = ReadModelSink(settings.resolved_database_url, self.topics)
            sink_topic = app.topic(*sink_topics(self.topics), value_serializer="raw", key_serializer="raw")
            app.agent(sink_topic, name="readmodel")(self.sink.run)
            app.timer(0.1)(self.sink.flush_due)
        app.on_partitions_revoked.connect(self._on_revoked)
        app.on_partitions_assigned.connect(self._on_assigned)
        app.task(self._mark_started)
        if settings.web_enabled:
            from pipeline import web

            web.install(self)

    def _mount_read_model(self, web_app: Any) -> None:
        """The RevOps report API on the worker's own web server (read-only, off the event loop)."""
        if self.settings.sink_enabled:
            from pipeline.readmodel.http import add_routes

            add_routes(web_app, lambda: self.sink.engine, journey=self.journey)

    async def _mark_started(self) -> None:
        # Table writes queue changelog messages in Faust's producer buffer; at its default
        # of 100 the stream stalls in 0.1 s waits whenever a burst exceeds it.
        self.app.producer.buffer.max_messages = 20_000
        self.started = True

    # ---- helpers ------------------------------------------------------------------------
    def dead_letter(self, *, stage: str, reason: str, detail: str, original: bytes | str,
                    source_topic: str | None = None, source: str | None = None,
                    vendor: str | None = None, origin_ref: str = "") -> None:
        """Queue a dead letter; it is sent with the next batch, before the record is acknowledged."""
        record = DeadLetter.build(stage=stage, reason=reason, detail=detail, original=original,
                                  failed_at=self.wall(), source_topic=source_topic, source=source,
                                  vendor=vendor, origin_ref=origin_ref)
        self._queue_dead_letter(record)

    def _queue_dead_letter(self, record: DeadLetter) -> None:
        metrics.child(metrics.DEAD_LETTERS, record.stage, record.reason).inc()
        self._sends.append((self.dead_letter_topic, record.dead_letter_id, record))

    async def _on_revoked(self, sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        """Before partitions may move: send and commit everything released, so the committed
        offsets are exactly what the identity state has seen (the next owner recovers to them)."""
        raw = {tp for tp in revoked if tp.topic in self.topics.raw.values()}
        if raw:
            async with self._release_lock:
                await self._flush_outbox()
                await self.app.consumer.commit()
        self._raw_assigned -= revoked
        # A batch in hand finishes (writes and ack) before its partition may move.
        async with self._accounts_lock:
            for tp in revoked:
                if tp.topic == self.topics.account_events:
                    self._account_assigned.discard(tp.partition)
                    self.partitions.pop(tp.partition, None)

    async def _on_assigned(self, sender: Any, assigned: set[TP], **kwargs: Any) -> None:
        """Raw partitions that moved away: forget what was queued (the new owner re-reads it from
        the committed offset). Kept ones keep their queue; records Faust delivers again after
        seeking back to the commit are skipped as already queued."""
        for tp in self.merge.partitions():
            if tp not in assigned:
                self.merge.drop_partition(tp)
                self._next_offset.pop(tp, None)
        self._raw_assigned = {tp for tp in assigned if tp.topic in self.topics.raw.values()}
        self._account_assigned = {tp.partition for tp in assigned if tp.topic == self.topics.account_events}
        for tp in self._raw_assigned:
            self.merge.add_partition(tp)
        for partition in self._account_assigned:
            self.partitions.pop(partition, None)  # rebuilt from the recovered tables

    # ---- ingest: raw → merge → identity → account topic --------------------------------
    async def _ingest(self, stream: faust.StreamT) -> None:
        """Raw vendor payload → canonical events → the event-time merge.

        The stream does not auto-ack: a raw record is acknowledged once all its events
        have been released and sent, which the merge does in offset order."""
        try:
            async for event in stream.noack().events():
                message = event.message
                tp = TP(message.topic, message.partition)
                if tp not in self._raw_assigned:
                    continue  # buffered before a rebalance took it away: its new owner reads it
                if message.offset < self._next_offset.get(tp, 0):
                    continue  # delivered again after a rebalance: already in the merge
                parsed = await self._parse(event)
                async with self._release_lock:
                    # A record is one unit of the merge (at its oldest event's time): its events
                    # are released, resolved and acknowledged together, so a committed offset
                    # never splits a record's identity writes from the ones that follow it.
                    first = min((ev.occurred_at for ev in parsed), default=None)
                    self.merge.push(tp, Item(first, (parsed, _Pending(event))))
                    self._next_offset[tp] = message.offset + 1
                    self._announced = False
                    self._pushed_since_tick = True
                    await self._release_all(flush_at=BATCH_MAX)
        except BaseException as exc:
            self._note_failure(exc)
            raise

    def _caught_up(self, tp: TP) -> bool:
        """Read to its end offset: an empty queue here holds nothing back (offset-based idleness)."""
        highwater = self.app.consumer.highwater(tp)
        if highwater is None:
            return False
        position = self._next_offset.get(tp)
        if position is None:
            position = self._committed(tp)
        return position >= highwater

    def _committed(self, tp: TP) -> int:
        """Where consumption of ``tp`` resumes: the committed offset (Kafka says -1 for none)."""
        committed = self.app.consumer._committed_offset.get(tp)
        return committed if committed is not None and committed > 0 else 0

    async def _release_all(self, flush_at: int) -> None:
        """Release in slices of a batch, sending each full one, so a partition that becomes
        caught up with thousands queued never blocks the event loop for long."""
        while True:
            released = self._release(BATCH_MAX)
            if (self._outbox or self._outbox_done) and len(self._outbox) >= flush_at:
                await self._flush_outbox()
            if released < BATCH_MAX:
                return

    def _release(self, limit: int) -> int:
        """Take up to ``limit`` items the merge lets go, resolve identity in that order, queue
        them to send; returns how many were taken."""
        seq = (self.ingest_state.get("seq") or 0)
        last: tuple[str, int, int] | None = None
        taken = 0
        for tp, (events, pending) in itertools.islice(self.merge.pop_ready(self._caught_up), limit):
            taken += 1
            if events:
                message = pending.event.message
                last = (message.topic, message.partition, message.offset)
                with source_position(*last):
                    for event in sorted(events, key=lambda e: e.occurred_at):
                        for out in self._resolve(event, pending):
                            seq += 1
                            out.origin, out.seq = "ingest", seq
                            self._outbox.append(out)
            self._outbox_done.append(pending)
        if last is not None:
            with source_position(*last):
                self.ingest_state["seq"] = seq
        return taken

    async def _flush_outbox(self) -> None:
        outbox, done, sends = self._outbox, self._outbox_done, self._sends
        self._outbox, self._outbox_done, self._sends = [], [], []
        self._outbox_since = time.monotonic()
        for topic, key, value in sends:
            headers = (ce_headers(parse_identity_record(value), source_for(self.settings.app_id))
                       if topic is self.identity_topic else None)
            await topic.send(key=key, value=value, headers=headers, force=True)
        if outbox:
            await self.route(outbox)
        for pending in done:
            pending.done()

    async def _ingest_timer(self) -> None:
        """Release what became decidable without a new record (a partition reached its end)
        and send a batch that has waited long enough."""
        if not self.started:
            return
        async with self._release_lock:
            # While records keep coming, batches fill to BATCH_MAX (each account is then written
            # once per full batch); a part-filled one goes once input pauses or it grew old.
            flowing = self._pushed_since_tick and time.monotonic() - self._outbox_since < BATCH_WAIT_MAX
            self._pushed_since_tick = False
            await self._release_all(flush_at=BATCH_MAX if flowing else 0)

    async def _clock_timer(self) -> None:
        """The wall clock moves the SLA clock only once every input is caught up, never during
        a backfill. The ingest step announces "caught up" to every account partition once
        (a ``clock`` message after everything it released); from then on, until other input
        arrives, a partition whose next deadline is due clocks itself."""
        if not self.started:
            return
        now = self.wall() - timedelta(seconds=self.settings.allowed_lateness_seconds)
        if self.merge.partitions() and not self._announced:
            async with self._release_lock:
                if (not len(self.merge) and not self._outbox
                        and all(self._caught_up(tp) for tp in self.merge.partitions())):
                    self._announced = True
                    for partition in range(self.settings.partitions):
                        await self._send_clock(partition, now)
        for partition, logic in list(self.partitions.items()):
            if logic.clock_due(now) and partition not in self._clock_sent:
                self._clock_sent.add(partition)
                await self._send_clock(partition, now)

    async def _send_clock(self, partition: int, now: datetime) -> None:
        await self.account_topic.send(key=f"clock-{partition}", partition=partition, force=True,
                                      value=AccountBatch(messages=[AccountMessage(type="clock", account_id="", now=now)]))

    def partition_of(self, account_id: str) -> int:
        """Kafka's default (murmur2) partitioner, so keyed and batched sends agree."""
        return (murmur2(account_id.encode()) & 0x7FFFFFFF) % self.settings.partitions

    async def route(self, messages: list[AccountMessage]) -> None:
        """Send messages to their accounts' partitions, one batch per partition, order kept."""
        by_partition: dict[int, list[AccountMessage]] = {}
        for message in messages:
            by_partition.setdefault(self.partition_of(message.account_id), []).append(message)
        for partition, batch in by_partition.items():
            for start in range(0, len(batch), BATCH_MAX):
                await self.account_topic.send(key=batch[start].account_id, partition=partition, force=True,
                                              value=AccountBatch(messages=batch[start:start + BATCH_MAX]))

    async def _parse(self, event: Any) -> list[LifecycleEvent]:
        """One raw record → its canonical events (stateless, ``pipeline.ingest``). Anything
        unusable is queued as a dead letter and yields nothing."""
        message = event.message
        parsed = parse_record(event.value, message.topic, f"{message.topic}/{message.partition}/{message.offset}",
                              now=self.wall(), accept_test_mode=self.settings.accept_test_mode)
        metrics.child(metrics.EVENTS_INGESTED, parsed.source, parsed.outcome).inc()
        if parsed.dead_letter is not None:
            self._queue_dead_letter(parsed.dead_letter)
        elif parsed.ignored is not None:
            metrics.child(metrics.IGNORED, *parsed.ignored).inc()
        for ev in parsed.events:
            metrics.child(metrics.CANONICAL_EVENTS, ev.kind).inc()
        return parsed.events

    def _resolve(self, ev: LifecycleEvent, pending: _Pending) -> list[AccountMessage]:
        """Resolve an event in merged order (``pipeline.ingest``); queue its identity facts."""
        resolved = resolve_event(self.resolver, ev)
        if resolved.unresolvable is not None:
            message = pending.event.message
            self.dead_letter(stage="resolve", reason="no_usable_identifier", detail=resolved.unresolvable,
                             original=pending.event.value, source_topic=message.topic, source=ev.source.value,
                             origin_ref=f"{message.topic}/{message.partition}/{message.offset}#{ev.event_id}")
        for key, fact in resolved.facts:
            self._sends.append((self.identity_topic, key, fact))
        return resolved.messages

    # ---- accounts ----------------------------------------------------------------------
    async def _accounts(self, stream: faust.StreamT) -> None:
        """Each batch through its partition's state machine; state written once per batch.

        Acks are manual: Faust's auto-ack acknowledges the message in hand when the agent is
        cancelled (SIGTERM), so a batch cut off before its table writes was committed as done."""
        try:
            async for event in stream.noack().events():
                async with self._accounts_lock:
                    await self._account_batch(event)
        except BaseException as exc:
            self._note_failure(exc)
            raise

    async def _account_batch(self, event: Any) -> None:
        partition = event.message.partition
        if partition not in self._account_assigned:
            return  # buffered before a rebalance took the partition away: its new owner reads it
        logic = self.partitions.get(partition)
        if logic is None:
            logic = self.partitions[partition] = self._load_partition(partition)
        batch: AccountBatch = event.value
        self._clock_sent.discard(partition)
        result = logic.process(batch.messages, self.accounts, self.journals, self.deadlines, self.progress)
        for emitted in result.emitted:
            await self._publish(emitted)
        if result.forward:
            await self.route(result.forward)
        _write(self.accounts, result.states)
        _write(self.journals, result.journals)
        _write(self.deadlines, result.deadlines)
        _write(self.progress, result.readings)
        self.progress[str(partition)] = logic.progress.to_dict()
        event.ack()

    def _load_partition(self, partition: int) -> PartitionLogic:
        logic = PartitionLogic(self.logic, partition)
        logic.load(self.progress.get(str(partition)),
                   ((account, due) for account, due in self.deadlines.items()
                    if self.partition_of(account) == partition))
        metrics.child(metrics.TABLE_KEYS, "accounts").set(len(self.accounts))
        metrics.child(metrics.TABLE_KEYS, "deadlines").set(len(self.deadlines))
        return logic

    async def _publish(self, emitted: Emitted) -> None:
        key, out, msg = emitted.account_id, emitted.outputs, emitted.message
        source = source_for(self.settings.app_id)  # CloudEvents headers (schemas.cloudevents)
        if out.outcome is not None:
            metrics.child(metrics.ENGINE_OUTCOMES, out.outcome.value).inc()
        for tr in out.transitions:
            metrics.child(metrics.TRANSITIONS, tr.from_stage or "none", tr.to_stage).inc()
            if tr.from_stage and tr.time_in_previous_stage_seconds is not None and not tr.inferred:
                metrics.child(metrics.TIME_IN_STAGE, tr.from_stage).observe(tr.time_in_previous_stage_seconds)
            if msg.event is not None:
                metrics.PROCESSING_LATENCY.observe(max(0.0, (tr.emitted_at - msg.event.ingested_at).total_seconds()))
            await self.transitions_topic.send(key=key, value=tr, headers=ce_headers(tr, source), force=True)
        for ho in out.handoffs:
            metrics.child(metrics.HANDOFFS, ho.from_team or "none", ho.to_team, ho.status.value).inc()
            await self.handoffs_topic.send(key=key, value=ho, headers=ce_headers(ho, source), force=True)
        for br in out.breaches:
            metrics.child(metrics.SLA_BREACHES, br.sla_id, br.severity, br.status.value).inc()
            if br.status is SlaBreachStatus.BREACHED and msg.type in ("tick", "clock"):
                metrics.SLA_DETECTION_DELAY.observe(max(0.0, (br.emitted_at - br.deadline).total_seconds()))
            await self.breaches_topic.send(key=key, value=br, headers=ce_headers(br, source), force=True)

    def _note_failure(self, exc: BaseException) -> None:
        """A dead agent makes the worker unready (it will not process anything more)."""
        if not isinstance(exc, (asyncio.CancelledError, GeneratorExit, KeyboardInterrupt)):
            self.failed = exc
            log.exception("agent failed: %s", exc)


def _write(table: Any, changes: dict[str, Any]) -> None:
    """A batch's changes to one table: a value sets its key, None deletes it."""
    for key, value in changes.items():
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value


def _wall_clock(frozen: str | None) -> Any:
    """The wall clock, or one pinned to an instant (replays, the consistency verifier)."""
    if not frozen:
        return utcnow
    pinned = datetime.fromisoformat(frozen)
    if pinned.tzinfo is None:
        pinned = pinned.replace(tzinfo=timezone.utc)
    return lambda: pinned


class _App(faust.App):
    """Faust's App with a hook list for routes added before its web server starts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.webserver_hooks: list[Any] = []

    def on_webserver_init(self, web: Any) -> None:
        for hook in self.webserver_hooks:
            hook(web.web_app)


class _Pending:
    """A raw record in the merge; acknowledged once its events have been sent on."""

    __slots__ = ("event",)

    def __init__(self, event: Any) -> None:
        self.event = event

    def done(self) -> None:
        self.event.ack()

