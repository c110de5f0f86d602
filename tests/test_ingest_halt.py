"""The ingest step sends nothing more after a send that did not finish: its messages are numbered
per account partition, and a later one delivered ahead of them would make a partition skip them as
repeats when they come again (the SIGTERM failure of ``lifecycle verify`` at seed 7)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from pipeline.agents.ingest import Ingest
from schemas.topics import Topics

PARSED = "lifecycle.parsed.crm.0"


class Pipeline:
    """What the ingest step uses of ``LifecyclePipeline``; ``route`` is cancelled on its first call."""

    def __init__(self) -> None:
        self.app = SimpleNamespace(flow_control=SimpleNamespace(is_active=lambda: True))
        self.settings = SimpleNamespace(app_id="lifecycle-test")
        self.topics = Topics()
        self.parsed_topics = {PARSED: ("lifecycle.raw.crm", 0)}
        self.identity_writes: list[Any] = []
        self.ingest_state: dict[str, Any] = {}
        self.routed: list[list[tuple[str, bytes]]] = []
        self.sends = SimpleNamespace(flush=self._flush)
        self.committed = SimpleNamespace(get=self._committed)

    async def route(self, messages: list[tuple[str, bytes]]) -> None:
        if not self.routed:
            self.routed.append([])
            raise asyncio.CancelledError   # a SIGTERM while the first send waits for metadata
        self.routed.append(messages)

    async def _flush(self) -> None:
        return None

    async def _committed(self, tps: Any) -> dict[TP, int]:
        return {tp: 0 for tp in tps}


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
