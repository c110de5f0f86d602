"""File replay against the real broker: layouts, dead letters with line numbers, bounded memory."""

from __future__ import annotations

import gzip
import io
import tracemalloc
import uuid
from pathlib import Path

import orjson
import pytest

from connectors.replay import ReplayError, detect_format, replay_file
from connectors.sink import RecordSink
from schemas.base import utcnow
from schemas.events import DeadLetter, RawRecord, SourceKind
from schemas.topics import DEAD_LETTER, RAW
from tests.connectors.transport_helpers import end_offsets, event_id, header, parsers, read_from, topics  # noqa: F401

pytestmark = pytest.mark.integration


def segment_call(run: str, i: int, pad: str = "") -> dict:
    return {"type": "track", "messageId": f"{run}-{i}", "userId": f"user-{i % 50}", "event": "Report Built",
            "timestamp": f"2024-03-{1 + i % 28:02d}T10:00:00Z", "properties": {"n": i, "pad": pad}}


@pytest.fixture
async def sink(topics, parsers):
    async with RecordSink(topics) as s:
        yield s


async def test_ndjson_with_malformed_lines(sink, tmp_path):
    run = uuid.uuid4().hex[:8]
    lines = [orjson.dumps(segment_call(run, i)) for i in range(10)]
    lines.insert(3, b'{"type": "track", "messageId": ')  # truncated
    lines.insert(7, b"")                                  # blank lines are not items
    lines.insert(8, b"[1, 2, 3]")                         # JSON, but not an object
    path = tmp_path / "segment-export.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert detect_format(path) == "ndjson"

    start = await end_offsets(sink.bootstrap_servers, RAW[SourceKind.PRODUCT])
    dl_start = await end_offsets(sink.bootstrap_servers, DEAD_LETTER)
    summary = await replay_file(sink, path, "segment", progress=False)
    assert (summary.items, summary.records, summary.dead_letters, summary.failed) == (12, 10, 2, 0)
    assert summary.ok and summary.rate > 0 and "10 records" in str(summary)

    got = await read_from(sink.bootstrap_servers, start, expect=10)
    raws = [RawRecord.from_json(m.value) for m in got]
    assert sorted(r.payload["messageId"] for r in raws) == sorted(f"{run}-{i}" for i in range(10))
    assert all(r.transport == "file" for r in raws)
    # payload untouched: event time stays the payload's
    assert {r.payload["timestamp"] for r in raws} == {segment_call(run, i)["timestamp"] for i in range(10)}
    assert all(event_id(m) for m in got)

    letters = [DeadLetter.from_json(m.value) for m in await read_from(sink.bootstrap_servers, dl_start, expect=2)]
    details = sorted(d.detail for d in letters)
    assert "segment-export.ndjson line 4" in details[0] + details[1]   # the truncated one
    assert "segment-export.ndjson line 9:" in details[0] + details[1]  # the array (after a blank line 8)
    assert {d.reason for d in letters} == {"not_json", "not_an_object"}
    assert any(d.original == '{"type": "track", "messageId":' for d in letters)


async def test_json_array_streamed_and_gzip(sink, tmp_path):
    run = uuid.uuid4().hex[:8]
    events = [{"id": f"evt_{run}_{i}", "object": "event", "type": "invoice.paid", "created": 1709280000 + i,
               "data": {"object": {"id": f"in_{i}", "object": "invoice", "customer": "cus_arr"}}} for i in range(25)]
    path = tmp_path / "stripe-events.json.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"  \n" + orjson.dumps(events, option=orjson.OPT_INDENT_2))
    assert detect_format(path) == "json-array"
    start = await end_offsets(sink.bootstrap_servers, RAW[SourceKind.BILLING])
    bar = io.StringIO()
    summary = await replay_file(sink, path, "stripe", progress=True, progress_file=bar)
    assert (summary.records, summary.dead_letters) == (25, 0)
    assert "stripe-events.json.gz" in bar.getvalue()  # the progress bar went where it was told
    got = await read_from(sink.bootstrap_servers, start, expect=25)
    # one customer → one key → one partition, in file order
    assert [event_id(m) for m in sorted(got, key=lambda m: m.offset)] == \
        [RawRecord.from_json(m.value).event_id for m in sorted(got, key=lambda m: m.offset)]
    assert [RawRecord.from_json(m.value).payload["id"] for m in sorted(got, key=lambda m: m.offset)] == \
        [e["id"] for e in events]


