"""The ingest step never lets a later message overtake a missing one. It sends nothing more after a
send that did not finish: its messages are numbered per account partition, and a later one
delivered ahead of them would make a partition skip them as repeats when they come again (the
SIGTERM failure of ``lifecycle verify`` at seed 7). And it takes no parsed message after one that
never arrived: the parser sends both again from its commit, and the missing one would otherwise be
dropped as a repeat by raw offset."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from pipeline.agents.ingest import Ingest
from schemas.base import dumps
from schemas.parsed import ParsedBatch
from tests.fakes import IngestPipeline

PARSED = "lifecycle.parsed.crm.0"


class Pipeline(IngestPipeline):
    """``route`` is cancelled on its first call."""

    def __init__(self) -> None:
        super().__init__({PARSED: ("lifecycle.raw.crm", 0)})

    async def route(self, messages: list[tuple[str, bytes]], *, from_ingest: bool = False) -> None:
        if not self.routed:
            self.routed.append([])
            raise asyncio.CancelledError   # a SIGTERM while the first send waits for metadata
        await super().route(messages, from_ingest=from_ingest)


async def test_after_an_unfinished_send_nothing_more_goes_out_until_the_next_assignment() -> None:
    pipeline = Pipeline()
    ingest = Ingest(pipeline)  # type: ignore[arg-type]
    ingest._outbox = [("acct:a", b'{"seq":1}')]
    with pytest.raises(asyncio.CancelledError):
        await ingest._flush_outbox()
    ingest._outbox = [("acct:a", b'{"seq":2}')]     # released after the failure (the timer's turn)
    await ingest._flush_outbox()
    await ingest._release_all(flush_at=0)
    assert pipeline.routed == [[]]                   # the second send never went out

    await ingest.on_assigned({TP(PARSED, 0)})        # read again from the commit
    assert not ingest._outbox
    ingest._outbox = [("acct:a", b'{"seq":1}')]
    await ingest._flush_outbox()
    assert pipeline.routed == [[], [("acct:a", b'{"seq":1}')]]


def _parsed(offset: int, after: int | None) -> Any:
    message = SimpleNamespace(topic=PARSED, partition=0, offset=offset)
    value = dumps(ParsedBatch(offset=offset, after=after, position=offset + 1, highwater=100, records=1))
    return SimpleNamespace(message=message, value=value)


def test_a_parsed_message_after_a_missing_one_is_not_taken() -> None:
    pipeline = Pipeline()
    ingest = Ingest(pipeline)  # type: ignore[arg-type]
    tp = TP(PARSED, 0)
    ingest._take(tp, _parsed(0, after=0))
    ingest._take(tp, _parsed(1, after=1))
    assert ingest._reports[tp] == [2, 100]
    ingest._take(tp, _parsed(2, after=3))             # raw offset 2's message never arrived (after=2)
    ingest._take(tp, _parsed(4, after=5))
    assert ingest._reports[tp] == [2, 100]           # nothing taken past the gap
    assert pipeline.ingest_state[f"raw:{PARSED}"] == [2, 100]
    for offset in (2, 3, 4):                         # the parser sends them again from its commit
        ingest._take(tp, _parsed(offset, after=offset))
    assert ingest._reports[tp] == [5, 100]


def test_raw_offsets_without_records_are_not_a_gap() -> None:
    """A transactional producer's commit markers take offsets no consumer sees."""
    pipeline = Pipeline()
    ingest = Ingest(pipeline)  # type: ignore[arg-type]
    tp = TP(PARSED, 0)
    ingest._take(tp, _parsed(0, after=0))
    ingest._take(tp, _parsed(2, after=1))             # offset 1 was a marker: the parser's position was 1
    assert ingest._reports[tp] == [3, 100]
