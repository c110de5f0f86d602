"""What flows on the parsed topics (``lifecycle.parsed.<source>.<partition>``).

The parse stage runs on every worker, over the raw partitions it owns; the event-time merge
and identity run on one. Between them, each raw partition has its own one-partition parsed
topic, so Faust assigns all of them to the one worker that merges, and each keeps its own
commit (``pipeline.agents.ingest``). Internal to the pipeline, but versioned like the rest
of the contract.

A parsed message is a raw message's canonical events, or, with no ``offset``, a marker: the
parser has read its raw partition to ``position`` and the partition ended at ``highwater``.
The merge counts a raw partition as read to its end only from these reports, because the
merge itself never reads the raw topic.

A parsed message can be larger than its raw message (a vendor payload that carries many
events; a record's original bytes beside its events, where identity resolution may need them
for a dead letter), so the parsed topics are created with ``max.message.bytes`` of
``schemas.topics.LARGE_MESSAGE_BYTES`` and the worker's producer allows that much.
"""

from __future__ import annotations

from pydantic import Field

from schemas.base import Record
from schemas.events import LifecycleEvent


class ParsedRecord(Record):
    """One raw record's accepted events, in event time (a record without any is not sent)."""

    index: int = Field(description="The record's place in its raw message (a batch of records)")
    original: str | None = Field(default=None, description=(
        "The record's own bytes, for a dead letter at identity resolution: carried only when one of its "
        "events has no identifier resolution may use (``core.identity.UsableIdentifiers``), the one case "
        "that dead-letters there; None otherwise (most records: the bytes would double the message)"))
    events: list[LifecycleEvent]


class ParsedBatch(Record):
    """One raw message parsed, or a marker (``offset`` None). ``position`` and ``highwater``:
    the parser's next raw offset after this message, and the raw partition's end as its
    consumer last saw it; the partition is read to its end once ``position >= highwater``."""

    offset: int | None = Field(default=None, description="The raw message's offset; None for a marker")
    after: int | None = Field(default=None, description=(
        "The parser's position before this message: its previous message's position, or where it started "
        "reading. A merge that has taken less has missed a message and takes none after it until the parser "
        "sends them again (None: a parser of an earlier version)"))
    position: int
    highwater: int
    records: int = Field(default=0, description="Records in the raw message (dead-lettered and ignored ones too)")
    parsed: list[ParsedRecord] = Field(default_factory=list)
