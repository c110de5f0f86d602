"""``lifecycle tail``: an output topic as readable lines (or JSON), for watching from a terminal.

Reads without a consumer group (manual assignment: nothing is committed, nothing rebalances;
kafka-python groups hang on the embedded broker anyway), from the end or the beginning.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from pipeline.kafka_clients import client_kwargs
from pipeline.topic_reads import READ_FETCH, true_end_offsets
from schemas.base import Record
from schemas.events import DeadLetter
from schemas.handoffs import Handoff
from schemas.identity import AccountMerged, IdentityDecision, parse_identity_record
from schemas.sla import SlaBreach
from schemas.topics import DEFAULT, Topics
from schemas.transitions import StageTransition


def resolve_topic(name: str, topics: Topics = DEFAULT) -> str:
    """A topic of ``topics``' namespace by its full name or its short one (``stage-transitions``,
    ``handoffs``, ...)."""
    return topics.resolve(name)


def decode(topic: str, value: bytes, topics: Topics = DEFAULT) -> Record | None:
    spec = topics.spec(topic)
    if topic == topics.identity:
        return parse_identity_record(value)
    if len(spec.models) == 1:
        return spec.models[0].model_validate_json(value)
    return None


def account_of(record: Record | None) -> set[str]:
    if isinstance(record, AccountMerged):
        return {record.from_account, record.into_account}
    account = getattr(record, "account_id", None)
    return {account} if account else set()


def render(record: Record | None, value: bytes) -> str:
    """One readable line per record."""
    match record:
        case StageTransition():
            inferred = " (inferred)" if record.inferred else ""
            return (f"{record.occurred_at:%Y-%m-%d %H:%M}  {record.account_id}  "
                    f"{record.from_stage or '(new)'} → {record.to_stage}{inferred}  [{record.trigger_kind}]")
        case Handoff():
            return (f"{record.occurred_at:%Y-%m-%d %H:%M}  {record.account_id}  handoff "
                    f"{record.from_team or '-'} → {record.to_team}: {record.status.value} (v{record.version})")
        case SlaBreach():
            return (f"{record.detected_at:%Y-%m-%d %H:%M}  {record.account_id}  SLA {record.sla_id} "
                    f"{record.status.value} (deadline {record.deadline:%Y-%m-%d %H:%M})")
        case IdentityDecision():
            return f"{record.decided_at:%Y-%m-%d %H:%M}  {record.account_id}  ← {record.identifier} ({record.rule.value})"
        case AccountMerged():
            return f"{record.decided_at:%Y-%m-%d %H:%M}  {record.from_account} merged into {record.into_account} ({record.rule.value})"
        case DeadLetter():
            return f"{record.failed_at:%Y-%m-%d %H:%M}  dead letter {record.stage}/{record.reason}: {record.detail}"
    return value.decode(errors="replace")


def tail(bootstrap: str, topic: str, account: str | None = None, from_beginning: bool = False,
         follow: bool = True, poll_seconds: float = 0.5,
         topics: Topics = DEFAULT) -> Iterator[tuple[Record | None, bytes]]:
    """Records of ``topic`` (of one account if given), as they arrive; with ``follow=False`` stop
    at the end the topic had when reading started."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **READ_FETCH,
                             **client_kwargs())
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        end = true_end_offsets(consumer, tps)
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0 if from_beginning else end[tp])
        remaining = {tp for tp in tps if from_beginning and end[tp] > 0}
        while follow or remaining:
            for tp, messages in consumer.poll(timeout_ms=int(poll_seconds * 1000)).items():
                for m in messages:
                    if m.offset + 1 >= end.get(tp, 0):
                        remaining.discard(tp)
                    if m.value is None:
                        continue
                    record = decode(topic, m.value, topics)
                    if account is None or account in account_of(record):
                        yield record, m.value
            if not follow and not from_beginning:
                return
    finally:
        consumer.close()


def lines(bootstrap: str, topic: str, as_json: bool, **options: Any) -> Iterator[str]:
    for record, value in tail(bootstrap, topic, **options):
        yield orjson.dumps(orjson.loads(value)).decode() if as_json else render(record, value)
