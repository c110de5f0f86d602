"""The raw topics' message format: a batch of raw records, one JSON document per line.

A message on ``lifecycle.raw.<source>`` holds one or more ``RawRecord`` JSON documents
separated by ``\\n`` (NDJSON). A single record is a batch of one, so any producer that
writes one ``RawRecord`` per message keeps working. Why batches: Faust's cost per
message (about 400 µs here) is paid once per batch instead of once per vendor event.

Each record keeps its own bytes (a line is exactly what ``RawRecord.to_json`` wrote), so a
dead letter carries the record, not the batch. Connectors batch per raw-topic partition
(records keyed by the vendor object's ordering key, ``RecordSink.key_of``), up to
``MAX_RECORDS`` records or ``MAX_BYTES`` bytes or the connector's linger time, whichever
comes first. A record is never split across messages; one larger than ``MAX_BYTES`` travels
alone. The pipeline's unit of work and of commit is the message: a batch is parsed into one
parsed message (``pipeline.agents.parse``), whose records are merged, resolved and acknowledged
together (``pipeline.agents.ingest``).

Headers (informative; the pipeline reads only the value): ``content-type:
application/x-ndjson`` and ``records: <n>``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import orjson
from kafka.partitioner.default import murmur2

SEPARATOR = b"\n"
CONTENT_TYPE = b"application/x-ndjson"
MAX_RECORDS = 500
MAX_BYTES = 512 * 1024


def pack(records: Sequence[bytes]) -> bytes:
    """One message holding ``records`` (each a single-line JSON document)."""
    return SEPARATOR.join(map(_one_line, records))


def _one_line(record: bytes) -> bytes:
    if SEPARATOR in record:
        raise ValueError("a raw record must be one line of JSON (RawRecord.to_json never breaks lines)")
    return record


def unpack(value: bytes) -> list[bytes]:
    """A message's records, in order. A value that is not NDJSON (e.g. one pretty-printed JSON
    document from another producer) is one record, so it is dead-lettered, if at all, whole."""
    if SEPARATOR not in value:
        return [value]
    lines = [line for line in value.split(SEPARATOR) if line.strip()]
    # A record's line is a whole object ({...}); checking the brackets costs nothing, so the
    # full parse of the value runs only for input that is not NDJSON of objects.
    if not all(_looks_whole(line) for line in lines) and _is_document(value):
        return [value]
    return lines or [value]


def _looks_whole(line: bytes) -> bool:
    line = line.strip()
    return line[:1] == b"{" and line[-1:] == b"}"


def headers(count: int) -> list[tuple[str, bytes]]:
    return [("content-type", CONTENT_TYPE), ("records", str(count).encode())]


@functools.lru_cache(maxsize=1 << 16)
def partition_for(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2 of the key over a topic's ``partitions``), as every
    client computes it: a vendor object's records, or an account's messages, land in one
    partition, in order, whoever produced them. Cached: kafka-python's murmur2 is pure Python
    (4% of the stream worker's CPU), and the same accounts and objects come back all the time."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def _is_document(data: bytes) -> bool:
    try:
        return isinstance(orjson.loads(data), dict)
    except orjson.JSONDecodeError:
        return False


@dataclass
class Batch:
    """Records on their way to one raw-topic partition, packed as they arrive.

    The records are appended to one buffer rather than kept as objects: an ``orjson.dumps``
    result keeps its whole write buffer (8 KiB for a 1 KB record), so a list of them costs
    several times the batch (a replay with thousands of records in flight grew by 40 MB)."""

    topic: str
    partition: int
    key: bytes                    # the first record's key (the partition was chosen from it)
    count: int = 0
    buffer: bytearray = field(default_factory=bytearray)

    @property
    def size(self) -> int:
        return len(self.buffer)

    def fits(self, record: bytes) -> bool:
        return self.count < MAX_RECORDS and self.size + len(record) + 1 <= MAX_BYTES

    def add(self, record: bytes) -> None:
        if self.count:
            self.buffer += SEPARATOR
        self.buffer += _one_line(record)
        self.count += 1

    def value(self) -> bytes:
        return bytes(self.buffer)


class Batcher:
    """Groups records into batches per (topic, partition), in arrival order. Pure: the caller
    decides when an open batch is due (its linger) and sends what ``add`` and ``close`` return."""

    def __init__(self) -> None:
        self.open: dict[tuple[str, int], Batch] = {}

    def add(self, topic: str, partition: int, key: bytes, record: bytes) -> tuple[Batch, Batch | None]:
        """Queue one record; returns its batch and a batch that was closed to make room (or None)."""
        target = (topic, partition)
        batch = self.open.get(target)
        closed = None
        if batch is not None and not batch.fits(record):
            closed = self.open.pop(target)
            batch = None
        if batch is None:
            batch = self.open[target] = Batch(topic, partition, key)
        batch.add(record)
        if batch.count >= MAX_RECORDS and closed is None:
            closed = self.open.pop(target)
        return batch, closed

    def close(self, batch: Batch) -> Batch | None:
        """Take ``batch`` out if it is still open (a linger firing after it filled returns None)."""
        target = (batch.topic, batch.partition)
        if self.open.get(target) is batch:
            return self.open.pop(target)
        return None

    def close_all(self) -> list[Batch]:
        batches, self.open = list(self.open.values()), {}
        return batches


def batched(messages: Iterable[tuple[str, int, bytes, bytes]]) -> Iterator[Batch]:
    """(topic, partition, key, record) in order → full batches, then the rest: what a connector
    writes when records arrive faster than its linger (a replay, a preload)."""
    batcher = Batcher()
    for topic, partition, key, record in messages:
        _, closed = batcher.add(topic, partition, key, record)
        if closed is not None:
            yield closed
    yield from batcher.close_all()
