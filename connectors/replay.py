"""File replay / backfill: a vendor export (or a recorded raw topic) streamed into Kafka.

Three layouts, told apart by the first bytes, all read incrementally so a
multi-GB export needs no more memory than a small one:

* ``ndjson``      one vendor payload (or delivery) per line, ``--vendor`` required;
* ``json-array``  one JSON array of payloads, parsed item by item with ijson, ``--vendor`` required;
* ``raw-records`` JSON lines of ``RawRecord`` (what ``pipeline/sample.py`` writes):
  each already names its vendor and is produced as recorded.

``.gz`` files are decompressed on the fly. Payloads are never altered: event time
comes from the payload, so a backfill lands in the past where it belongs and
re-running it produces the same event ids (idempotent downstream). A line that
cannot be used becomes a dead letter whose detail names the line; the run ends
with a :class:`ReplaySummary`. At most ``max_in_flight`` records wait for Kafka's
acknowledgement at any time.
"""

from __future__ import annotations

import gzip
import io
import logging
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import ijson
import orjson
from pydantic import ValidationError
from tqdm import tqdm

from connectors.sink import RecordSink, Submitted
from pipeline.metrics import CONNECTOR_UP
from schemas.events import RawRecord

log = logging.getLogger(__name__)

TRANSPORT = "file"
FileFormat = Literal["ndjson", "json-array", "raw-records"]
_RAW_RECORD_KEYS = frozenset({"source", "vendor", "event_id", "received_at", "payload"})


class ReplayError(Exception):
    """The file cannot be replayed at all (unknown layout, vendor missing)."""


@dataclass
class ReplaySummary:
    """What one replay did; ``ok`` is False if Kafka refused anything."""

    path: str
    format: str
    vendor: str | None
    items: int = 0          # lines / array items read
    records: int = 0        # raw records acknowledged by Kafka
    dead_letters: int = 0
    failed: int = 0         # records Kafka did not acknowledge
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def __str__(self) -> str:
        return (f"{self.path} ({self.format}{', ' + self.vendor if self.vendor else ''}): "
                f"{self.items} items → {self.records} records, {self.dead_letters} dead letters, "
                f"{self.failed} failed, {self.seconds:.1f}s, {self.rate:,.0f} records/s")


class _CountingReader(io.RawIOBase):
    """Counts bytes read from the file on disk, for the progress bar (also under gzip)."""

    def __init__(self, raw: IO[bytes]):
        self.raw = raw
        self.count = 0

    def readinto(self, buf: Any) -> int:
        n = self.raw.readinto(buf) or 0
        self.count += n
        return n

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.raw.close()
        super().close()


def _open(path: Path) -> tuple[IO[bytes], _CountingReader]:
    """A buffered byte stream over the file (gunzipped if it is gzip) and its byte counter."""
    raw = open(path, "rb", buffering=0)
    gz = raw.read(2) == b"\x1f\x8b"
    raw.seek(0)
    counter = _CountingReader(raw)
    buffered = io.BufferedReader(counter, 1 << 20)
    return (gzip.GzipFile(fileobj=buffered, mode="rb") if gz else buffered), counter


def detect_format(path: Path) -> FileFormat:
    """Look at the first non-blank bytes: ``[`` → array; a RawRecord object → raw-records; else NDJSON."""
    stream, counter = _open(path)
    try:
        # readline with a limit: a one-line multi-GB array must not be read whole here
        first_line = b""
        while not first_line:
            line = stream.readline(1 << 16)
            if not line:
                break
            first_line = line.strip()
        if first_line.startswith(b"["):
            return "json-array"
        try:
            first = orjson.loads(first_line) if first_line else None
        except orjson.JSONDecodeError:
            return "ndjson"
        if isinstance(first, dict) and _RAW_RECORD_KEYS <= first.keys():
            return "raw-records"
        return "ndjson"
    finally:
        stream.close()
        counter.close()


def _lines(stream: IO[bytes], name: str) -> Iterator[tuple[str, bytes]]:
    for number, line in enumerate(stream, 1):
        line = line.strip()
        if line:
            yield f"{name} line {number}", line


