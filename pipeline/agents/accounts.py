"""The accounts agent: each batch from the account topic through its partition's state
machine (``core.partition``: engine, SLA, handoffs, merges, the clock), outputs published,
state written once per batch.

Acks are manual: Faust's auto-ack acknowledges the message in hand when an agent is
cancelled (SIGTERM), so a batch cut off before its table writes was committed as done.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import faust
from faust.types import TP

from pipeline import metrics
from pipeline.compat import acknowledge, stale
from pipeline.core.partition import Emitted, PartitionLogic
from schemas.accounts import AccountBatch, AccountMessage
from schemas.base import dumps
from schemas.cloudevents import ce_headers, source_for
from schemas.sla import SlaBreachStatus

if TYPE_CHECKING:
    from pipeline.app import LifecyclePipeline

log = logging.getLogger(__name__)


class Accounts:
    """One ``PartitionLogic`` per owned account partition, rebuilt from the tables after each assignment."""

    def __init__(self, pipeline: LifecyclePipeline) -> None:
        self.pipeline = pipeline
        self.partitions: dict[int, PartitionLogic] = {}
        self.clock_sent: set[int] = set()        # partitions with a self-clock in flight
        self._assigned: set[int] = set()
        self.lock = asyncio.Lock()               # held for each batch, so a revoke waits for it
        self._cpu = metrics.StepCpu("accounts")

    async def run(self, stream: faust.StreamT) -> None:
        try:
            async for event in stream.noack().events():
                async with self.lock:
                    await self._batch(event)
        except BaseException as exc:
            self.pipeline.note_failure(exc)
            raise

    async def on_revoked(self, revoked: set[TP]) -> None:
        """A batch in hand finishes (writes and ack) before its partition may move."""
        topic = self.pipeline.topics.account_events
        async with self.lock:
            for tp in revoked:
                if tp.topic == topic:
                    self._assigned.discard(tp.partition)
                    self.partitions.pop(tp.partition, None)

    def owns(self, partition: int) -> bool:
        """Whether this worker runs that account partition now."""
        return partition in self._assigned

    def on_assigned(self, assigned: set[TP]) -> None:
        topic = self.pipeline.topics.account_events
        self._assigned = {tp.partition for tp in assigned if tp.topic == topic}
        for partition in self._assigned:
            self.partitions.pop(partition, None)  # rebuilt from the recovered tables

    async def _batch(self, event: Any) -> None:
        partition = event.message.partition
        if partition not in self._assigned or stale(self.pipeline.app, event):
            # buffered before a rebalance took the partition away (its new owner reads it), or
            # in hand while the tables were recovered: Faust seeks back to the commit after
            return
        p = self.pipeline
        logic = self.partitions.get(partition)
        if logic is None:
            logic = self.partitions[partition] = self._load(partition)
        batch: AccountBatch = event.value
        self.clock_sent.discard(partition)
        with self._cpu:
            result = logic.process(batch.messages, p.accounts, p.journals, p.deadlines, p.progress)
        if result.gaps:
            self._report_gaps(partition, result.gaps, logic)
        for emitted in result.emitted:
            await self._publish(emitted)
        if result.forward:
            await p.route([(m.account_id, dumps(m)) for m in result.forward])
        _write(p.accounts, result.states)
        _write(p.journals, result.journals)
        _write(p.deadlines, result.deadlines)
        _write(p.progress, result.logs)
        p.progress[str(partition)] = logic.progress.to_dict()
        await p.sends.flush()  # the changelog writes, before the ack
        acknowledge(event)

    def _report_gaps(self, partition: int, gaps: list[AccountMessage], logic: PartitionLogic) -> None:
        """Messages after a missing one were not applied (``core.numbering``): their sender sends
        them again, in order, from its commit. Normal right after a sender's restart that lost a
        send; lasting, a write never reached the broker."""
        by_origin: dict[str, list[int]] = {}
        for message in gaps:
            by_origin.setdefault(message.origin or "", []).append(message.seq or 0)
        for origin, seqs in by_origin.items():
            metrics.child(metrics.MESSAGE_GAPS, "account", origin).inc(len(seqs))
            log.warning("account partition %d: %d message(s) of %s (numbers %d..%d) wait for %s's message %d "
                        "(sent again from its commit)", partition, len(seqs), origin, min(seqs), max(seqs), origin,
                        logic.progress.last_seq.get(origin, 0) + 1)

    def _load(self, partition: int) -> PartitionLogic:
        p = self.pipeline
        logic = PartitionLogic(p.logic, partition, p.partition_of)
        logic.load(p.progress.get(str(partition)),
                   ((account, due) for account, due in p.deadlines.items() if p.partition_of(account) == partition))
        metrics.child(metrics.TABLE_KEYS, "accounts").set(len(p.accounts))
        metrics.child(metrics.TABLE_KEYS, "deadlines").set(len(p.deadlines))
        return logic

    async def _publish(self, emitted: Emitted) -> None:
        p = self.pipeline
        key, out, msg = emitted.account_id, emitted.outputs, emitted.message
        source = source_for(p.settings.app_id)  # CloudEvents headers (schemas.cloudevents)
        if out.outcome is not None:
            metrics.child(metrics.ENGINE_OUTCOMES, out.outcome.value).inc()
        for tr in out.transitions:
            metrics.child(metrics.TRANSITIONS, tr.from_stage or "none", tr.to_stage).inc()
            if tr.from_stage and tr.time_in_previous_stage_seconds is not None and not tr.inferred:
                metrics.child(metrics.TIME_IN_STAGE, tr.from_stage).observe(tr.time_in_previous_stage_seconds)
            if msg.event is not None:
                metrics.PROCESSING_LATENCY.observe(max(0.0, (tr.emitted_at - msg.event.ingested_at).total_seconds()))
            # keyed by the record's own account: a merge's "merged" record ends the absorbed
            # account's stream, in that account's partition, after its earlier transitions
            await p.sends.send(p.topics.stage_transitions, tr.account_id, dumps(tr), headers=ce_headers(tr, source))
        for ho in out.handoffs:
            metrics.child(metrics.HANDOFFS, ho.from_team or "none", ho.to_team, ho.status.value).inc()
            await p.sends.send(p.topics.handoffs, key, dumps(ho), headers=ce_headers(ho, source))
        for br in out.breaches:
            metrics.child(metrics.SLA_BREACHES, br.sla_id, br.severity, br.status.value).inc()
            if br.status is SlaBreachStatus.BREACHED and msg.type in ("tick", "clock"):
                metrics.SLA_DETECTION_DELAY.observe(max(0.0, (br.emitted_at - br.deadline).total_seconds()))
            await p.sends.send(p.topics.sla_breaches, key, dumps(br), headers=ce_headers(br, source))


def _write(table: Any, changes: dict[str, Any]) -> None:
    """A batch's changes to one table: a value sets its key, None deletes it."""
    for key, value in changes.items():
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
