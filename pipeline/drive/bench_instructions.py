"""``lifecycle bench --instructions``: the pure path's cost in instructions, not seconds.

On these shared machines the timed bench moves ±15% between runs and the pure path's CPU
time as much between hours, so a change worth 5% or less cannot be seen by it. Instructions
retired are the same in every run of the same code on the same input: each step here runs
under valgrind's cachegrind (a CPU simulator that counts every instruction; no cache model),
with a fixed hash seed and the system allocator, over the same prefix of the bench's
preloaded messages, so two commits compare to within about 0.2% over 5,000 records.

Four children run the same process up to the point of work, then one of:

* ``none``: nothing (imports, the journey, the messages read): subtracted from the others;
* ``raw``: the raw loop's work on each message without Kafka (``bench.raw_step``, then ``pack``);
* ``parse``: ``pipeline.ingest.parse_message`` on each message (the parse step);
* ``pure``: ``pipeline.offline`` over the messages (parse, merge and identity, accounts).

Instructions are not time (a cache miss costs many, a vectorised copy few), so the timed
bench stays the measure of the issue's ratio; this one tells whether a change to the pure
code made it cheaper, and by how much.
"""

from __future__ import annotations

import math
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from pipeline.drive.bench import Message, encode, raw_step, record_count, sample
from pipeline.settings import Settings
from schemas.raw_batch import MAX_RECORDS, pack, unpack

MODES = ("none", "raw", "parse", "pure")
DEFAULT_RECORDS = 5_000
_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


class ValgrindMissing(RuntimeError):
    pass


def prefix(messages: Sequence[Message], records: int) -> list[Message]:
    """About ``records`` records of the preload, the same share of every (topic, partition): each
    one's first records in offset order (what the event-time merge expects), re-packed into
    batches of at most the connectors' size, so the sources are mixed as in the whole sample."""
    lines: dict[tuple[str, int], list[tuple[bytes, bytes]]] = {}
    for topic, partition, key, value, _count in messages:
        lines.setdefault((topic, partition), []).extend((key, line) for line in unpack(value))
    share = min(1.0, records / max(1, sum(len(v) for v in lines.values())))
    taken: list[Message] = []
    for (topic, partition), kept in lines.items():
        kept = kept[:math.ceil(len(kept) * share)]
        for i in range(0, len(kept), MAX_RECORDS):
            chunk = kept[i:i + MAX_RECORDS]
            taken.append((topic, partition, chunk[0][0], pack([line for _, line in chunk]), len(chunk)))
    return taken


@dataclass(frozen=True)
class Counts:
    """Instructions retired per mode (``none`` included), over ``records`` records."""

    records: int
    messages: int
    refs: dict[str, int]

    def per_record(self, mode: str) -> float:
        return (self.refs[mode] - self.refs["none"]) / self.records

    def describe(self) -> list[str]:
        raw, parse, pure = (self.per_record(m) for m in ("raw", "parse", "pure"))
        return [
            f"(f) instructions per record (valgrind cachegrind, deterministic; {self.records:,} records in "
            f"{self.messages} messages, the same share of each partition's first):",
            f"    raw step (decode and encode every record, pack the batch): {raw:,.0f}",
            f"    pure path: {pure:,.0f} = parse {parse:,.0f} + merge, identity and accounts {pure - parse:,.0f}",
            f"ratio raw/pure (instructions) = {raw / pure:.3f}",
        ]


def count(settings: Settings, accounts: int = 600, seed: int = 11, records: int = DEFAULT_RECORDS,
          modes: Sequence[str] = MODES, valgrind: str | None = None) -> Counts:
    """Run each mode's child under cachegrind, two at a time, and read their instruction counts."""
    valgrind = valgrind or shutil.which("valgrind")
    if valgrind is None:
        raise ValgrindMissing("valgrind is not installed (apt install valgrind)")
    raw_records, _ = sample(accounts, seed, None)
    messages = prefix(encode(raw_records, settings.partitions, settings.topics), records)
    # A fixed clock after the sample's last record, so every run reads the same input the same way.
    now = max(r.received_at for r in raw_records) + timedelta(days=1)
    with tempfile.TemporaryDirectory(prefix="lifecycle-ir-") as tmp:
        work = Path(tmp) / "input.pickle"
        work.write_bytes(pickle.dumps((messages, now, settings.partitions, settings.journey_path,
                                       settings.accept_test_mode)))
        env = os.environ.copy()   # the child is this process, run again
        env.update(PYTHONHASHSEED="0", PYTHONMALLOC="malloc")

        def run(mode: str) -> int:
            done = subprocess.run(
                [valgrind, "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
                 sys.executable, "-m", __name__, mode, str(work)],
                env=env, capture_output=True, text=True, check=False)
            found = _REFS.search(done.stderr)
            if done.returncode != 0 or found is None:
                raise RuntimeError(f"cachegrind of {mode!r} failed ({done.returncode}): {done.stderr[-2000:]}")
            return int(found.group(1).replace(",", ""))

        with ThreadPoolExecutor(max_workers=2) as pool:
            refs = dict(zip(modes, pool.map(run, modes)))
    return Counts(record_count(messages), len(messages), refs)


def run_instructions(settings: Settings, accounts: int, seed: int, records: int,
                     echo: Callable[[str], None] = print) -> Counts:
    counts = count(settings, accounts, seed, records)
    for line in counts.describe():
        echo(line)
    return counts


def _child(mode: str, path: Path) -> None:
    """One mode's work over the pickled messages (the process cachegrind counts)."""
    from pipeline.drive.bench import pure_sources
    from pipeline.ingest import parse_message
    from pipeline.journey import load_journey
    from pipeline.offline import OfflinePipeline

    messages, now, partitions, journey_path, accept_test_mode = pickle.loads(path.read_bytes())
    journey = load_journey(journey_path)
    sources = pure_sources(messages)
    if mode == "raw":
        for message in messages:
            pack(raw_step(message[3]))
    elif mode == "parse":
        for topic, partition, _key, value, _count in messages:
            parse_message(value, topic, f"{topic}/{partition}", now=now, accept_test_mode=accept_test_mode)
    elif mode == "pure":
        OfflinePipeline([journey], now=now, partitions=partitions, accept_test_mode=accept_test_mode).run(sources)
    elif mode != "none":
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    _child(sys.argv[1], Path(sys.argv[2]))