async def test_broken_json_array_keeps_what_came_before(sink, tmp_path):
    run = uuid.uuid4().hex[:8]
    good = [segment_call(run, i) for i in range(3)]
    path = tmp_path / "broken.json"
    path.write_bytes(orjson.dumps(good)[:-1] + b', {"type": "track", "messageId": "x" oops}]')
    dl_start = await end_offsets(sink.bootstrap_servers, DEAD_LETTER)
    summary = await replay_file(sink, path, "segment", progress=False)
    assert (summary.records, summary.dead_letters) == (3, 1)
    letters = [DeadLetter.from_json(m.value) for m in await read_from(sink.bootstrap_servers, dl_start, expect=1)]
    assert "broken.json item 4" in letters[0].detail and "after item 3" in letters[0].detail


async def test_recorded_raw_records_go_back_as_they_were(sink, tmp_path):
    run = uuid.uuid4().hex[:8]
    recorded = [RawRecord(source=SourceKind.SUPPORT, vendor="zendesk", event_id=f"zd-{run}-{i}",
                          received_at=utcnow(), transport="sample",
                          payload={"id": f"{run}{i}", "ticket_id": 42, "timestamp": 1709280000 + i,
                                   "child_events": []}) for i in range(5)]
    path = tmp_path / "sample.jsonl"
    path.write_bytes(b"\n".join(r.to_json() for r in recorded) + b"\n" + b'{"vendor": "zendesk", "payload": 3}\n')
    assert detect_format(path) == "raw-records"
    start = await end_offsets(sink.bootstrap_servers, RAW[SourceKind.SUPPORT])
    summary = await replay_file(sink, path, progress=False)  # no vendor needed: each record names its own
    assert (summary.records, summary.dead_letters) == (5, 1)
    got = [RawRecord.from_json(m.value) for m in await read_from(sink.bootstrap_servers, start, expect=5)]
    assert sorted(got, key=lambda r: r.event_id) == sorted(recorded, key=lambda r: r.event_id)


async def test_vendor_export_needs_a_vendor(sink, tmp_path):
    path = tmp_path / "x.ndjson"
    path.write_bytes(orjson.dumps(segment_call("v", 1)) + b"\n")
    with pytest.raises(ReplayError, match="--vendor"):
        await replay_file(sink, path, progress=False)


def _peak_rss_reset() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM (peak RSS) to the current RSS
        return True
    except OSError:
        return False


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


async def test_large_export_replays_in_bounded_memory(sink, tmp_path):
    """80k records (~65 MB) through Kafka while the process grows by far less than the file."""
    run = uuid.uuid4().hex[:8]
    n, pad = 80_000, "p" * 650
    path = tmp_path / "big.ndjson"
    with open(path, "wb") as f:
        for i in range(n):
            f.write(orjson.dumps(segment_call(run, i, pad)) + b"\n")
        f.write(b"not json at the very end\n")
    size = path.stat().st_size
    assert size > 55_000_000
    start = await end_offsets(sink.bootstrap_servers, RAW[SourceKind.PRODUCT])

    if _peak_rss_reset():
        base = _status("VmRSS:")
        summary = await replay_file(sink, path, "segment", progress=False, max_in_flight=5_000)
        growth = _status("VmHWM:") - base
    else:  # no /proc peak reset here: trace Python allocations instead (slower, same bound)
        tracemalloc.start()
        summary = await replay_file(sink, path, "segment", progress=False, max_in_flight=5_000)
        growth = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert (summary.records, summary.dead_letters, summary.failed) == (n, 1, 0)
    # Loading the file would need > its size (and several times that as Python objects).
    assert growth < 32_000_000, f"peak memory grew by {growth / 1e6:.1f} MB for a {size / 1e6:.0f} MB file"

    got = await read_from(sink.bootstrap_servers, start, expect=n, timeout=60)
    ids = {event_id(m) for m in got}
    assert len(got) == n and len(ids) == n  # all there, none twice


async def test_cli_replay(topics, parsers, tmp_path):
    import asyncio

    from click.testing import CliRunner

    from connectors.cli import connect

    run = uuid.uuid4().hex[:8]
    path = tmp_path / "calls.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(segment_call(run, i)) for i in range(7)) + b"\nnope\n")
    start = await end_offsets(topics, RAW[SourceKind.PRODUCT])
    result = await asyncio.to_thread(CliRunner().invoke, connect,
                                     ["replay", str(path), "--vendor", "segment", "--bootstrap", topics, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "7 records, 1 dead letters" in result.output
    got = await read_from(topics, start, expect=7)
    assert sorted(RawRecord.from_json(m.value).payload["messageId"] for m in got) == sorted(f"{run}-{i}" for i in range(7))
    missing_vendor = await asyncio.to_thread(CliRunner().invoke, connect, ["replay", str(path), "--bootstrap", topics])
    assert missing_vendor.exit_code != 0 and "--vendor" in missing_vendor.output
