"""Where a what-if's history comes from: the retained raw topics, or export files.

Either way the records land in a :class:`Spool`, one file per raw partition in offset
order, so a history larger than memory replays in constant memory and can be read
again. Kafka is read without a consumer group (manual assignment, nothing committed,
nothing written); export files go through the file-replay connector's own readers
(``connectors.replay.replay_file``) with a sink that spools instead of producing, so
a file becomes exactly the raw records a backfill would have put on the topics.
"""

from __future__ import annotations

import asyncio
import struct
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from connectors.replay import ReplaySummary, replay_file
from connectors.sink import RecordSink
from pipeline.offline import RawInput, SourceKey
from schemas.raw_batch import unpack
from schemas.topics import DEFAULT
from schemas.base import utcnow
from schemas.events import DeadLetter, RawRecord, SourceKind

_HEADER = struct.Struct(">qI")   # offset, value length
Progress = Callable[[int], None]


class Spool:
    """Raw messages (batches of records) per (topic, partition) in temporary files; iterate with :meth:`sources`."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="lifecycle-whatif-", dir=directory)
        self._files: dict[SourceKey, IO[bytes]] = {}
        self.counts: dict[SourceKey, int] = {}
        self._records = 0

    def append(self, topic: str, partition: int, offset: int, value: bytes) -> None:
        key = (topic, partition)
        fh = self._files.get(key)
        if fh is None:
            fh = self._files[key] = open(Path(self._dir.name) / f"{topic}-{partition}.bin", "w+b")
            self.counts[key] = 0
        fh.write(_HEADER.pack(offset, len(value)))
        fh.write(value)
        self.counts[key] += 1
        self._records += len(unpack(value))  # a raw message is a batch of records (schemas.raw_batch)

    def add(self, topic: str, value: bytes) -> None:
        """Append to partition 0 of a single-partition topic at the next offset (as a producer would)."""
        self.append(topic, 0, self.counts.get((topic, 0), 0), value)

    @property
    def records(self) -> int:
        """Raw records held (``counts``: raw messages per partition)."""
        return self._records

    def sources(self) -> dict[SourceKey, Iterator[RawInput]]:
        """One reader per partition, each in offset order; may be called again for another pass."""
        for fh in self._files.values():
            fh.flush()
        return {key: read_partition(key, path) for key, path in self.paths().items()}

    def paths(self) -> dict[SourceKey, str]:
        """Each partition's file (flushed), in partition order: another process reads them
        with :func:`read_partition` while the spool is open."""
        for fh in self._files.values():
            fh.flush()
        return {key: self._files[key].name for key in sorted(self._files)}

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._dir.cleanup()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_partition(key: SourceKey, path: str) -> Iterator[RawInput]:
    """One spooled partition's records, in offset order."""
    topic, partition = key
    with open(path, "rb", buffering=1 << 20) as fh:
        header, size = fh.read, _HEADER.size
        while chunk := header(size):
            offset, length = _HEADER.unpack(chunk)
            yield RawInput(topic, partition, offset, fh.read(length))


# ---- Kafka ------------------------------------------------------------------------------------
def spool_topics(bootstrap: str, spool: Spool, topics: Sequence[str] = tuple(DEFAULT.raw.values()),
                 progress: Progress | None = None) -> int:
    """Every record of the raw topics (``Topics.raw`` of the deployment's namespace), from the
    beginning to their end now, into ``spool``.

    kafka-python with manual assignment and no group: no commit, no rebalance, no trace on
    the cluster. Returns the number of records read."""
    from kafka import KafkaConsumer, TopicPartition

    from pipeline.kafka_clients import client_kwargs
    from pipeline.topic_reads import READ_FETCH, true_end_offsets

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **READ_FETCH,
                             **client_kwargs())
    try:
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        end = true_end_offsets(consumer, tps)
        remaining = {tp for tp in tps if end[tp] > 0}
        if not remaining:
            return 0
        consumer.assign(sorted(remaining))
        consumer.seek_to_beginning(*remaining)
        read = 0
        while remaining:
            for tp, messages in consumer.poll(timeout_ms=500, max_records=50_000).items():
                for m in messages:
                    if m.offset < end[tp]:
                        spool.append(tp.topic, tp.partition, m.offset, m.value)
                        read += 1
                if messages:
                    if progress is not None:
                        progress(len(messages))
                    if messages[-1].offset + 1 >= end[tp]:
                        remaining.discard(tp)
                        consumer.pause(tp)
        return read
    finally:
        consumer.close()


# ---- export files ---------------------------------------------------------------------------------
class SpoolSink(RecordSink):
    """The connector sink with the spool in place of Kafka: ``replay_file`` runs unchanged."""

    def __init__(self, spool: Spool) -> None:
        super().__init__("offline", topics=DEFAULT)  # names only order the offline merge: any namespace
        self.spool = spool
        self.dead_letters: list[DeadLetter] = []

    async def start(self, timeout: float = 30.0) -> SpoolSink:
        return self

    async def stop(self) -> None:
        return None

    async def flush(self) -> None:
        return None

    async def send(self, record: RawRecord) -> asyncio.Future[Any]:
        self.spool.add(self.topics.raw[SourceKind(record.source)], record.to_json())
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def dead_letter(self, *, reason: str, detail: str, original: bytes | str, vendor: str | None,
                          transport: str, source: str | None = None, stage: str = "connector",
                          origin_ref: str = "", wait: bool = True) -> DeadLetter:
        letter = DeadLetter.build(stage=stage, reason=reason, detail=f"{transport}: {detail}", original=original,
                                  failed_at=utcnow(), source=source, vendor=vendor, origin_ref=origin_ref)
        self.dead_letters.append(letter)
        return letter


def export_files(paths: Sequence[str | Path]) -> list[Path]:
    """Files named directly, and every file inside named directories (sorted, hidden ones skipped)."""
    out: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        else:
            out.append(path)
    return out


def vendor_from_name(path: Path, vendors: Sequence[str]) -> str | None:
    """The one known vendor a file's name mentions (``stripe-events.ndjson``), if exactly one."""
    named = [v for v in vendors if v in path.name.lower()]
    return named[0] if len(named) == 1 else None


def spool_files(paths: Sequence[str | Path], spool: Spool, vendor: str | None = None,
                progress: bool = False) -> list[ReplaySummary]:
    """Each export through the file-replay connector into ``spool``, in the order given.

    A vendor export (NDJSON, JSON array) needs its vendor: ``vendor``, else the one its file
    name names; RawRecord JSONL names its own (``connectors.replay.detect_format``)."""
    from connectors.registry import vendors

    known = vendors()

    async def run() -> list[ReplaySummary]:
        sink = SpoolSink(spool)
        summaries = []
        for path in map(Path, paths):
            summaries.append(await replay_file(sink, path, vendor or vendor_from_name(path, known),
                                               progress=progress))
        return summaries

    return asyncio.run(run())
