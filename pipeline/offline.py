"""The worker's processing without Kafka or Faust: raw records in, what it would publish out.

A what-if (``pipeline.whatif``) must give exactly what the pipeline produced for the
same journey, so this driver calls the worker's own pure steps in the worker's order
(``pipeline/app.py``, ``LifecyclePipeline``) and replaces only the transport:

* ``Ingest.run``/``Ingest._release`` (``pipeline/agents/ingest.py``): each raw message (a batch of
  records) → ``pipeline.ingest.parse_message``; each record pushed into ``core.merge.SourceMerge``
  as one item at its oldest event's time, partitions ordered by ``(topic, partition)``; a released
  item's events, in event time →
  ``pipeline.ingest.resolve_event`` over dict tables → ``AccountMessage`` numbered per
  account partition (``core.numbering``). A partition is caught up when its input is exhausted, which is
  the worker's "offset reached the high-water mark" once everything is recorded.
* ``route``/``Accounts._batch`` (``pipeline/agents/accounts.py``): messages go to their account's partition (Kafka's murmur2
  partitioner) and each partition's queue runs through ``core.partition.PartitionLogic``
  with plain dicts as tables; forwarded messages (merges) join the end of their target
  partition's queue, as the account topic would deliver them, until nothing moves.
* ``Timers.clock`` (``pipeline/agents/timers.py``): once all input is released, one ``clock`` message (the pinned wall
  clock minus the allowed lateness) to every partition.

Several journeys can share one pass: parsing and the merge do not depend on the journey,
and journeys with the same identity settings share identity resolution too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from time import process_time
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from pipeline.core.account import AccountLogic
from pipeline.core.identity import IdentityResolver
from pipeline.core.merge import Item, SourceMerge
from pipeline.core.numbering import Counters
from pipeline.core.partition import PartitionLogic
from pipeline.core.state import AccountState
from pipeline.gc_policy import relaxed_gc
from pipeline.ingest import DEFAULT_FUTURE_SKEW, INGEST_ORIGIN, Sourced, parse_message, resolve_event, unresolvable_letter
from pipeline.journey import IdentityConfig, JourneyDefinition
from schemas.accounts import AccountMessage, partition_of
from schemas.base import dumps
from schemas.events import DeadLetter, LifecycleEvent
from schemas.handoffs import Handoff
from schemas.identity import AccountMerged
from schemas.sla import SlaBreach, SlaBreachStatus
from schemas.transitions import StageTransition

SourceKey = tuple[str, int]   # (raw topic, partition): the merge's tie-break order
REFILL = 256                  # messages read from a partition whenever its queue runs dry
FLUSH_AT = 2_000              # released messages handed to the account partitions at once


@dataclass(frozen=True, slots=True)
class RawInput:
    """One recorded raw message (a batch of records): where it was (topic, partition, offset) and its bytes."""

    topic: str
    partition: int
    offset: int
    value: bytes


_Released = tuple[list[Sourced], RawInput]   # a merge item: a record's events (in event time) and its message
M = TypeVar("M", bound=BaseModel)


class JsonTable(MutableMapping[str, M], Generic[M]):
    """A table whose values are kept as their JSON bytes, as the worker's changelog holds them
    (``pipeline.codecs.PydanticCodec``), and decoded when read. For the journals: every
    account keeps up to ``JOURNAL_KEPT`` events, read back only on a merge, so bytes bound a
    replay's memory (an event's JSON is a fraction of the objects it decodes to)."""

    def __init__(self, model: type[M]) -> None:
        self._model = model
        self._data: dict[str, bytes] = {}

    def __getitem__(self, key: str) -> M:
        return self._model.model_validate_json(self._data[key])

    def __setitem__(self, key: str, value: M) -> None:
        self._data[key] = dumps(value)

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


Published = StageTransition | Handoff | SlaBreach


def _partitioner(partitions: int) -> Callable[[str], int]:
    """``partition_of`` for a fixed partition count."""
    return lambda account_id: partition_of(account_id, partitions)


Sink = Callable[[list[Published]], None]
SINK_BATCH = 5_000   # published records handed to a sink at once (one read-model transaction)
BreachOutcome = tuple[str, str, datetime, str]   # account, SLA, clock start, breached | met_late


@dataclass
class ReplayOutput:
    """What one journey's run published, and the tables it ended with.

    With ``keep`` (the default) every published record is kept in publication order; with a
    ``sink`` they are handed on in batches of ``SINK_BATCH`` as they are produced (a replay
    into a read model then holds no output list). Either way the run keeps what a what-if's
    diff needs: each SLA clock's outcome and the entry rule behind each transition."""

    journey: JourneyDefinition
    transitions: list[StageTransition] = field(default_factory=list)
    handoffs: list[Handoff] = field(default_factory=list)
    breaches: list[SlaBreach] = field(default_factory=list)
    merges: list[AccountMerged] = field(default_factory=list)
    accounts: dict[str, AccountState] = field(default_factory=dict)
    # Trigger event of every transition (by transition id); kept only with ``keep``.
    triggers: dict[str, LifecycleEvent] = field(default_factory=dict)
    # The entry rule each transition's trigger event matched (by transition id), as the journey file names it.
    entry_rules: dict[str, str] = field(default_factory=dict)
    # Every SLA clock's outcome (by breach id); 'met_late' is final, as in the read model.
    breach_outcomes: dict[str, BreachOutcome] = field(default_factory=dict)
    keep: bool = True
    sink: Sink | None = None
    _pending: list[Published] = field(default_factory=list, repr=False)
    _texts: dict[str, str] = field(default_factory=dict, repr=False)

    def publish(self, transitions: Sequence[StageTransition], handoffs: Sequence[Handoff],
                breaches: Sequence[SlaBreach]) -> None:
        if self.keep:
            self.transitions += transitions
            self.handoffs += handoffs
            self.breaches += breaches
        outcomes = self.breach_outcomes
        for b in breaches:
            prior = outcomes.get(b.breach_id)
            status = b.status.value
            if prior is not None and prior[3] == SlaBreachStatus.MET_LATE.value:
                status = prior[3]
            outcomes[b.breach_id] = (b.account_id, b.sla_id, b.started_at, status)
        if self.sink is not None:
            pending = self._pending
            pending += transitions
            pending += handoffs
            pending += breaches
            if len(pending) >= SINK_BATCH:
                self.flush()

    def note_trigger(self, transition: StageTransition, event: LifecycleEvent) -> None:
        if self.keep:
            self.triggers[transition.transition_id] = event
        text = f"{matched_rule(self.journey, transition.to_stage, event)} by {event.kind}"
        self.entry_rules[transition.transition_id] = self._texts.setdefault(text, text)

    def flush(self) -> None:
        """Hand what is pending to the sink."""
        if self.sink is not None and self._pending:
            pending, self._pending = self._pending, []
            self.sink(pending)