def _array_items(stream: IO[bytes], name: str) -> Iterator[tuple[str, Any]]:
    number = 0
    try:
        for number, item in enumerate(ijson.items(stream, "item", use_float=True), 1):
            yield f"{name} item {number}", item
    except ijson.JSONError as exc:
        # A broken array cannot be resynchronised: report where it broke, keep what came before.
        raise _BrokenArray(f"{name} item {number + 1}: the JSON array is malformed after item {number} ({exc})") from None


class _BrokenArray(Exception):
    pass


async def replay_file(sink: RecordSink, path: str | Path, vendor: str | None = None, *,
                      fmt: FileFormat | None = None, progress: bool = True, max_in_flight: int = 5_000,
                      progress_file: IO[str] | None = None) -> ReplaySummary:
    """Stream one file into Kafka through ``sink``; return the summary (also when some lines failed)."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt != "raw-records" and not vendor:
        raise ReplayError(f"{path} is a {fmt} vendor export: say which vendor it is from (--vendor)")
    summary = ReplaySummary(path=str(path), format=fmt, vendor=vendor)
    pending: deque[Any] = deque()
    started = time.monotonic()
    labels = (vendor or "mixed", TRANSPORT)
    CONNECTOR_UP.labels(*labels).inc()

    async def settle(fut: Any) -> None:
        try:
            await fut
            summary.records += 1
        except Exception as exc:  # counted by the sink too; remembered for the summary
            summary.failed += 1
            if len(summary.errors) < 10:
                summary.errors.append(repr(exc))

    async def track(submitted: Submitted) -> None:
        if submitted.dead_letter is not None:
            summary.dead_letters += 1
        for fut in submitted.deliveries:
            pending.append(fut)
            if len(pending) >= max_in_flight:
                await settle(pending.popleft())

    stream, counter = _open(path)
    bar = tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=path.name, disable=not progress,
               file=progress_file or sys.stderr, mininterval=0.5)
    try:
        if fmt == "raw-records":
            for where, line in _lines(stream, path.name):
                summary.items += 1
                await track(await _raw_record(sink, line, where))
                if summary.items % 2048 == 0:
                    bar.update(counter.count - bar.n)
        elif fmt == "ndjson":
            for where, line in _lines(stream, path.name):
                summary.items += 1
                await track(await sink.submit(vendor, line, transport=TRANSPORT, original=line, where=where))
                if summary.items % 2048 == 0:
                    bar.update(counter.count - bar.n)
        else:
            try:
                for where, item in _array_items(stream, path.name):
                    summary.items += 1
                    await track(await sink.submit(vendor, item, transport=TRANSPORT, where=where))
                    if summary.items % 2048 == 0:
                        bar.update(counter.count - bar.n)
            except _BrokenArray as exc:
                letter = await sink.dead_letter(reason="not_json", detail=str(exc), original=b"", vendor=vendor,
                                                transport=TRANSPORT, origin_ref=str(path))
                summary.dead_letters += 1
                summary.errors.append(letter.detail)
        while pending:
            await settle(pending.popleft())
        await sink.flush()
    finally:
        bar.update(counter.count - bar.n)
        bar.close()
        stream.close()
        counter.close()
        CONNECTOR_UP.labels(*labels).dec()
    summary.seconds = time.monotonic() - started
    log.info("replay done: %s", summary)
    return summary


async def _raw_record(sink: RecordSink, line: bytes, where: str) -> Submitted:
    """A recorded RawRecord goes back as it was (same event id, received_at, transport)."""
    try:
        record = RawRecord.model_validate_json(line)
    except ValidationError as exc:
        try:
            obj = orjson.loads(line)
            vendor = obj.get("vendor") if isinstance(obj, dict) and isinstance(obj.get("vendor"), str) else None
            reason = "invalid"
        except orjson.JSONDecodeError:
            vendor, reason = None, "not_json"
        first = exc.errors()[0] if exc.errors() else {"msg": str(exc)}
        letter = await sink.dead_letter(reason=reason, detail=f"{where}: not a RawRecord ({first.get('msg')})",
                                        original=line, vendor=vendor, transport=TRANSPORT, origin_ref=where)
        return Submitted(dead_letter=letter)
    return Submitted(records=[record], deliveries=[await sink.send(record)])
