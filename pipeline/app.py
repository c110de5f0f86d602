"""The Faust application: the topology, stated once, and the wiring of its agents.

Topology (every arrow a Kafka topic; names in the deployment's namespace)::

    lifecycle.raw.{crm,billing,product,support}   RawRecord batches (native payloads), N partitions each
        └─ parse (agents/parse.py, on every worker; the parsing in its parse process, parse_pool.py):
             │      vendor parsers → canonical events
             │      ─→ lifecycle.parsed.<source>.<partition>   ParsedBatch, one 1-partition topic per raw partition
             │      (bad input → lifecycle.dead-letter)
        └─ ingest (agents/ingest.py, one worker: every 1-partition topic lands on one):
             │      event-time merge (core.merge) → identity → seq number
             │      ─→ lifecycle.account-events   AccountBatch per partition, keyed by account
             │      (unresolvable events → lifecycle.dead-letter; identity facts → lifecycle.identity)
             └─ accounts (agents/accounts.py; core.partition: engine, SLA, handoffs, merges, the clock)
                  ─→ lifecycle.stage-transitions / .handoffs / .sla-breaches
                  └─ readmodel (agents/sink.py: batched SQL sink; role "sink" runs it alone)
    timers (agents/timers.py): the parsers' end-of-partition markers and the ingest release timer;
        the clock, sent as messages once input is caught up

Output is a function of the input alone (README, Delivery guarantees):

* the ingest step releases events in a merged order decided by the data
  (offset-based idleness, no wall-clock quietness) and resolves identity in that
  order; it numbers what it sends, so a partition applies each message once;
* SLA deadlines fire inside the accounts agent when the partition's event-time
  watermark passes them; the wall clock enters only as ``clock`` messages sent
  once every input is caught up;
* every table write names the input offset that caused it, and recovery drops
  writes of uncommitted input (``pipeline.tables``), so a restarted worker
  resumes from exactly the committed state; commits wait for those writes
  (``pipeline.compat``), and agents acknowledge by hand, only what they finished.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from faust.types import TP

from pipeline import gc_policy, metrics
from pipeline.agents.accounts import Accounts
from pipeline.agents.ingest import BATCH_MAX, Ingest
from pipeline.agents.parse import Parse
from pipeline.agents.timers import RELEASE_INTERVAL, Timers
from pipeline.assignor import PipelineAssignor
from pipeline.codecs import ORJSON, STR, codec_for
from pipeline.compat import (patch_faust_durable_commit, patch_faust_end_offsets, patch_faust_fetch_wait,
                             patch_faust_manual_acks)
from pipeline.core.account import AccountLogic
from pipeline.core.identity import IdentityResolver
from pipeline.core.state import AccountState
from pipeline.journey import JourneyDefinition, load_journey
from pipeline.kafka_clients import faust_credentials
from pipeline.sends import Sends
from pipeline.settings import Settings
from pipeline.tables import CommittedOffsets, checkpointed_table
from pipeline.write_back import WriteBack
from schemas.accounts import AccountBatch, partition_of
from schemas.base import dumps, utcnow
from schemas.events import DeadLetter, LifecycleEvent
from schemas.handoffs import Handoff
from schemas.sla import SlaBreach
from schemas.transitions import StageTransition
from schemas.topics import LARGE_MESSAGE_BYTES, LARGE_TOPIC_CONFIG

log = logging.getLogger(__name__)


PRODUCER_BATCH_BYTES = 512 * 1024


def faust_config(settings: Settings) -> dict[str, Any]:
    """Faust settings tuned for fast start (seconds, not ~30 s) and at-least-once delivery."""
    return dict(
        broker=f"kafka://{settings.bootstrap_servers}",
        broker_credentials=faust_credentials(settings),
        store=f"{settings.store}://",  # pipeline.tables registers rocksdict://
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
        # aiokafka's default batch is 16 KB: the changelog writes and outputs of one account batch
        # went out in many small produce requests, each encoded in Python. 512 KB stays under
        # Apache Kafka's default message.max.bytes (1 MB) for topics without a larger limit.
        producer_max_batch_size=PRODUCER_BATCH_BYTES,
        producer_max_request_size=LARGE_MESSAGE_BYTES + 64 * 1024,  # a parsed message (schemas.parsed)
        web_enabled=settings.web_enabled,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        processing_guarantee="at_least_once",
        PartitionAssignor=PipelineAssignor,
    )


class LifecyclePipeline:
    """Builds the Faust app of one worker role from settings: topics, tables, agents, timers."""

    def __init__(self, settings: Settings, journey: JourneyDefinition | None = None) -> None:
        if not settings.bootstrap_servers:
            raise ValueError("settings.bootstrap_servers must be set (start the embedded broker first)")
        self.settings = settings
        self.topics = settings.topics  # names in this deployment's namespace
        self.journey = journey or load_journey(settings.journey_path)
        self.wall = _wall_clock(settings.frozen_now)
        self.future_skew = timedelta(seconds=settings.future_skew_seconds)
        self.logic = AccountLogic(self.journey, clock=self.wall)
        self.started = False
        self.failed: BaseException | None = None
        self.sink: Any = None
        (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
        patch_faust_end_offsets()
        patch_faust_durable_commit()
        patch_faust_manual_acks()
        patch_faust_fetch_wait()
        app_id = f"{settings.app_id}-readmodel" if settings.role == "sink" else settings.app_id
        self.app = app = _App(app_id, **faust_config(settings))
        app.fetch_max_wait_ms = settings.fetch_max_wait_ms
        self.sends = app.sends = Sends(app)  # the agents' writes, without Faust's per-message cost
        self.app.webserver_hooks.append(self._mount_read_model)
        if settings.role != "sink":
            self._build_stream(settings)
        if settings.role == "sink" or (settings.role == "all" and settings.sink_enabled):
            self._build_sink(settings)
        app.on_partitions_revoked.connect(self._on_revoked)
        app.on_partitions_assigned.connect(self._on_assigned)
        app.task(self._mark_started)
        self.collector = gc_policy.Collector()
        app.timer(1.0)(self._collect_garbage)
        if settings.web_enabled:
            from pipeline import web

            web.install(self)

    def _build_stream(self, settings: Settings) -> None:
        app, topics = self.app, self.topics
        # ---- topics -----------------------------------------------------------------------------
        self.parsed_topics = topics.parsed(settings.partitions)  # parsed topic → its raw (topic, partition)
        app.merge_topics = frozenset(self.parsed_topics)  # the merge's worker is lightened (pipeline.assignor)
        self.raw_topic = app.topic(*topics.raw.values(), value_serializer="raw", key_serializer="raw",
                                   partitions=settings.partitions)
        self.parsed_topic = app.topic(*self.parsed_topics, value_serializer="raw", key_serializer="raw", partitions=1,
                                      config=LARGE_TOPIC_CONFIG)
        self.account_topic = app.topic(topics.account_events, key_serializer=STR,
                                       value_serializer=codec_for(AccountBatch), partitions=settings.partitions)
        self.transitions_topic = app.topic(topics.stage_transitions, key_serializer=STR,
                                           value_serializer=codec_for(StageTransition), partitions=settings.partitions)
        self.handoffs_topic = app.topic(topics.handoffs, key_serializer=STR, value_serializer=codec_for(Handoff),
                                        partitions=settings.partitions)
        self.breaches_topic = app.topic(topics.sla_breaches, key_serializer=STR, value_serializer=codec_for(SlaBreach),
                                        partitions=settings.partitions)
        self.identity_topic = app.topic(topics.identity, key_serializer=STR, value_serializer="raw", partitions=1)
        self.dead_letter_topic = app.topic(topics.dead_letter, key_serializer=STR,
                                           value_serializer=codec_for(DeadLetter), partitions=1,
                                           config=LARGE_TOPIC_CONFIG)
        # ---- tables: changelogged, recovered to exactly the committed input ------------------------
        committed = self.committed = CommittedOffsets(app)
        # per account partition: the offsets of the ingest's batches written there (see Ingest._pace)
        self.ingest_batches: dict[int, deque[int]] = {}
        self.accounts = checkpointed_table(app, "accounts", settings.partitions, codec_for(AccountState), committed)
        self.journals = checkpointed_table(app, "journal", settings.partitions, codec_for(LifecycleEvent), committed)
        self.deadlines = checkpointed_table(app, "deadlines", settings.partitions, ORJSON, committed)
        self.progress = checkpointed_table(app, "progress", settings.partitions, ORJSON, committed)
        self.identity_links = checkpointed_table(app, "identity-links", 1, ORJSON, committed)
        self.identity_accounts = checkpointed_table(app, "identity-accounts", 1, ORJSON, committed)
        self.ingest_state = checkpointed_table(app, "ingest-progress", 1, ORJSON, committed)
        # The identity step writes through WriteBacks, flushed with each ingest batch (pipeline.write_back).
        self.identity_writes = (WriteBack(self.identity_links), WriteBack(self.identity_accounts))
        self.resolver = IdentityResolver(self.journey.identity, *self.identity_writes)
        # ---- agents and timers ---------------------------------------------------------------------
        self.parse = Parse(self)
        self.ingest = Ingest(self)
        self.accounts_agent = Accounts(self)
        self.timers = Timers(self)
        app.agent(self.raw_topic, name="parse")(self.parse.run)
        app.agent(self.parsed_topic, name="ingest")(self.ingest.run)
        app.agent(self.account_topic, name="accounts")(self.accounts_agent.run)
        app.timer(RELEASE_INTERVAL)(self.timers.release)
        app.timer(settings.timer_interval)(self.timers.clock)
        app.stop_hooks.append(self.commit_before_stop)
        app.stop_hooks.append(self._stop_processes)

    def _build_sink(self, settings: Settings) -> None:
        from pipeline.agents.sink import ReadModelSink, sink_topics

        self.sink = ReadModelSink(settings.resolved_database_url, self.topics)
        sink_topic = self.app.topic(*sink_topics(self.topics), value_serializer="raw", key_serializer="raw")
        self.app.agent(sink_topic, name="readmodel")(self.sink.run)
        self.app.timer(0.1)(self.sink.flush_due)

    def _mount_read_model(self, web_app: Any) -> None:
        """The RevOps report API on the worker's own web server (read-only, off the event loop)."""
        if self.sink is not None:
            from pipeline.readmodel.http import add_routes

            add_routes(web_app, lambda: self.sink.engine, journey=self.journey)

    def start_processes(self) -> None:
        """A stream worker's child process (``pipeline.parse_pool``), started before the app so
        it is up by the time the worker's partitions are; an app that never calls this parses
        on its event loop."""
        if self.settings.role != "sink":
            self.parse.pool.start()

    async def _stop_processes(self) -> None:
        self.parse.pool.close()

    async def commit_before_stop(self) -> None:
        """A graceful stop (SIGTERM: a rolling deploy) commits what is finished first, so the
        restart replays little: the batches in hand finish, what the ingest step released is
        sent, and everything acknowledged is committed. Without it the last timed commit is up
        to a few seconds old under load, and all after it is processed again (exact duplicates)."""
        if not self.started or self.app.rebalancing or self.failed is not None:
            return
        async with self.parse.lock, self.ingest.lock, self.accounts_agent.lock:
            await self.ingest.flush()
            committed = await self.app.consumer.commit()
        log.info("stopping: finished work committed (%s)", "done" if committed else "nothing new")

    async def _mark_started(self) -> None:
        # Table writes queue changelog messages in Faust's producer buffer; at its default
        # of 100 the stream stalls in 0.1 s waits whenever a burst exceeds it.
        self.app.producer.buffer.max_messages = 20_000
        self.started = True

    async def _collect_garbage(self) -> None:
        took = self.collector.tick()   # the worker's own collections (pipeline.gc_policy)
        if took is not None and took > 0.5:
            log.info("garbage collection took %.2fs", took)

    async def _on_revoked(self, sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        if self.settings.role != "sink":
            await self.parse.on_revoked(revoked)
            await self.ingest.on_revoked(revoked)
            await self.accounts_agent.on_revoked(revoked)

    async def _on_assigned(self, sender: Any, assigned: set[TP], **kwargs: Any) -> None:
        if self.settings.role != "sink":
            await self.parse.on_assigned(assigned)
            await self.ingest.on_assigned(assigned)
            self.accounts_agent.on_assigned(assigned)

    # ---- shared by the agents -------------------------------------------------------------------
    def partition_of(self, account_id: str) -> int:
        """``schemas.accounts.partition_of`` over this deployment's partitions."""
        return partition_of(account_id, self.settings.partitions)

    async def route(self, messages: list[tuple[str, bytes]], *, from_ingest: bool = False) -> None:
        """Send messages (account id, ``AccountMessage`` JSON) to their accounts' partitions, one
        ``AccountBatch`` per partition, order kept; the batch is joined from the messages' JSON.
        ``from_ingest``: the offsets of the batches are kept (``ingest_batches``) for its pace."""
        by_partition: dict[int, list[tuple[str, bytes]]] = {}
        for message in messages:
            by_partition.setdefault(self.partition_of(message[0]), []).append(message)
        for partition, batch in by_partition.items():
            for part in batches(batch, BATCH_MAX, ROUTE_MAX_BYTES):
                delivery = await self.sends.send(self.topics.account_events, part[0][0], partition=partition,
                                                 value=b'{"messages":[' + b",".join(m for _, m in part) + b"]}")
                if from_ingest:
                    delivery.add_done_callback(self._note_ingest_batch)

    def _note_ingest_batch(self, delivery: asyncio.Future) -> None:
        """Kept for another worker's partitions only (the pace lets them go once committed; its
        own partitions are paced by what they applied). A partition's batches are delivered in
        order, so each partition's offsets stay sorted."""
        if not delivery.cancelled() and delivery.exception() is None:
            meta = delivery.result()
            if not self.accounts_agent.owns(meta.partition):
                self.ingest_batches.setdefault(meta.partition, deque()).append(meta.offset)

    async def send_dead_letter(self, record: DeadLetter) -> None:
        """Counted, and handed to the producer (on the broker before the input is committed)."""
        metrics.child(metrics.DEAD_LETTERS, record.stage, record.reason).inc()
        await self.sends.send(self.topics.dead_letter, record.dead_letter_id, dumps(record))

    def note_failure(self, exc: BaseException) -> None:
        """A dead agent makes the worker unready (it will not process anything more)."""
        if not isinstance(exc, (asyncio.CancelledError, GeneratorExit, KeyboardInterrupt)):
            self.failed = exc
            log.exception("agent failed: %s", exc)


ROUTE_MAX_BYTES = 512 * 1024   # an account batch's JSON: far below a Kafka message's 1 MB default


def batches(messages: list[tuple[str, bytes]], count: int, size: int) -> list[list[tuple[str, bytes]]]:
    """Consecutive runs of ``messages``, each at most ``count`` long and, but for a lone message
    larger than that, at most ``size`` bytes of JSON (a broker refuses an over-large message, and
    the send would stop the agent)."""
    out: list[list[tuple[str, bytes]]] = []
    run: list[tuple[str, bytes]] = []
    used = 0
    for message in messages:
        if run and (len(run) >= count or used + len(message[1]) + 1 > size):
            out.append(run)
            run, used = [], 0
        run.append(message)
        used += len(message[1]) + 1
    if run:
        out.append(run)
    return out


def _wall_clock(frozen: str | None) -> Any:
    """The wall clock, or one pinned to an instant (replays, the consistency verifier)."""
    if not frozen:
        return utcnow
    pinned = datetime.fromisoformat(frozen)
    if pinned.tzinfo is None:
        pinned = pinned.replace(tzinfo=timezone.utc)
    return lambda: pinned


STOP_COMMIT_TIMEOUT = 10.0   # seconds for the last commit of a graceful stop


class _App(faust.App):
    """Faust's App with hooks: routes added before its web server starts, and work done when a
    stop begins, while the consumer can still commit (Faust stops the consumer first)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.webserver_hooks: list[Any] = []
        self.stop_hooks: list[Callable[[], Awaitable[None]]] = []

    async def on_stop(self) -> None:
        for hook in self.stop_hooks:
            try:
                await asyncio.wait_for(hook(), STOP_COMMIT_TIMEOUT)
            except Exception as exc:  # a timeout included: the restart reads again from the last commit
                log.warning("stopping: %s did not finish (%r)", getattr(hook, "__name__", hook), exc)
        await super().on_stop()

    def on_webserver_init(self, web: Any) -> None:
        for hook in self.webserver_hooks:
            hook(web.web_app)
