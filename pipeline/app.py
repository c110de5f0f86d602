"""The Faust application: thin wiring around the pure core.

Topology (every arrow a Kafka topic)::

    lifecycle.raw.{crm,billing,product,support}   RawRecord (native payloads), 1 partition each
        └─ ingest: parse + resolve identity ─→ lifecycle.account-events   AccountMessage, keyed by account
             │      (bad input → lifecycle.dead-letter; identity facts → lifecycle.identity)
             └─ accounts ─→ lifecycle.stage-transitions / .handoffs / .sla-breaches
                  └─ readmodel (batched SQL sink)
    timer (every worker, own partitions) ─→ lifecycle.account-events (ticks)

Parsing and identity resolution share one hop: identity needs one global,
ordered view (a single partition), and parsing is cheap next to a Kafka hop.

State changes only inside agents; the timer only reads the ``deadlines`` table
and sends ticks back through the account topic (Faust has no per-key timers,
and a table cannot be written outside stream iteration).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

import faust
from kafka.partitioner.default import murmur2
from pydantic import ValidationError

from connectors.base import ParseError, parse_raw
from pipeline import metrics
from pipeline.clock import WatermarkClock
from pipeline.codecs import ORJSON, STR, codec_for
from pipeline.core.account import AccountLogic, Outputs
from pipeline.core.identity import IdentityResolver, UnresolvableEvent
from pipeline.core.reorder import ReorderBuffer
from pipeline.core.state import AccountState, Journal
from pipeline.journey import JourneyDefinition, load_journey
from pipeline.settings import Settings
from schemas import topics as T
from schemas.accounts import AccountBatch, AccountMessage
from schemas.base import utcnow
from schemas.events import DeadLetter, LifecycleEvent, RawRecord
from schemas.handoffs import Handoff
from schemas.sla import SlaBreach, SlaBreachStatus
from schemas.transitions import StageTransition

log = logging.getLogger(__name__)
BATCH_MAX = 500  # messages per account-topic batch
RELEASE_INTERVAL = 0.1  # seconds; the most the ingest step adds to live latency


def faust_config(settings: Settings) -> dict[str, Any]:
    """Faust settings tuned for fast start (seconds, not ~30 s) and at-least-once delivery."""
    return dict(
        broker=f"kafka://{settings.bootstrap_servers}",
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
        self.journey = journey or load_journey(settings.journey_path)
        self.logic = AccountLogic(self.journey)
        self.clock = WatermarkClock(settings.idle_seconds, settings.allowed_lateness_seconds)
        (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
        self.app = _App(settings.app_id, **faust_config(settings))
        self.app.webserver_hooks.append(self._mount_read_model)
        app = self.app

        # ---- topics -----------------------------------------------------------------
        self.raw_topic = app.topic(*T.RAW.values(), value_serializer="raw", key_serializer="raw", partitions=1)
        self.account_topic = app.topic(T.ACCOUNT_EVENTS, key_serializer=STR,
                                       value_serializer=codec_for(AccountBatch), partitions=settings.partitions)
        self.transitions_topic = app.topic(T.STAGE_TRANSITIONS, key_serializer=STR,
                                           value_serializer=codec_for(StageTransition), partitions=settings.partitions)
        self.handoffs_topic = app.topic(T.HANDOFFS, key_serializer=STR, value_serializer=codec_for(Handoff),
                                        partitions=settings.partitions)
        self.breaches_topic = app.topic(T.SLA_BREACHES, key_serializer=STR, value_serializer=codec_for(SlaBreach),
                                        partitions=settings.partitions)
        self.identity_topic = app.topic(T.IDENTITY, key_serializer=STR, value_serializer="raw", partitions=1)
        self.dead_letter_topic = app.topic(T.DEAD_LETTER, key_serializer=STR, value_serializer=codec_for(DeadLetter),
                                           partitions=1)

        # ---- tables (changelogged: they survive restarts and rebalances) -----------------
        self.accounts = _table(app, "accounts", settings.partitions, codec_for(AccountState))
        self.journals = _table(app, "journals", settings.partitions, codec_for(Journal))
        self.deadlines = _table(app, "deadlines", settings.partitions, ORJSON)
        self.identity_links = _table(app, "identity-links", 1, ORJSON)
        self.identity_accounts = _table(app, "identity-accounts", 1, ORJSON)
        self.resolver = IdentityResolver(self.journey.identity, self.identity_links, self.identity_accounts)
        self._ticks_sent: dict[str, float] = {}
        self.reorder: ReorderBuffer[tuple[list[AccountMessage], _Pending]] = ReorderBuffer(
            T.RAW.values(), settings.reorder_idle_seconds)
        self._release_lock = asyncio.Lock()
        self.started = False

        app.agent(self.raw_topic, name="ingest")(self._ingest)
        app.agent(self.account_topic, name="accounts")(self._accounts)
        app.timer(settings.timer_interval)(self._fire_due)
        app.timer(RELEASE_INTERVAL)(self._release)
        if settings.sink_enabled:
            from pipeline.sink import SINK_TOPICS, ReadModelSink

            self.sink = ReadModelSink(settings.resolved_database_url)
            sink_topic = app.topic(*SINK_TOPICS, value_serializer="raw", key_serializer="raw")
            app.agent(sink_topic, name="readmodel")(self.sink.run)
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
    async def dead_letter(self, *, stage: str, reason: str, detail: str, original: bytes | str,
                          source_topic: str | None = None, source: str | None = None,
                          vendor: str | None = None, origin_ref: str = "") -> None:
        record = DeadLetter.build(stage=stage, reason=reason, detail=detail, original=original,
                                  failed_at=utcnow(), source_topic=source_topic, source=source,
                                  vendor=vendor, origin_ref=origin_ref)
        metrics.DEAD_LETTERS.labels(stage, reason).inc()
        await self.dead_letter_topic.send(key=record.dead_letter_id, value=record)

    async def _on_assigned(self, sender: Any, assigned: set[Any], **kwargs: Any) -> None:
        self.clock.assign(tp.partition for tp in assigned if tp.topic == T.ACCOUNT_EVENTS)
        self._ticks_sent.clear()

    # ---- agents ----------------------------------------------------------------------
    async def _ingest(self, stream: faust.StreamT) -> None:
        """Raw vendor payload → canonical events → one account each → event-time order.

        The stream does not auto-ack: a raw record is acknowledged only once all its
        events have left the reorder buffer, so a crash replays what was held.
        """
        async for event in stream.noack().events():
            routed = await self._parse_and_resolve(event)
            if not routed:
                event.ack()
                continue
            pending = _Pending(event, len(routed))
            for occurred_at, messages in routed:
                self.reorder.push(event.message.topic, occurred_at, (messages, pending))
            if len(self.reorder) >= BATCH_MAX:
                await self._release()
            # else the release timer sends within RELEASE_INTERVAL: fuller batches, fewer messages

    async def _release(self) -> None:
        """Send what the reorder buffer lets go, oldest first (also called by a timer)."""
        async with self._release_lock:
            released = self.reorder.pop_ready()
            if not released:
                return
            await self.route([m for messages, _ in released for m in messages])
            for _, pending in released:
                pending.done()

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
                await self.account_topic.send(key=batch[start].account_id, partition=partition,
                                              value=AccountBatch(messages=batch[start:start + BATCH_MAX]))

    async def _parse_and_resolve(self, event: Any) -> list[tuple[datetime, list[AccountMessage]]]:
        """One raw record → (event time, messages for the account topic) per canonical event.
        Anything unusable is dead-lettered here and yields nothing."""
        value: bytes = event.value
        topic = event.message.topic
        origin = f"{topic}/{event.message.partition}/{event.message.offset}"
        try:
            raw = RawRecord.model_validate_json(value)
        except ValidationError as exc:
            metrics.EVENTS_INGESTED.labels(topic.rsplit(".", 1)[-1], "dead_letter").inc()
            await self.dead_letter(stage="decode", reason="invalid_envelope", detail=_short(exc),
                                   original=value, source_topic=topic, origin_ref=origin)
            return []
        where = dict(original=value, source_topic=topic, source=raw.source.value, vendor=raw.vendor)
        try:
            canonical = parse_raw(raw)
        except ParseError as exc:
            metrics.EVENTS_INGESTED.labels(raw.source.value, "dead_letter").inc()
            await self.dead_letter(stage="parse", reason=exc.reason, detail=exc.detail, origin_ref=origin, **where)
            return []
        except Exception as exc:  # a parser bug must not stop the stream
            log.exception("parser %s failed on %s", raw.vendor, raw.event_id,
                          extra={"event_id": raw.event_id, "vendor": raw.vendor, "topic": topic})
            metrics.EVENTS_INGESTED.labels(raw.source.value, "dead_letter").inc()
            await self.dead_letter(stage="parse", reason="parser_error", detail=f"{type(exc).__name__}: {exc}",
                                   origin_ref=origin, **where)
            return []
        if not self.settings.accept_test_mode and any(e.attributes.get("livemode") is False for e in canonical):
            metrics.EVENTS_INGESTED.labels(raw.source.value, "dead_letter").inc()
            await self.dead_letter(stage="parse", reason="test_mode", origin_ref=origin,
                                   detail="test-mode event (livemode=false); set LIFECYCLE_ACCEPT_TEST_MODE=1 to accept",
                                   **where)
            return []
        metrics.EVENTS_INGESTED.labels(raw.source.value, "accepted").inc()
        routed = []
        for ev in canonical:
            metrics.CANONICAL_EVENTS.labels(ev.kind).inc()
            try:
                routed.append((ev.occurred_at, await self._resolve(ev)))
            except UnresolvableEvent as exc:
                await self.dead_letter(stage="resolve", reason="no_usable_identifier", detail=str(exc),
                                       origin_ref=f"{origin}#{ev.event_id}", **where)
        return routed

    async def _resolve(self, ev: LifecycleEvent) -> list[AccountMessage]:
        """Resolve an event to one account (identity tables change here, in stream context);
        publish new identity facts; return what the account topic must get, in order."""
        resolution = self.resolver.resolve(ev)
        for decision in resolution.decisions:
            await self.identity_topic.send(key=decision.identifier, value=decision.to_json())
        messages = []
        for merge in resolution.merges:
            await self.identity_topic.send(key=merge.from_account, value=merge.to_json())
            messages.append(AccountMessage(type="merge_out", account_id=merge.from_account, merge=merge))
        ev.account_id = resolution.account_id
        messages.append(AccountMessage(type="event", account_id=ev.account_id, event=ev))
        return messages

    async def _accounts(self, stream: faust.StreamT) -> None:
        """The per-account state machine: events, ticks and merges, in partition order.

        Each batch's accounts are written back once, after the whole batch."""
        async for event in stream.events():
            batch: AccountBatch = event.value
            partition = event.message.partition
            touched: dict[str, tuple[AccountState, tuple[Any, ...] | None, bool]] = {}
            forward: list[AccountMessage] = []
            for msg in batch.messages:
                account_id = msg.account_id
                if account_id in touched:
                    state, before, dirty = touched[account_id]
                else:
                    loaded = self.accounts.get(account_id)
                    state = loaded or AccountState(account_id=account_id)
                    before, dirty = (_fingerprint(loaded), False) if loaded else (None, True)
                out, more, dirty_now = await self._step(state, msg, partition, forward)
                touched[account_id] = (more or state, before, dirty or dirty_now)
            for account_id, (state, before, dirty) in touched.items():
                self._save(account_id, state, dirty or before != _fingerprint(state))
            if forward:
                await self.route(forward)

    async def _step(self, state: AccountState, msg: AccountMessage, partition: int,
                    forward: list[AccountMessage]) -> tuple[Outputs, AccountState | None, bool]:
        """One message for one account; returns outputs, a replacement state (merges), and
        whether the state must be written even if its fingerprint did not change."""
        account_id = msg.account_id
        if state.merged_into and msg.type == "event" and msg.event is not None:
            # In flight when the merge happened: follow the account to its survivor.
            forward.append(AccountMessage(type="event", account_id=state.merged_into,
                                          event=msg.event.model_copy(update={"account_id": state.merged_into})))
            return Outputs(), None, False
        out, replacement, dirty = Outputs(), None, msg.type != "event"
        if msg.type == "event" and msg.event is not None:
            self.clock.observe(partition, msg.event.occurred_at)
            out = self.logic.on_event(state, msg.event)
            metrics.ENGINE_OUTCOMES.labels(out.outcome.value if out.outcome else "none").inc()
        elif msg.type == "tick" and msg.now is not None:
            out = self.logic.on_tick(state, msg.now)
        elif msg.type == "merge_out" and msg.merge is not None:
            journal = self.journals.get(account_id)
            forward.append(AccountMessage(type="merge_in", account_id=msg.merge.into_account, merge=msg.merge,
                                          journal=journal.events if journal else []))
            replacement = AccountState(account_id=account_id, merged_into=msg.merge.into_account,
                                       stage=state.stage, history=state.history)
            if journal is not None:
                del self.journals[account_id]
        elif msg.type == "merge_in":
            out = self.logic.on_merge_in(state, msg.journal)
        if out.journal:
            journal = self.journals.get(account_id) or Journal()
            journal.extend(out.journal)
            self.journals[account_id] = journal
        if out:
            await self._publish(account_id, out, msg)
        return out, replacement, dirty or bool(out)

    def _save(self, account_id: str, state: AccountState, changed: bool) -> None:
        """Write state and its next deadline to their changelogged tables, only if they changed
        (product noise changes nothing that matters; the in-memory value keeps the bookkeeping)."""
        if changed:
            self.accounts[account_id] = state
        due = self.logic.notify_at(state)
        due_ts = due.timestamp() if due is not None else None
        if due_ts != self.deadlines.get(account_id):
            if due_ts is None:
                del self.deadlines[account_id]
            else:
                self.deadlines[account_id] = due_ts

    async def _publish(self, account_id: str, out: Outputs, msg: AccountMessage) -> None:
        key = account_id
        for tr in out.transitions:
            metrics.TRANSITIONS.labels(tr.from_stage or "none", tr.to_stage).inc()
            if tr.from_stage and tr.time_in_previous_stage_seconds is not None and not tr.inferred:
                metrics.TIME_IN_STAGE.labels(tr.from_stage).observe(tr.time_in_previous_stage_seconds)
            if msg.event is not None:
                metrics.PROCESSING_LATENCY.observe(max(0.0, (tr.emitted_at - msg.event.ingested_at).total_seconds()))
            await self.transitions_topic.send(key=key, value=tr)
        for ho in out.handoffs:
            metrics.HANDOFFS.labels(ho.from_team or "none", ho.to_team, ho.status.value).inc()
            await self.handoffs_topic.send(key=key, value=ho)
        for br in out.breaches:
            metrics.SLA_BREACHES.labels(br.sla_id, br.severity, br.status.value).inc()
            if br.status is SlaBreachStatus.BREACHED and msg.type == "tick":
                metrics.SLA_DETECTION_DELAY.observe(max(0.0, (br.emitted_at - br.deadline).total_seconds()))
            await self.breaches_topic.send(key=key, value=br)

    # ---- timer --------------------------------------------------------------------------
    async def _fire_due(self) -> None:
        """Per worker: send a tick to every account on its own partitions whose deadline passed."""
        now = self.clock.now()
        if now is None:
            return
        now_ts = now.timestamp()
        sent = self._ticks_sent
        ticks = []
        for account_id, due in list(self.deadlines.items()):
            if due is None or due > now_ts or sent.get(account_id) == due:
                continue
            sent[account_id] = due
            ticks.append(AccountMessage(type="tick", account_id=account_id, now=now))
        if ticks:
            await self.route(ticks)
        metrics.TABLE_KEYS.labels("accounts").set(len(self.accounts))
        metrics.TABLE_KEYS.labels("deadlines").set(len(self.deadlines))


