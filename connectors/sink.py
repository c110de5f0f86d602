"""The one Kafka producer every transport writes through.

Webhook, file replay and polling differ in how records arrive, not in how they
leave: a raw record goes to ``lifecycle.raw.<source>`` (in the deployment's topic
namespace), to the partition of the parser's ordering key, in a batch of records
(``schemas.raw_batch``: one JSON document per line), and input that cannot be used goes
to ``lifecycle.dead-letter`` with the reason and the original bytes. Keeping that in one
place means one set of producer settings (acks=all, batching) and one set of counters.

``send`` returns once the record is queued and hands back its delivery future, so
a caller may keep several in flight (replay) or await it before answering
(webhook: a 2xx means Kafka has it; polling: a checkpoint moves only after).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from aiokafka import AIOKafkaProducer

from connectors.base import Ignored, ParseError
from connectors.cursors import PollRequest
from connectors.registry import parser_for, to_raw_records, vendor as vendor_of
from pipeline.kafka_clients import client_kwargs
from pipeline.metrics import CONNECTOR_LAST_SUCCESS, CONNECTOR_RECORDS, DEAD_LETTERS
from pipeline.settings import topics_for
from schemas.base import utcnow
from schemas.events import DeadLetter, RawRecord, SourceKind
from schemas.raw_batch import Batch, Batcher, partition_for
from schemas.raw_batch import headers as raw_batch_headers
from schemas.topics import Topics

log = logging.getLogger(__name__)

# A dead letter keeps the original bytes, but a Kafka message has a size limit
# (1 MiB by default); beyond this the original is cut and the detail says so.
MAX_ORIGINAL_BYTES = 256 * 1024


class SinkError(RuntimeError):
    """Kafka did not take a record (after the producer's own retries)."""


class Enriching(Protocol):
    """What the sink needs of ``connectors.enrich.Enricher`` (kept apart: the enricher uses the poll client)."""

    async def complete(self, vendor_name: str, payload: dict[str, Any], req: PollRequest) -> list[dict[str, Any]]: ...


@dataclass
class Submitted:
    """What became of one delivery: raw records queued (with their futures), or a dead letter for the
    whole delivery; ``unenriched`` are dead letters of single notifications whose object could not be read."""

    records: list[RawRecord] = field(default_factory=list)
    deliveries: list[asyncio.Future[Any]] = field(default_factory=list)
    dead_letter: DeadLetter | None = None
    unenriched: list[DeadLetter] = field(default_factory=list)
    ignored: int = 0

    async def acknowledged(self) -> None:
        """Wait until Kafka has every record of this delivery; SinkError if any was refused."""
        if not self.deliveries:
            return
        results = await asyncio.gather(*self.deliveries, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise SinkError(f"{len(failed)} of {len(results)} records not acknowledged: {failed[0]!r}") from failed[0]


class RecordSink:
    """Async producer of raw records and dead letters, with connector metrics.

    Use as ``async with RecordSink(bootstrap) as sink: ...``. Topics must exist
    (``pipeline.topics.ensure_topics``) or be auto-created by the broker.
    """

    def __init__(self, bootstrap_servers: str, *, client_id: str = "lifecycle-connector",
                 linger_ms: int = 50, max_batch_size: int = 256 * 1024, request_timeout_ms: int = 30_000,
                 enricher: Enriching | None = None, topics: Topics | None = None, **producer_options: Any) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topics = topics or topics_for()  # None: the environment's namespace (LIFECYCLE_TOPIC_NAMESPACE)
        self.enricher = enricher  # None: notifications that need their object are dead-lettered
        self._options = dict(bootstrap_servers=bootstrap_servers, client_id=client_id, acks="all",
                             linger_ms=min(linger_ms, 5), max_batch_size=max_batch_size,
                             request_timeout_ms=request_timeout_ms, **client_kwargs(), **producer_options)
        self._producer: AIOKafkaProducer | None = None
        self._linger = linger_ms / 1000
        self._batcher = Batcher()
        self._pending: dict[int, asyncio.Future[Any]] = {}   # id(open batch) → its records' future
        self._partitions: dict[str, int] = {}       # topic → its partition count
        self._sending: set[asyncio.Future[Any]] = set()

    # lifecycle -----------------------------------------------------------------

    async def start(self, timeout: float = 30.0) -> RecordSink:
        """Connect, retrying while the broker is still coming up."""
        deadline = time.monotonic() + timeout
        delay = 0.1
        while True:
            producer = AIOKafkaProducer(**self._options)
            try:
                await producer.start()
                self._producer = producer
                return self
            except Exception:
                await producer.stop()
                if time.monotonic() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._send_open()
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()  # flushes what is queued

    async def __aenter__(self) -> RecordSink:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def connected(self) -> bool:
        """True while the producer is started and knows at least one broker."""
        p = self._producer
        return p is not None and not p._closed and bool(p.client.cluster.brokers())

    async def flush(self) -> None:
        await self._send_open()
        await self._require().flush()

    def _require(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise SinkError("sink is not started")
        return self._producer

    # raw records ---------------------------------------------------------------

    @staticmethod
    def key_of(record: RawRecord) -> str:
        """The parser's ordering key; the event id if the parser cannot tell (never drops the record)."""
        try:
            key = parser_for(record.vendor).key(record.payload)
        except (ParseError, KeyError, TypeError, ValueError):
            key = None
        return str(key) if key else record.event_id

    async def send(self, record: RawRecord) -> asyncio.Future[Any]:
        """Queue one raw record; the returned future resolves when Kafka acknowledged it.

        Records travel in batches (``schemas.raw_batch``): the record joins the open batch of
        its topic partition, which goes when full or ``linger_ms`` after it opened (0: once the
        caller yields, so one delivery's records still share a message). The future resolves to
        the batch's record metadata; the record's outcome is counted either way.
        """
        self._require()
        topic = self.topics.raw[SourceKind(record.source)]
        key = self.key_of(record).encode()
        batch, closed = self._batcher.add(topic, await self._partition(topic, key), key, record.to_json())
        pending = self._pending.get(id(batch))
        if pending is None:
            pending = self._pending[id(batch)] = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_later(self._linger, self._linger_due, batch)
        pending.add_done_callback(_delivery_counter(record.vendor, record.transport))
        if closed is not None:
            await self._send_batch(closed)
        return pending

    async def _partition(self, topic: str, key: bytes) -> int:
        """Kafka's default partitioner (murmur2 of the key), so a vendor object's records stay in order."""
        partitions = self._partitions.get(topic)
        if partitions is None:
            partitions = self._partitions[topic] = len(await self._require().partitions_for(topic))
        return partition_for(key, partitions)

    def _linger_due(self, batch: Batch) -> None:
        closed = self._batcher.close(batch)
        if closed is not None:
            task = asyncio.ensure_future(self._send_batch(closed))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send_batch(self, batch: Batch) -> None:
        """One message for the batch; its records' futures follow its delivery."""
        pending = self._pending.pop(id(batch))
        try:
            delivery = await self._require().send(batch.topic, value=batch.value(), key=batch.key,
                                                  partition=batch.partition, headers=raw_batch_headers(batch.count))
        except Exception as exc:
            pending.set_exception(exc)
            return
        delivery.add_done_callback(functools.partial(_follow, pending))

    async def _send_open(self) -> None:
        """Send every open batch now, and wait for batches a linger already sent."""
        for batch in self._batcher.close_all():
            await self._send_batch(batch)
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)

    async def send_and_wait(self, record: RawRecord) -> Any:
        return await (await self.send(record))

    async def send_all(self, records: list[RawRecord]) -> None:
        """Queue several records, then wait until Kafka acknowledged all of them."""
        await Submitted(records, [await self.send(r) for r in records]).acknowledged()

    async def submit(self, vendor: str, body: Any, *, transport: str, original: bytes | None = None,
                     where: str = "", received_at: Any = None) -> Submitted:
        """One delivery (bytes to decode, or an already decoded JSON value) → queued raw records.

        The one path every transport takes: decode, ``to_raw_records`` (the vendor's
        ``split``), send. Input without a usable shape becomes a dead letter that
        keeps the original bytes, with ``where`` (a line number, a page) in the detail.
        """
        if original is None:
            original = body if isinstance(body, bytes | bytearray) else orjson.dumps(body)
        prefix = f"{where}: " if where else ""
        try:
            if isinstance(body, bytes | bytearray):
                try:
                    body = orjson.loads(body)
                except orjson.JSONDecodeError as exc:
                    raise ParseError("not_json", f"body is not JSON ({exc})") from None
            records = to_raw_records(vendor, body, transport, received_at or utcnow())
        except Ignored as exc:
            log.debug("ignored %s %s delivery: %s", vendor, exc.type, exc.detail)
            CONNECTOR_RECORDS.labels(vendor, transport, "ignored").inc()
            return Submitted(ignored=1)
        except ParseError as exc:
            letter = await self.dead_letter(reason=exc.reason, detail=prefix + exc.detail, original=original,
                                            vendor=vendor, transport=transport, origin_ref=where)
            return Submitted(dead_letter=letter)
        except Exception as exc:  # a parser bug must not lose the input either
            log.exception("parser for %s failed on a %s delivery", vendor, transport)
            letter = await self.dead_letter(reason="invalid", detail=f"{prefix}parser raised {exc!r}",
                                            original=original, vendor=vendor, transport=transport, origin_ref=where)
            return Submitted(dead_letter=letter)
        records, unenriched = await self._enrich(vendor, records, original, transport, where)
        return Submitted(records=records, deliveries=[await self.send(r) for r in records], unenriched=unenriched)

    async def _enrich(self, vendor: str, records: list[RawRecord], original: bytes, transport: str,
                      where: str) -> tuple[list[RawRecord], list[DeadLetter]]:
        """Replace notification-only payloads by the objects they name (the vendor's ``enrichment``)."""
        enrichment = vendor_of(vendor).enrichment
        if enrichment is None:
            return records, []
        out: list[RawRecord] = []
        failed: list[DeadLetter] = []
        for record in records:
            req = enrichment.request(record.payload)
            if req is None:
                out.append(record)
                continue
            try:
                if self.enricher is None:
                    raise ParseError("enrichment_failed", f"{vendor} notification needs {req.path}; "
                                                          "no enrichment configured for this transport")
                payloads = await self.enricher.complete(vendor, record.payload, req)
            except Exception as exc:  # EnrichmentFailed, or anything else: the notification is kept
                detail = exc.detail if isinstance(exc, ParseError) else str(exc)
                own = original if len(records) == 1 else orjson.dumps(record.payload)
                failed.append(await self.dead_letter(reason="enrichment_failed", detail=f"{record.event_id}: {detail}",
                                                     original=own, vendor=vendor, transport=transport,
                                                     origin_ref=where or record.event_id))
                continue
            parser = parser_for(vendor)
            out += [record.model_copy(update={"payload": p, "event_id": parser.event_id(p)}) for p in payloads]
        return out, failed

    # dead letters --------------------------------------------------------------

    async def dead_letter(self, *, reason: str, detail: str, original: bytes | str, vendor: str | None,
                          transport: str, source: str | None = None, stage: str = "connector",
                          origin_ref: str = "", wait: bool = True) -> DeadLetter:
        """Write input that could not be used, with why; counted as ``outcome=dead_letter``."""
        raw = original.encode() if isinstance(original, str) else bytes(original)
        if len(raw) > MAX_ORIGINAL_BYTES:
            detail = f"{detail} [original cut to {MAX_ORIGINAL_BYTES} of {len(raw)} bytes]"
            raw = raw[:MAX_ORIGINAL_BYTES]
        if source is None and vendor is not None:
            try:
                source = parser_for(vendor).source.value
            except ParseError:
                source = None
        letter = DeadLetter.build(stage=stage, reason=reason, detail=f"{transport}: {detail}", original=raw,
                                  failed_at=utcnow(), source=source, vendor=vendor, origin_ref=origin_ref)
        producer = self._require()
        delivery = await producer.send(self.topics.dead_letter, value=letter.to_json(),
                                       key=(vendor or letter.dead_letter_id).encode(),
                                       headers=[("dead_letter_id", letter.dead_letter_id.encode()),
                                                ("reason", reason.encode())])
        DEAD_LETTERS.labels(stage, reason).inc()
        CONNECTOR_RECORDS.labels(vendor or "unknown", transport, "dead_letter").inc()
        if wait:
            await delivery
        return letter


def _follow(pending: asyncio.Future[Any], delivery: asyncio.Future[Any]) -> None:
    """Resolve a batch's records' future as its Kafka delivery resolved."""
    if pending.done():
        return
    if delivery.cancelled():
        pending.cancel()
    elif delivery.exception() is not None:
        pending.set_exception(delivery.exception())  # type: ignore[arg-type]
    else:
        pending.set_result(delivery.result())


@functools.lru_cache(maxsize=256)
def _delivery_counter(vendor: str, transport: str) -> Callable[[asyncio.Future[Any]], None]:
    """A done-callback counting one delivery; built once per (vendor, transport), it is on the hot path."""
    produced = CONNECTOR_RECORDS.labels(vendor, transport, "produced")
    failed = CONNECTOR_RECORDS.labels(vendor, transport, "failed")
    last_success = CONNECTOR_LAST_SUCCESS.labels(vendor, transport)

    def count(fut: asyncio.Future[Any]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            failed.inc()
        else:
            produced.inc()
            last_success.set(time.time())

    return count
