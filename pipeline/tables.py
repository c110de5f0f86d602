"""Changelogged tables whose recovered state is exactly the state at the committed offsets.

Faust commits offsets after flushing the producer, so a table's changelog is
never *behind* the committed input. It can be *ahead*: changelog writes leave as
soon as the producer sends them, and a worker killed before its next commit
leaves writes whose input will be processed again. Recovered as is, that state
already holds what the replay is about to do, so the replay emits less (or
other) output than the first run.

Quix Streams solves this by stamping each changelog record with the input
offset that caused it and skipping, on recovery, records whose input was not
committed. This does the same for Faust: every write carries the source
topic/partition/offset (headers ``lc-src`` / ``lc-off``); recovery stashes the
changelog batches and applies them when recovery completes, minus records whose
source offset is at or past the group's committed offset. State, outputs and
offsets then move together (see README, Delivery guarantees).

Writes made outside a stream (the ingest step releases held records from a
timer) name their source with :func:`source_position`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Iterable, Iterator
from typing import Any

import faust
from faust.streams import current_event
from faust.types import TP, EventT

from pipeline.codecs import STR

log = logging.getLogger(__name__)

SRC_HEADER = "lc-src"
OFF_HEADER = "lc-off"

_position: contextvars.ContextVar[tuple[str, int, int] | None] = contextvars.ContextVar("lc_source", default=None)


@contextlib.contextmanager
def source_position(topic: str, partition: int, offset: int) -> Iterator[None]:
    """Table writes inside this block are caused by the record at (topic, partition, offset)."""
    token = _position.set((topic, partition, offset))
    try:
        yield
    finally:
        _position.reset(token)


class CommittedOffsets:
    """The group's committed offsets, asked of the broker with an admin OffsetFetch: a
    consumer with the group's id would join the group and set off a rebalance."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._admin: Any = None
        self._lock = asyncio.Lock()  # every table recovers at once; one client, started once

    async def get(self, tps: Iterable[TP]) -> dict[TP, int]:
        from aiokafka.admin import AIOKafkaAdminClient
        from aiokafka.structs import TopicPartition

        from pipeline.kafka_clients import client_kwargs

        async with self._lock:
            if self._admin is None:
                servers = [f"{url.host}:{url.port or 9092}" for url in self.app.conf.broker]
                admin = AIOKafkaAdminClient(bootstrap_servers=servers, **client_kwargs())
                await admin.start()
                self._admin = admin
            wanted = [TopicPartition(tp.topic, tp.partition) for tp in tps]
            found = await self._admin.list_consumer_group_offsets(self.app.conf.id, partitions=wanted)
            out: dict[TP, int] = {}
            for tp in tps:
                meta = found.get(TopicPartition(tp.topic, tp.partition))
                offset = meta.offset if meta is not None else -1
                out[tp] = offset if offset is not None and offset > 0 else 0
            return out


class CheckpointedTable(faust.Table):
    """A ``faust.Table`` whose changelog records name their input, recovered up to the commit."""

    committed: CommittedOffsets

    def partition_for_key(self, key: Any) -> int | None:
        if self.partitions == 1:
            return 0
        position = _position.get()
        if position is not None and current_event() is None:
            return position[1]
        return super().partition_for_key(key)

    def send_changelog(self, partition: int | None, key: Any, value: Any,
                       key_serializer: Any = None, value_serializer: Any = None) -> Any:
        position = _position.get()
        if position is None:
            event = current_event()
            if event is None:
                raise RuntimeError("Cannot modify table outside of agent/stream or source_position().")
            position = (event.message.topic, event.message.partition, event.message.offset)
        topic, source_partition, offset = position
        return self.changelog_topic.send_soon(
            key=key, value=value, partition=partition,
            key_serializer=key_serializer or self.key_serializer,
            value_serializer=value_serializer or self.value_serializer,
            headers=[(SRC_HEADER, f"{topic}|{source_partition}".encode()), (OFF_HEADER, str(offset).encode())],
            callback=self._on_changelog_sent, eager_partitioning=True)

    def apply_changelog_batch(self, batch: Iterable[EventT]) -> None:
        # Faust clears its buffer after this call: keep our own copy until recovery ends.
        self.__dict__.setdefault("_stash", []).extend(batch)

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        stash: list[EventT] = self.__dict__.pop("_stash", [])
        if stash:
            sources = {src for src in map(_source, stash) if src is not None}
            try:
                committed = await self.committed.get({tp for tp, _ in sources})
            except Exception as exc:  # recovering without the cut would be silently wrong: stop
                log.exception("table %s: cannot read committed offsets for recovery", self.name)
                await self.app.crash(exc)
                raise
            keep = [e for e in stash if _committed(_source(e), committed)]
            if len(keep) != len(stash):
                log.warning("table %s: recovery skipped %d changelog records of uncommitted input",
                         self.name, len(stash) - len(keep))
            super().apply_changelog_batch(keep)
        await super().on_recovery_completed(active_tps, standby_tps)


def _source(event: EventT) -> tuple[TP, int] | None:
    headers = event.message.headers
    items = headers.items() if isinstance(headers, dict) else (headers or ())
    src = off = None
    for name, value in items:
        if name == SRC_HEADER:
            src = value.decode() if isinstance(value, bytes) else value
        elif name == OFF_HEADER:
            off = int(value)
    if src is None or off is None:
        return None
    topic, _, partition = src.rpartition("|")
    return TP(topic, int(partition)), off


def _committed(source: tuple[TP, int] | None, committed: dict[TP, int]) -> bool:
    if source is None:  # written before stamping existed: keep
        return True
    tp, offset = source
    return offset < committed.get(tp, 0)


def checkpointed_table(app: faust.App, name: str, partitions: int, value_codec: Any,
                       committed: CommittedOffsets) -> CheckpointedTable:
    """A checkpointed table with our codecs. Faust derives a table's serializers from
    ``value_type`` and ignores ``schema``, so they are set before the changelog exists."""
    table = app.tables.add(CheckpointedTable(app, name=name, default=None, partitions=partitions))
    table.committed = committed
    table.key_serializer = STR
    table.value_serializer = value_codec
    table.changelog_topic = table._new_changelog_topic()
    return table
