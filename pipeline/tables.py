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

**Stores** (``LIFECYCLE_STORE``). ``memory`` holds the tables in dicts and reads every
changelog from its start at every start. ``rocksdict`` (:class:`RocksDictStore`: Faust's
RocksDB store through the ``rocksdict`` binding) keeps each table partition in a RocksDB
file under the data dir with the changelog offset it holds, so a restart reads only the
changelog *tail*. A local file is written as the worker processes, before the input is
committed, so after a kill -9 it can hold writes of input that will be processed again,
which the changelog cut above cannot take back out. So each partition file also records,
in the same sequence of RocksDB writes as the data and before it, the highest input offset
per source partition whose writes it holds (``__lc\0sources__``). When a table partition is
assigned, before Faust reads the file's persisted offset, that record is compared with the
group's committed offsets: if every source offset is below its committed offset, the file
is a prefix of the committed state and is kept (the tail is recovered with the same cut);
if any is at or past it (a kill -9, a commit skipped at shutdown, a broker that lost its
topics), the file is deleted and the partition is recovered from the whole changelog like
the memory store. A clean stop (SIGTERM: the last commit follows the last write) keeps the
file; either way the recovered state is exactly the committed state. The check is the
state itself rather than a "clean shutdown" flag: a SIGTERM can end before the final
commit (cancelled mid-release, producer stopping), and a flag would then keep state ahead
of the commit.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Iterable
from typing import Any

import faust
import orjson
from faust.streams import current_event
from faust.types import TP, EventT

from pipeline.codecs import STR
from schemas.raw_batch import partition_for

log = logging.getLogger(__name__)

SRC_HEADER = "lc-src"
OFF_HEADER = "lc-off"

_position: contextvars.ContextVar[tuple[str, int, int] | None] = contextvars.ContextVar("lc_source", default=None)


class source_position:
    """Table writes inside this block are caused by the record at (topic, partition, offset).
    (A class, not a generator: the merge enters one per released record.)"""

    __slots__ = ("_where", "_token")

    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self._where = (topic, partition, offset)

    def __enter__(self) -> None:
        self._token = _position.set(self._where)

    def __exit__(self, *exc: object) -> None:
        _position.reset(self._token)


