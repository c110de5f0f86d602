"""Four account partitions over a generated multi-vendor history, scheduled at random:
batch sizes, which partition runs next, and how late forwarded merges arrive all vary,
as they do between two runs of the worker. The outputs must not."""

from __future__ import annotations

import collections
import random
from datetime import datetime, timezone

import pytest
from kafka.partitioner.default import murmur2

from connectors.base import Ignored, ParseError
from connectors.registry import parse_raw
from pipeline.core.account import AccountLogic
from pipeline.core.identity import IdentityResolver, UnresolvableEvent
from pipeline.core.partition import PartitionLogic
from pipeline.journey import load_journey
from pipeline.sample import SampleConfig, generate
from schemas.accounts import AccountMessage

J = load_journey()
PARTITIONS = 4
END = datetime(2026, 11, 29, tzinfo=timezone.utc)


def partition_of(account_id: str) -> int:
    return (murmur2(account_id.encode()) & 0x7FFFFFFF) % PARTITIONS


@pytest.fixture(scope="module")
def ingested() -> list[AccountMessage]:
    """What the ingest step sends for the sample, in event-time order, numbered."""
    events = []
    for raw in generate(SampleConfig(accounts=60, seed=7)):
        try:
            events += parse_raw(raw)
        except (ParseError, Ignored):
            pass
    events.sort(key=lambda e: (e.occurred_at, e.event_id))
    resolver = IdentityResolver(J.identity, {}, {})
    out: list[AccountMessage] = []
    for ev in events:
        try:
            resolution = resolver.resolve(ev)
        except UnresolvableEvent:
            continue
        for merge in resolution.merges:
            out.append(AccountMessage(type="merge_out", account_id=merge.from_account, merge=merge))
            out.append(AccountMessage(type="merge_wait", account_id=merge.into_account, merge=merge))
        ev.account_id = resolution.account_id
        out.append(AccountMessage(type="event", account_id=ev.account_id, event=ev))
    for seq, message in enumerate(out, 1):
        message.origin, message.seq = "ingest", seq
    assert any(m.type == "merge_out" for m in out)
    return out


def run(messages: list[AccountMessage], seed: int, max_batch: int, max_delay: int, local: bool = False) -> set[str]:
    rng = random.Random(seed)
    queues = {p: collections.deque(m.model_copy() for m in messages if partition_of(m.account_id) == p)
              for p in range(PARTITIONS)}
    for queue in queues.values():
        queue.append(AccountMessage(type="clock", account_id="", now=END))
    logics = {p: PartitionLogic(AccountLogic(J, clock=lambda: END), p, partition_of if local else None)
              for p in range(PARTITIONS)}
    tables: dict[int, tuple[dict, dict, dict, dict]] = {p: ({}, {}, {}, {}) for p in range(PARTITIONS)}
    in_flight: list[tuple[int, int, list[AccountMessage]]] = []
    last_delivery: dict[tuple[int, int], int] = {}
    outputs: set[str] = set()
    step = 0
    while any(queues.values()) or in_flight:
        step += 1
        due = sorted((f for f in in_flight if f[0] <= step), key=lambda f: f[0])
        for f in due:
            queues[f[1]].extend(f[2])
            in_flight.remove(f)
        p = rng.randrange(PARTITIONS)
        batch = [queues[p].popleft() for _ in range(min(rng.randint(1, max_batch), len(queues[p])))]
        if not batch:
            continue
        accounts, journals, deadlines, readings = tables[p]
        result = logics[p].process(batch, accounts, journals, deadlines, readings)
        accounts.update(result.states)
        for table, changes in ((journals, result.journals), (deadlines, result.deadlines),
                               (readings, result.logs)):
            for key, value in changes.items():
                if value is None:
                    table.pop(key, None)
                else:
                    table[key] = value
        for emitted in result.emitted:
            for record in (*emitted.outputs.transitions, *emitted.outputs.handoffs, *emitted.outputs.breaches):
                outputs.add(record.model_dump_json(exclude={"emitted_at"}))
        by_target: dict[int, list[AccountMessage]] = collections.defaultdict(list)
        for message in result.forward:
            by_target[partition_of(message.account_id)].append(message)
        for target, forwarded in by_target.items():  # Kafka keeps one sender's order per partition
            at = max(last_delivery.get((p, target), 0), step + rng.randint(0, max_delay))
            last_delivery[(p, target)] = at
            in_flight.append((at, target, forwarded))
    waiting = [s.account_id for t in tables.values() for s in t[0].values() if s.awaiting_merge]
    assert not waiting, f"accounts still waiting for a merge: {waiting}"
    return outputs


def test_outputs_do_not_depend_on_scheduling(ingested: list[AccountMessage]) -> None:
    reference = run(ingested, seed=0, max_batch=500, max_delay=0)
    assert sum('"to_stage"' in r for r in reference) > 40 and sum('"sla_id"' in r for r in reference) > 20
    for seed, max_batch, max_delay in [(1, 20, 5), (2, 5, 30), (3, 100, 10), (4, 1, 3)]:
        assert run(ingested, seed, max_batch, max_delay) == reference, (seed, max_batch, max_delay)
    # merges within one partition handed over in place, as the worker does: the same outputs
    for seed, max_batch, max_delay in [(0, 500, 0), (5, 20, 5), (6, 3, 20)]:
        assert run(ingested, seed, max_batch, max_delay, local=True) == reference, ("local", seed)