class _App(faust.App):
    """Faust's App with a hook list for routes added before its web server starts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.webserver_hooks: list[Any] = []

    def on_webserver_init(self, web: Any) -> None:
        for hook in self.webserver_hooks:
            hook(web.web_app)


def _fingerprint(state: AccountState) -> tuple[Any, ...]:
    """What must reach the changelog when it changes (stage, owner, SLA clocks, handoffs)."""
    return (state.stage, state.crm_owner_id, state.segment, state.merged_into, len(state.ignored),
            state.sla.model_dump_json(), state.handoffs.model_dump_json())


class _Pending:
    """Acknowledges a raw record once all of its events have been sent on."""

    __slots__ = ("event", "remaining")

    def __init__(self, event: Any, remaining: int) -> None:
        self.event = event
        self.remaining = remaining

    def done(self) -> None:
        self.remaining -= 1
        if self.remaining == 0:
            self.event.ack()


def _table(app: faust.App, name: str, partitions: int, value_codec: Any) -> Any:
    """A changelogged table with our codecs. Faust derives a table's serializers from
    ``value_type`` and ignores ``schema``, so they are set before the changelog exists."""
    table = app.Table(name, default=None, partitions=partitions)
    table.key_serializer = STR
    table.value_serializer = value_codec
    table.changelog_topic = table._new_changelog_topic()
    return table


def _short(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors()[:5])
