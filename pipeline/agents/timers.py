"""The worker's timers: the ingest release timer, and the clock that brings the wall clock
to the SLA deadlines.

Faust has no per-key timers and ``@app.timer`` runs on every worker, so no timer changes
state here: the clock only *sends* ``clock`` messages through the account topic, and each
partition changes state when its agent reads one, in sequence with everything else.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from schemas.accounts import AccountBatch, AccountMessage

if TYPE_CHECKING:
    from pipeline.app import LifecyclePipeline

RELEASE_INTERVAL = 0.1   # seconds: how often the ingest step looks for a part-filled batch to send


class Timers:
    def __init__(self, pipeline: LifecyclePipeline) -> None:
        self.pipeline = pipeline

    async def release(self) -> None:
        """Parse: report partitions read to their end. Ingest: release what became decidable
        without a new record, send a batch that waited."""
        if self.pipeline.started and not self.pipeline.app.rebalancing and not self.pipeline.app.should_stop:
            await self.pipeline.parse.tick()
            await self.pipeline.ingest.tick()

    async def clock(self) -> None:
        """The wall clock moves the SLA clock only once every input is caught up, never during
        a backfill. The ingest step announces "caught up" to every account partition once
        (a ``clock`` message after everything it released); from then on, until other input
        arrives, a partition whose next deadline is due clocks itself."""
        p = self.pipeline
        if not p.started or p.app.rebalancing or p.app.should_stop:
            return  # tables are being recovered (nothing to read yet), or the producer may be closing
        now = p.wall() - timedelta(seconds=p.settings.allowed_lateness_seconds)
        ingest = p.ingest
        if ingest.merge.partitions() and not ingest.announced:
            async with ingest.lock:
                if ingest.idle():
                    ingest.announced = True
                    for partition in range(p.settings.partitions):
                        await self._send_clock(partition, now)
        accounts = p.accounts_agent
        for partition, logic in list(accounts.partitions.items()):
            if logic.clock_due(now) and partition not in accounts.clock_sent:
                accounts.clock_sent.add(partition)
                await self._send_clock(partition, now)

    async def _send_clock(self, partition: int, now: datetime) -> None:
        await self.pipeline.account_topic.send(
            key=f"clock-{partition}", partition=partition, force=True,
            value=AccountBatch(messages=[AccountMessage(type="clock", account_id="", now=now)]))