class CommittedOffsets:
    """The group's committed offsets, asked twice: through the worker's own group member
    (Faust's consumer thread) and with an admin OffsetFetch. The admin request was seen
    answering "no offset" for a partition that had one while the group was still rebalancing
    after a kill -9, and a missing offset makes recovery drop every changelog record of that
    input. (The member was suspected of the same after a graceful restart; that loss turned
    out to be Faust's acks of skipped events, ``pipeline.compat``.) Neither answers more than
    what was committed, so the larger of the two is the commit."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._admin: Any = None
        self._lock = asyncio.Lock()  # every table recovers at once; one admin client, started once

    async def get(self, tps: Iterable[TP]) -> dict[TP, int]:
        from aiokafka.structs import TopicPartition

        wanted = list(tps)
        thread = self.app.consumer._thread  # type: ignore[attr-defined]
        consumer = thread._ensure_consumer()
        out: dict[TP, int] = {}
        for tp in wanted:
            offset = await thread.call_thread(consumer.committed, TopicPartition(tp.topic, tp.partition))
            out[tp] = offset if offset is not None and offset > 0 else 0
        for tp, offset in (await self.of_group(wanted)).items():
            out[tp] = max(out[tp], offset)
        return out

    async def of_group(self, tps: Iterable[TP]) -> dict[TP, int]:
        """The admin OffsetFetch alone (0 where none): one request, for partitions any member
        of the group owns (the ingest's pace watches other workers' account partitions so)."""
        from aiokafka.admin import AIOKafkaAdminClient
        from aiokafka.structs import TopicPartition

        from pipeline.kafka_clients import client_kwargs

        wanted = list(tps)
        async with self._lock:
            if self._admin is None:
                servers = [f"{url.host}:{url.port or 9092}" for url in self.app.conf.broker]
                admin = AIOKafkaAdminClient(bootstrap_servers=servers, **client_kwargs())
                await admin.start()
                self._admin = admin
            found = await self._admin.list_consumer_group_offsets(
                self.app.conf.id, partitions=[TopicPartition(tp.topic, tp.partition) for tp in wanted])
        out = {}
        for tp in wanted:
            meta = found.get(TopicPartition(tp.topic, tp.partition))
            out[tp] = meta.offset if meta is not None and meta.offset is not None and meta.offset > 0 else 0
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
        position = _write_source()
        if position is None:
            raise RuntimeError("Cannot modify table outside of agent/stream or source_position().")
        topic, source_partition, offset = position
        self.__dict__["_written"] = True
        headers = [(SRC_HEADER, f"{topic}|{source_partition}".encode()), (OFF_HEADER, str(offset).encode())]
        sends = getattr(self.app, "sends", None)
        if sends is None:  # an app without pipeline.sends: Faust's own path
            return self.changelog_topic.send_soon(
                key=key, value=value, partition=partition,
                key_serializer=key_serializer or self.key_serializer,
                value_serializer=value_serializer or self.value_serializer,
                headers=headers, callback=self._on_changelog_sent, eager_partitioning=True)
        serializers = self.app.serializers
        key_bytes = serializers.dumps_key(self.key_type, key, serializer=key_serializer or self.key_serializer)
        value_bytes = None if value is None else serializers.dumps_value(
            self.value_type, value, serializer=value_serializer or self.value_serializer)
        if partition is None:
            partition = partition_for(key_bytes or b"", self.partitions or 1)
        sends.queue_changelog(self.changelog_topic_name, partition, key_bytes, value_bytes, headers,
                              self._on_changelog_sent)
        return _Queued(partition)

    async def on_rebalance(self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP],
                           generation_id: int = 0) -> None:
        """After processing, local state may be ahead of the commit (writes of input that will be
        processed again), and Faust recovers a partition it keeps only from where its last
        recovery stopped, on top of that state: the cut would then mix committed and uncommitted
        versions (seen: an account awaiting a merge its partition no longer listed). So every
        assigned partition is recovered from what its store holds of the committed state: once
        this worker has written, the memory store drops everything (recovered from the
        changelog's start); a rocksdict file is kept only while it is a prefix of the commit."""
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)
        topic = self.changelog_topic_name
        store = self.data
        written = self.__dict__.pop("_written", False)
        if written or isinstance(store, RocksDictStore):
            # Faust keeps kept partitions' read offsets from the last recovery: forget them, so
            # it starts from what the store holds (recovery.on_rebalance comes next).
            offsets = self.app.tables.recovery.active_offsets
            for tp in [tp for tp in offsets if tp.topic == topic]:
                offsets.pop(tp, None)
        if isinstance(store, RocksDictStore):
            partitions = {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic}
            try:
                await store.keep_only_committed(partitions, self.committed)
            except Exception as exc:  # keeping a file that may be ahead would be silently wrong: stop
                log.exception("table %s: cannot check the local store against the committed offsets", self.name)
                await self.app.crash(exc)
                raise
        elif written:
            store.clear()
            key_partition = getattr(store, "_key_partition", None)
            if key_partition is not None:
                key_partition.clear()

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
        log.info("table %s: recovery applied %d changelog records", self.name, len(stash))
        await super().on_recovery_completed(active_tps, standby_tps)


class _Queued:
    """What Faust's table reads of a changelog send: the partition the write went to."""

    __slots__ = ("message", "partition")

    def __init__(self, partition: int) -> None:
        self.message = self
        self.partition = partition


def _write_source() -> tuple[str, int, int] | None:
    """The input record a table write now is caused by: (topic, partition, offset)."""
    position = _position.get()
    if position is not None:
        return position
    event = current_event()
    if event is None:
        return None
    return event.message.topic, event.message.partition, event.message.offset


def _write_partition(table: faust.Table) -> int | None:
    """The table partition a write now goes to: the same as ``CheckpointedTable.partition_for_key``."""
    if table.partitions == 1:
        return 0
    event = current_event()
    if event is not None:
        return event.message.partition
    position = _position.get()
    return position[1] if position is not None else None


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


# ---- the rocksdict store -----------------------------------------------------------------------

from faust.stores import STORES  # noqa: E402  (Faust's store registry: rocksdict:// is added below)
from faust.stores.rocksdb import Store as _RocksStore  # noqa: E402

MiB = 1024 * 1024
# Per partition file (7 tables x up to LIFECYCLE_PARTITIONS files): Faust's defaults (64 MiB x 3
# memtables, a 2 GiB block cache each) are sized for one big table per process.
ROCKS_OPTIONS: dict[str, Any] = {"write_buffer_size": 4 * MiB, "max_write_buffer_number": 2,
                                 "block_cache_size": 8 * MiB}


