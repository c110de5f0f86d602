"""The ingest step's logic, without Kafka: a raw message's bytes (a batch of records,
``schemas.raw_batch``) → each record's canonical events (or a dead letter, or "ignored"), and an
event → the account messages and identity facts it causes.

The worker and the offline what-if replay call these same functions, so a replay of the
recorded history goes down exactly the worker's path.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, NamedTuple

import orjson
from pydantic import ValidationError

from connectors.base import Ignored, ParseError
from connectors.registry import is_test_mode, parse_raw
from pipeline.core.identity import IdentityResolver, UnresolvableEvent, UsableIdentifiers
from pipeline.core.numbering import origin
from schemas.accounts import AccountMessage
from schemas.base import dumps
from schemas.events import DeadLetter, LifecycleEvent, RawRecord, SourceKind
from schemas.identity import AccountMerged, IdentityDecision
from schemas.parsed import ParsedBatch, ParsedRecord
from schemas.raw_batch import unpack

log = logging.getLogger(__name__)

INGEST_ORIGIN = origin("ingest")   # the ingest step's messages on the account topic (core.numbering)


@dataclass(frozen=True)
class Parsed:
    """What one raw record became. ``outcome`` and ``source`` are the metric labels."""

    outcome: Literal["accepted", "dead_letter", "ignored"]
    source: str
    events: list[LifecycleEvent] = field(default_factory=list)
    dead_letter: DeadLetter | None = None
    ignored: tuple[str, str] | None = None  # (vendor, type) of a payload with no lifecycle meaning


DEFAULT_FUTURE_SKEW = timedelta(hours=1)   # Settings.future_skew_seconds' default


def parse_record(value: bytes, topic: str, origin: str, *, now: datetime, accept_test_mode: bool,
                 future_skew: timedelta = DEFAULT_FUTURE_SKEW) -> Parsed:
    """One raw record → its canonical events. Stateless; never raises for bad input.

    An event dated beyond ``now + future_skew`` is dead-lettered (``future_event_time``): its
    time would move the SLA clock (the partition's event-time watermark) ahead of the wall
    clock and fire every deadline up to that date. Sources whose own policy corrects client
    clocks (Segment's sentAt/receivedAt) have done so in their parser, before this check."""
    source = topic.rsplit(".", 1)[-1]
    try:
        raw = RawRecord.model_validate_json(value)
    except ValidationError as exc:
        return _dead(source, DeadLetter.build(stage="decode", reason="invalid_envelope", detail=_short(exc),
                                              original=value, failed_at=now, source_topic=topic,
                                              origin_ref=origin))
    source = raw.source.value

    def dead(reason: str, detail: str) -> Parsed:
        return _dead(source, DeadLetter.build(stage="parse", reason=reason, detail=detail, original=value,
                                              failed_at=now, source_topic=topic, source=source,
                                              vendor=raw.vendor, origin_ref=origin))

    try:
        canonical = parse_raw(raw)
    except Ignored as exc:
        log.debug("ignored %s %s (%s): %s", raw.vendor, exc.type, raw.event_id, exc.detail)
        return Parsed("ignored", source, ignored=(raw.vendor, exc.type))
    except ParseError as exc:
        return dead(exc.reason, exc.detail)
    except Exception as exc:  # a parser bug must not stop the stream
        log.exception("parser %s failed on %s", raw.vendor, raw.event_id,
                      extra={"event_id": raw.event_id, "vendor": raw.vendor, "topic": topic})
        return dead("parser_error", f"{type(exc).__name__}: {exc}")
    if not accept_test_mode and is_test_mode(raw, canonical):
        return dead("test_mode", "test-mode event (e.g. livemode=false); set LIFECYCLE_ACCEPT_TEST_MODE=1 to accept")
    future = [e for e in canonical if e.occurred_at > now + future_skew]
    if future:
        first = min(future, key=lambda e: e.occurred_at)
        return dead("future_event_time", f"event {first.event_id} ({first.kind}) is dated {first.occurred_at.isoformat()}, "
                                         f"beyond now {now.isoformat()} + {future_skew} (LIFECYCLE_FUTURE_SKEW_SECONDS)")
    return Parsed("accepted", source, events=canonical)


class Link(NamedTuple):
    a: str
    b: str
    reason: str


@dataclass(slots=True)
class MergeEvent:
    """A canonical event as the merge holds it: what identity reads (``core.identity.ResolvableEvent``)
    beside the event's JSON object as the parse stage wrote it. Not validated again: the parse
    stage built it as a ``LifecycleEvent``, and it goes on to the account topic as it came."""

    body: dict[str, Any]
    event_id: str
    occurred_at: datetime
    identifiers: list[str]
    links: list[Link]
    account_id: str | None = None

    @classmethod
    def of(cls, body: dict[str, Any]) -> MergeEvent:
        return cls(body, body["event_id"], datetime.fromisoformat(body["occurred_at"]).astimezone(timezone.utc),
                   body["identifiers"], [Link(link["a"], link["b"], link["reason"]) for link in body["links"]])

    @property
    def source(self) -> SourceKind:
        return SourceKind(self.body["source"])

    def message(self, account_id: str, origin: str, seq: int) -> bytes:
        """Its ``AccountMessage`` JSON (type ``event``) on the account topic, in ``account_id``."""
        self.body["account_id"] = self.account_id = account_id
        return orjson.dumps({"type": "event", "account_id": account_id, "origin": origin, "seq": seq,
                             "event": self.body})


@dataclass(frozen=True)
class Sourced:
    """An accepted event and the raw record it came from (kept for a dead letter at resolution;
    None where the parse stage did not carry it, see ``to_parsed``)."""

    event: LifecycleEvent | MergeEvent
    original: bytes | None
    origin: str


@dataclass(frozen=True)
class ParsedMessage:
    """What one raw-topic message became: each record's ``Parsed`` and, per record, its accepted
    events in event time. Each record is one item of the event-time merge (at its oldest
    event's time); the message is the unit of acknowledgement."""

    records: list[Parsed]
    events: list[list[Sourced]]   # per record

    @staticmethod
    def first(events: list[Sourced]) -> datetime | None:
        """A record's place in the event-time merge: its oldest event's time."""
        return events[0].event.occurred_at if events else None


def parse_message(value: bytes, topic: str, where: str, *, now: datetime, accept_test_mode: bool,
                  future_skew: timedelta = DEFAULT_FUTURE_SKEW) -> ParsedMessage:
    """A raw-topic message at ``where`` (``topic/partition/offset``) → its records' outcomes.
    Record ``i`` of a batch of several is ``where:i`` in dead letters; a lone record is ``where``."""
    lines = unpack(value)
    records, events = [], []
    for i, line in enumerate(lines):
        origin = where if len(lines) == 1 else f"{where}:{i}"
        parsed = parse_record(line, topic, origin, now=now, accept_test_mode=accept_test_mode,
                              future_skew=future_skew)
        records.append(parsed)
        events.append(sorted((Sourced(ev, line, origin) for ev in parsed.events),
                             key=lambda s: s.event.occurred_at))
    return ParsedMessage(records, events)


def to_parsed(parsed: ParsedMessage, offset: int, highwater: int, after: int | None = None,
              usable: UsableIdentifiers | None = None) -> ParsedBatch:
    """A parsed raw message as the parse stage sends it to the merge (``schemas.parsed``):
    the records with accepted events only, each with its place in the message, and its bytes
    where identity resolution will dead-letter one of its events (``usable``: the worker's
    identity settings; None: always). ``after``: the parser's position before it."""
    def original(events: list[Sourced]) -> str | None:
        if usable is not None and all(usable.resolvable(s.event.identifiers) for s in events):
            return None
        return events[0].original.decode() if events[0].original is not None else None

    return ParsedBatch(offset=offset, after=after, position=offset + 1, highwater=highwater, records=len(parsed.records),
                       parsed=[ParsedRecord(index=i, original=original(events), events=[s.event for s in events])
                               for i, events in enumerate(parsed.events) if events])


@dataclass(frozen=True)
class ParsedWire:
    """One raw message parsed, as the parse agent hands it on: its parsed message's bytes
    (``schemas.parsed.ParsedBatch``), the dead letters to send, and the counts for the metrics.
    Plain and picklable, so the parse can run in another process (``pipeline.parse_pool``);
    ``cpu``: the CPU seconds the parse took there."""

    value: bytes
    position: int
    highwater: int
    dead_letters: list[DeadLetter]
    ingested: dict[tuple[str, str], int]   # (source, outcome) → records
    ignored: dict[tuple[str, str], int]    # (vendor, type) → records with no lifecycle meaning
    kinds: dict[str, int]                  # canonical event kind → events
    cpu: float = 0.0


def parse_to_wire(value: bytes, topic: str, partition: int, offset: int, highwater: int, after: int | None, *,
                  now: datetime, accept_test_mode: bool, future_skew: timedelta,
                  usable: UsableIdentifiers) -> ParsedWire:
    """The parse agent's whole step for the raw message at ``topic/partition/offset``:
    ``parse_message`` then ``to_parsed``, encoded."""
    parsed = parse_message(value, topic, f"{topic}/{partition}/{offset}", now=now,
                           accept_test_mode=accept_test_mode, future_skew=future_skew)
    batch = to_parsed(parsed, offset, highwater, after=after, usable=usable)
    return ParsedWire(
        value=dumps(batch), position=batch.position, highwater=batch.highwater,
        dead_letters=[r.dead_letter for r in parsed.records if r.dead_letter is not None],
        ingested=dict(Counter((r.source, r.outcome) for r in parsed.records)),
        ignored=dict(Counter(r.ignored for r in parsed.records if r.ignored is not None)),
        kinds=dict(Counter(s.event.kind for events in parsed.events for s in events)))


@dataclass(frozen=True, slots=True)
class Arrived:
    """A parsed message as the merge reads it: ``schemas.parsed.ParsedBatch``, decoded with orjson
    and not validated again (the parse stage wrote it from validated models)."""

    offset: int | None
    after: int | None
    position: int
    highwater: int
    records: int
    parsed: list[dict[str, Any]]

    @classmethod
    def of(cls, value: bytes) -> Arrived:
        """Raises ValueError, KeyError or TypeError for a value that is not a parsed message."""
        data = orjson.loads(value)
        return cls(data["offset"], data.get("after"), data["position"], data["highwater"], data["records"],
                   data["parsed"])

    def sourced(self, where: str) -> list[list[Sourced]]:
        """Each carried record's events, in event time, with the record's bytes and origin as
        ``parse_message`` named them (``where``: the raw message)."""
        out = []
        for record in self.parsed:
            origin = where if self.records == 1 else f"{where}:{record['index']}"
            original = record.get("original")
            original = original.encode() if original is not None else None
            out.append([Sourced(MergeEvent.of(body), original, origin) for body in record["events"]])
        return out


def unresolvable_letter(sourced: Sourced, detail: str, *, topic: str, now: datetime) -> DeadLetter:
    """The dead letter of an event with no usable identifier: its record's bytes, the event named.
    Without the bytes (a parse stage under other identity settings found the event resolvable
    and did not carry them), the canonical event stands in for them, and the detail says so."""
    ev = sourced.event
    original = sourced.original
    if original is None:
        original = orjson.dumps(ev.body) if isinstance(ev, MergeEvent) else ev.to_json()
        detail += " (the record's bytes were not carried to identity resolution: this is its canonical event)"
    return DeadLetter.build(stage="resolve", reason="no_usable_identifier", detail=detail, original=original,
                            failed_at=now, source_topic=topic, source=ev.source.value,
                            origin_ref=f"{sourced.origin}#{ev.event_id}")


@dataclass(frozen=True)
class Resolved:
    """What resolving one event causes: its account (None: the reason is ``unresolvable``), the
    merge messages that go before the event's own on the account topic, identity facts to
    publish (key, record) on the identity topic. ``rules``: the rule of each identity decision,
    for the worker's metrics (the core counts nothing)."""

    account_id: str | None
    merges: list[AccountMessage]
    facts: list[tuple[str, IdentityDecision | AccountMerged]]
    unresolvable: str | None = None
    rules: tuple[str, ...] = ()


def resolve_event(resolver: IdentityResolver, ev: LifecycleEvent | MergeEvent) -> Resolved:
    """Resolve an event to one account (the identity state changes here, so call in merged
    order); a merge becomes merge_out to the losing account and merge_wait to the survivor,
    both before the event itself."""
    try:
        resolution = resolver.resolve(ev)
    except UnresolvableEvent as exc:
        return Resolved(None, [], [], unresolvable=str(exc))
    facts: list[tuple[str, IdentityDecision | AccountMerged]] = [(d.identifier, d) for d in resolution.decisions]
    merges = []
    for merge in resolution.merges:
        facts.append((merge.from_account, merge))
        merges.append(AccountMessage(type="merge_out", account_id=merge.from_account, merge=merge))
        merges.append(AccountMessage(type="merge_wait", account_id=merge.into_account, merge=merge))
    ev.account_id = resolution.account_id
    return Resolved(resolution.account_id, merges, facts, rules=tuple(d.rule.value for d in resolution.decisions))


def _dead(source: str, letter: DeadLetter) -> Parsed:
    return Parsed("dead_letter", source, dead_letter=letter)


def _short(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors()[:5])