def matched_rule(journey: JourneyDefinition, stage_id: str, event: LifecycleEvent) -> str:
    """Which of the stage's entry criteria the event satisfies, as the journey file names it."""
    for i, stage in enumerate(journey.stages):
        if stage.id == stage_id:
            for j, criterion in enumerate(stage.entry):
                if criterion.matches(event):
                    where = f" where {criterion.where}" if criterion.where else ""
                    return f"stages[{i}].entry[{j}] ({criterion.kind}{where})"
    return "no entry rule of the stage (inferred on a jump)"


@dataclass
class ReplayStats:
    records: int = 0
    events: int = 0
    dead_letters: list[DeadLetter] = field(default_factory=list)
    ignored: int = 0
    cpu: StageCpu = field(default_factory=lambda: StageCpu())


@dataclass
class StageCpu:
    """CPU seconds per step of the worker, as this driver spends them (``lifecycle bench`` prints
    them per record: the lean core's budget, step by step)."""

    parse: float = 0.0       # raw message → canonical events (vendor parsers, envelope, checks)
    merge: float = 0.0       # the rest: the event-time merge, identity, numbering, routing
    accounts: float = 0.0    # the account partitions: engine, SLA, handoffs, merges, the clock


class AccountPartitions:
    """The accounts agent of every partition for one journey, with dicts as its tables."""

    def __init__(self, journey: JourneyDefinition, partitions: int, wall: Callable[[], datetime],
                 sink: Sink | None = None) -> None:
        self.out = ReplayOutput(journey, keep=sink is None, sink=sink)
        self.logic = AccountLogic(journey, clock=wall)
        self._partition = _partitioner(partitions)
        self.partitions = [PartitionLogic(self.logic, p, self._partition) for p in range(partitions)]
        self.queues: list[deque[AccountMessage]] = [deque() for _ in range(partitions)]
        self.accounts: dict[str, AccountState] = self.out.accounts
        self.journals: JsonTable[LifecycleEvent] = JsonTable(LifecycleEvent)
        self.deadlines: dict[str, float] = {}
        self.progress: dict[str, Any] = {}
        self.cpu_seconds = 0.0   # spent in the account partitions (StageCpu.accounts)

    def route(self, messages: Iterable[AccountMessage]) -> None:
        queues = self.queues
        for message in messages:
            queues[self._partition(message.account_id)].append(message)

    def drain(self) -> None:
        """Process every queue round-robin, in partition order, until no message is left."""
        queues = self.queues
        while any(queues):
            for p, queue in enumerate(queues):
                if queue:
                    batch = list(queue)
                    queue.clear()
                    self._process(p, batch)

    def clock(self, now: datetime) -> None:
        """The ingest step's "caught up": the wall clock reading to every partition."""
        for queue in self.queues:
            queue.append(AccountMessage(type="clock", account_id="", now=now))
        self.drain()

    def _process(self, partition: int, batch: list[AccountMessage]) -> None:
        started = process_time()
        result = self.partitions[partition].process(batch, self.accounts, self.journals, self.deadlines,
                                                    self.progress)
        out = self.out
        for emitted in result.emitted:
            outputs, message = emitted.outputs, emitted.message
            for tr in outputs.transitions:
                trigger = _trigger(tr.trigger_event_id, message)
                if trigger is not None:
                    out.note_trigger(tr, trigger)
            out.publish(outputs.transitions, outputs.handoffs, outputs.breaches)
        if result.forward:
            self.route(result.forward)
        _write(self.accounts, result.states)
        _write(self.journals, result.journals)
        _write(self.deadlines, result.deadlines)
        _write(self.progress, result.logs)
        self.cpu_seconds += process_time() - started


