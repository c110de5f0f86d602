"""Stand-ins for the parts of the worker that a unit test of one agent does not run."""

from __future__ import annotations

from collections import deque
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from schemas.topics import Topics


class IngestPipeline:
    """What the ingest step (``pipeline.agents.ingest.Ingest``) uses of ``LifecyclePipeline``, in
    one place, so every test's stand-in follows its signatures. ``route`` records what the ingest
    sent; the group has committed nothing and no partition is another worker's."""

    def __init__(self, parsed_topics: dict[str, tuple[str, int]] | None = None) -> None:
        self.app = SimpleNamespace(should_stop=False, flow_control=SimpleNamespace(is_active=lambda: True))
        self.settings = SimpleNamespace(app_id="lifecycle-test")
        self.topics = Topics()
        self.parsed_topics = parsed_topics or {}
        self.identity_writes: list[Any] = []
        self.ingest_state: dict[str, Any] = {}
        self.ingest_batches: dict[int, deque[int]] = {}   # offsets of the ingest's batches per account partition
        self.routed: list[list[tuple[str, bytes]]] = []
        self.sends = SimpleNamespace(flush=self._flush)
        self.committed = SimpleNamespace(get=self.committed_at, of_group=self.of_group)

    async def route(self, messages: list[tuple[str, bytes]], *, from_ingest: bool = False) -> None:
        self.routed.append(messages)

    async def committed_at(self, tps: Any) -> dict[TP, int]:
        """``CommittedOffsets.get``: where each partition is read again from."""
        return {tp: 0 for tp in tps}

    async def of_group(self, tps: Any) -> dict[TP, int]:
        """``CommittedOffsets.of_group``: the group's commits."""
        return {tp: 0 for tp in tps}

    async def _flush(self) -> None:
        return None