class RocksDictStore(_RocksStore):
    """Faust's RocksDB store on the ``rocksdict`` binding, for checkpointed tables (``rocksdict://``).

    Differences from Faust's: a write goes to the partition its changelog record goes to (also
    from a timer, under :func:`source_position`; single-partition tables always to 0); a read
    falls back to the other partitions' files, as a dict would; and every file records the
    highest input offset per source partition it holds (``SOURCES_KEY``), written before the
    data it covers, which :meth:`keep_only_committed` compares with the group's commits.
    """

    SOURCES_KEY = b"__lc\0sources__"

    def __init__(self, url: Any, app: faust.App, table: Any, *, options: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(url, app, table, options={**ROCKS_OPTIONS, **(options or {}), "driver": "rocksdict"},
                         **kwargs)
        self._sources: dict[int, dict[str, int]] = {}

    # -- what a file holds ----------------------------------------------------------------------
    def sources(self, partition: int) -> dict[str, int]:
        """``{"topic|partition": highest input offset}`` whose writes this partition's file holds."""
        held = self._sources.get(partition)
        if held is None:
            raw = self._db_for_partition(partition).get(self.SOURCES_KEY)
            held = self._sources[partition] = orjson.loads(raw) if raw else {}
        return held

    def _note(self, partition: int, source: str, offset: int) -> None:
        held = self.sources(partition)
        if held.get(source, -1) < offset:
            held[source] = offset
            self._db_for_partition(partition).put(self.SOURCES_KEY, orjson.dumps(held))

    async def keep_only_committed(self, partitions: Iterable[int], committed: CommittedOffsets) -> None:
        """Delete each partition file holding writes of input at or past the committed offsets."""
        held = {p: dict(self.sources(p)) for p in sorted(partitions)}
        wanted = {_source_tp(src) for srcs in held.values() for src in srcs}
        offsets = await committed.get(wanted) if wanted else {}
        for partition, srcs in held.items():
            ahead = {src: off for src, off in srcs.items() if off >= offsets.get(_source_tp(src), 0)}
            if ahead:
                src, off = min(ahead.items())
                log.warning("table %s partition %d: local store holds input past the commit (%s offset %d, "
                            "committed %d): discarded, recovering from the changelog", self.table_name, partition,
                            src, off, offsets.get(_source_tp(src), 0))
                self.discard(partition)
            elif srcs:
                log.info("table %s partition %d: local store kept (all input committed), recovering the "
                         "changelog tail", self.table_name, partition)

    def discard(self, partition: int) -> None:
        """Close and delete one partition's file; it reopens empty (no persisted offset)."""
        import gc
        import shutil

        db = self._dbs.pop(partition, None)
        if db is not None:
            db.close()
            del db
            gc.collect()
        self._key_index.clear()
        self._sources.pop(partition, None)
        shutil.rmtree(self.partition_path(partition), ignore_errors=True)

    # -- writes and reads -----------------------------------------------------------------------
    def _set(self, key: bytes, value: bytes | None) -> None:
        partition = _write_partition(self.table)
        if partition is None:
            raise RuntimeError("Cannot modify table outside of agent/stream or source_position().")
        self._note_write(partition)
        self._key_index[key] = partition
        self._db_for_partition(partition).put(key, value)

    def _del(self, key: bytes) -> None:
        partition = _write_partition(self.table)
        targets = set(self._dbs) if partition is None else {partition}
        indexed = self._key_index.pop(key, None)
        if indexed is not None:
            targets.add(indexed)
        for p in targets:
            self._note_write(p)
            self._db_for_partition(p).delete(key)

    def _note_write(self, partition: int) -> None:
        source = _write_source()
        if source is not None:
            topic, source_partition, offset = source
            self._note(partition, f"{topic}|{source_partition}", offset)

    def _get(self, key: bytes) -> bytes | None:
        partition = _write_partition(self.table)
        if partition is not None:
            value = self._db_for_partition(partition).get(key)
            if value is not None or self.table.partitions == 1:
                return value
        found = self._get_bucket_for_key(key)
        return found.value if found is not None else None

    def _contains(self, key: bytes) -> bool:
        return self._get(key) is not None

    def _visible_keys(self, db: Any) -> Any:
        return (k for k in super()._visible_keys(db) if k != self.SOURCES_KEY)

    def _visible_items(self, db: Any) -> Any:
        return ((k, v) for k, v in super()._visible_items(db) if k != self.SOURCES_KEY)

    def apply_changelog_batch(self, batch: Iterable[EventT], to_key: Any, to_value: Any) -> None:
        events = list(batch)
        super().apply_changelog_batch(events, to_key, to_value)
        highest: dict[tuple[int, str], int] = {}
        for event in events:
            source = _source(event)
            if source is not None:
                tp, offset = source
                key = (event.message.partition, f"{tp.topic}|{tp.partition}")
                highest[key] = max(offset, highest.get(key, -1))
        for (partition, src), offset in highest.items():
            self._note(partition, src, offset)


def _source_tp(source: str) -> TP:
    topic, _, partition = source.rpartition("|")
    return TP(topic, int(partition))


STORES.aliases["rocksdict"] = f"{__name__}:RocksDictStore"