class _IdentityGroup:
    """One identity resolver (dict tables, its own seq numbers) and the journeys it feeds."""

    def __init__(self, config: IdentityConfig, partitions: int) -> None:
        self.config = config
        self.resolver = IdentityResolver(config, {}, {})
        self.sent = Counters()
        self.partition = _partitioner(partitions)
        self.runs: list[AccountPartitions] = []
        self.outbox: list[AccountMessage] = []
        self.merges: list[AccountMerged] = []   # what the worker publishes on lifecycle.identity

    def flush(self) -> None:
        outbox, self.outbox = self.outbox, []
        for run in self.runs:
            run.route(outbox)
            run.drain()


class OfflinePipeline:
    """Replays recorded raw partitions through the worker's steps for one or more journeys."""

    def __init__(self, journeys: Sequence[JourneyDefinition], *, now: datetime, partitions: int = 4,
                 accept_test_mode: bool = False, allowed_lateness_seconds: float = 0.0,
                 until: datetime | None = None, future_skew: timedelta = DEFAULT_FUTURE_SKEW,
                 sinks: Sequence[Sink | None] | None = None) -> None:
        """``sinks``: per journey, where its published records go in batches (None: kept in
        the output's lists)."""
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        self.now = now
        self.clock_at = now - timedelta(seconds=allowed_lateness_seconds)
        if until is not None:
            self.clock_at = min(self.clock_at, until)
        self.until = until
        self.accept_test_mode = accept_test_mode
        self.future_skew = future_skew
        self.stats = ReplayStats()
        self.groups: list[_IdentityGroup] = []
        self.runs: list[AccountPartitions] = []
        for i, journey in enumerate(journeys):
            group = next((g for g in self.groups if g.config == journey.identity), None)
            if group is None:
                group = _IdentityGroup(journey.identity, partitions)
                self.groups.append(group)
            run = AccountPartitions(journey, partitions, lambda: now, sinks[i] if sinks else None)
            group.runs.append(run)
            self.runs.append(run)

    def run(self, sources: Mapping[SourceKey, Iterable[RawInput]],
            progress: Callable[[int], None] | None = None) -> list[ReplayOutput]:
        """Everything recorded in ``sources`` (each in offset order), then the clock; one
        output per journey, in the order given. ``progress`` is told how many records were read."""
        started = process_time()
        with relaxed_gc():
            try:
                return self._run(sources, progress)
            finally:
                cpu = self.stats.cpu
                cpu.accounts = sum(run.cpu_seconds for run in self.runs)
                cpu.merge = process_time() - started - cpu.parse - cpu.accounts

    def _run(self, sources: Mapping[SourceKey, Iterable[RawInput]],
             progress: Callable[[int], None] | None) -> list[ReplayOutput]:
        merge: SourceMerge[SourceKey, _Released] = SourceMerge(order=lambda key: key)
        readers = {key: iter(records) for key, records in sources.items()}
        queued = dict.fromkeys(readers, 0)
        exhausted: set[SourceKey] = set()
        for key in sorted(readers):
            merge.add_partition(key)
        while True:
            for key, reader in readers.items():
                if not queued[key] and key not in exhausted:
                    read, records = self._refill(merge, key, reader)
                    queued[key] += records
                    if read < REFILL:
                        exhausted.add(key)
                    if progress is not None and records:
                        progress(records)
            released = False
            for key, (events, raw) in merge.pop_ready(exhausted.__contains__):
                queued[key] -= 1
                released = True
                self._release(events, raw)
            if not released and len(exhausted) == len(readers) and not len(merge):
                break
        for group in self.groups:
            group.flush()
            for run in group.runs:
                run.clock(self.clock_at)
                run.out.flush()
                run.out.merges = group.merges
        return [run.out for run in self.runs]

    def _refill(self, merge: SourceMerge[SourceKey, _Released], key: SourceKey,
                reader: Iterator[RawInput]) -> tuple[int, int]:
        """Parse up to ``REFILL`` messages of one partition into the merge (``agents.ingest.Ingest.run``);
        returns (messages read, records pushed)."""
        n = items = 0
        stats, until = self.stats, self.until
        for raw in reader:
            n += 1
            started = process_time()
            parsed = parse_message(raw.value, raw.topic, f"{raw.topic}/{raw.partition}/{raw.offset}", now=self.now,
                                   accept_test_mode=self.accept_test_mode, future_skew=self.future_skew)
            stats.cpu.parse += process_time() - started
            for record in parsed.records:
                if record.dead_letter is not None:
                    stats.dead_letters.append(record.dead_letter)
                elif record.ignored is not None:
                    stats.ignored += 1
            stats.records += len(parsed.records)
            for events in parsed.events:  # each record one item of the merge
                if until is not None:
                    events = [s for s in events if s.event.occurred_at < until]
                merge.push(key, Item(parsed.first(events), (events, raw)))
                items += 1
            if n >= REFILL:
                break
        return n, items

    def _release(self, events: list[Sourced], raw: RawInput) -> None:
        """One released record's events, in event time, through every identity group
        (``Ingest._release``/``_resolve``)."""
        if not events:
            return
        self.stats.events += len(events)
        for i, group in enumerate(self.groups):
            for sourced in events:
                ev = sourced.event
                assert isinstance(ev, LifecycleEvent)  # parsed here, not read from a parsed topic
                # Each group resolves its own copy: resolution writes the account id into the event.
                ev = ev if i == 0 else ev.model_copy()
                resolved = resolve_event(group.resolver, ev)
                if resolved.unresolvable is not None and i == 0:
                    self.stats.dead_letters.append(unresolvable_letter(sourced, resolved.unresolvable,
                                                                       topic=raw.topic, now=self.now))
                if resolved.account_id is None:
                    continue
                for message in (*resolved.merges, AccountMessage(type="event", account_id=resolved.account_id, event=ev)):
                    if message.type == "merge_out" and message.merge is not None:
                        group.merges.append(message.merge)
                    message.origin, message.seq = INGEST_ORIGIN, group.sent.next(group.partition(message.account_id))
                    group.outbox.append(message)
            if len(group.outbox) >= FLUSH_AT:
                group.flush()


def _trigger(event_id: str, message: AccountMessage) -> LifecycleEvent | None:
    """The event behind a transition: the message's own, or one of a merged journal's."""
    if message.event is not None and message.event.event_id == event_id:
        return message.event
    for event in message.journal:
        if event.event_id == event_id:
            return event
    return None


def _write(table: MutableMapping[str, Any], changes: Mapping[str, Any]) -> None:
    """A batch's changes to one table: a value sets its key, None deletes it (as the worker's ``_write``)."""
    for key, value in changes.items():
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
