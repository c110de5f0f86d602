"""pipeline.sends: changelog writes reach the producer in write order, each partition's as record
batches; a flush returns only once everything queued before it was handed over (what a commit's
drain relies on); a table learns the offset of its last write in each delivered batch."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.structs import RecordMetadata, TopicPartition

from pipeline import sends as sends_module
from pipeline.sends import Sends


@pytest.fixture(autouse=True)
def batches_through_the_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    """``compat.hand_over`` reaches into aiokafka's accumulator (tested on a broker in
    tests/integration/test_hand_over.py); here the fake producer takes the batch."""
    async def hand_over(kafka: Any, builder: Any, topic: str, partition: int) -> asyncio.Future[Any]:
        return await kafka.send_batch(builder, topic, partition=partition)

    monkeypatch.setattr(sends_module, "hand_over", hand_over)


class Builder:
    """aiokafka's ``BatchBuilder`` as Sends uses it: ``append`` answers None once full."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.values: list[bytes | None] = []

    def append(self, *, key: bytes | None, value: bytes | None, timestamp: Any, headers: Any) -> object | None:
        if len(self.values) >= self.capacity:
            return None
        self.values.append(value)
        return object()


class Kafka:
    """What the aiokafka producer under Faust's is handed; each call yields to the loop, as aiokafka's may."""

    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self.sent: list[bytes | None] = []
        self.batches: list[tuple[str, int, list[bytes | None]]] = []
        self.offsets: dict[tuple[str, int], int] = {}

    def create_batch(self) -> Builder:
        return Builder(self.capacity)

    def _delivered(self, topic: str, partition: int, count: int) -> asyncio.Future[Any]:
        base = self.offsets.get((topic, partition), 0)
        self.offsets[(topic, partition)] = base + count
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(RecordMetadata(topic, partition, TopicPartition(topic, partition), base, -1, 0, 0))
        return done

    async def send_batch(self, builder: Builder, topic: str, *, partition: int) -> asyncio.Future[Any]:
        await asyncio.sleep(0)
        self.sent += builder.values
        self.batches.append((topic, partition, builder.values))
        return self._delivered(topic, partition, len(builder.values))

    async def send(self, topic: str, value: bytes | None, *, key: bytes | None, partition: int | None,
                   headers: Any) -> asyncio.Future[Any]:
        await asyncio.sleep(0)
        self.sent.append(value)
        return self._delivered(topic, partition or 0, 1)


class Producer:
    """Faust's producer: Sends reaches the aiokafka producer under it."""

    def __init__(self, kafka: Kafka) -> None:
        self.kafka = kafka

    def _ensure_producer(self) -> Kafka:
        return self.kafka


class App:
    def __init__(self, kafka: Kafka | None = None) -> None:
        self.producer = Producer(kafka or Kafka())


def sent(app: App) -> list[bytes | None]:
    return app.producer.kafka.sent


async def test_concurrent_flushes_keep_write_order_and_wait_for_each_other() -> None:
    app = App()
    sends = Sends(app)
    delivered: list[Any] = []

    def on_sent(fut: asyncio.Future[Any]) -> None:   # one per table, as Faust's bound method
        delivered.append(fut.result())

    for i in range(5):
        sends.queue_changelog("t-changelog", 0, b"k", b"v%d" % i, [], on_sent)
    first = asyncio.ensure_future(sends.flush())
    await asyncio.sleep(0)                      # the first flush is handing over its batch
    sends.queue_changelog("t-changelog", 0, b"k", b"v5", [])
    await sends.flush()                         # a commit's drain, meanwhile
    assert sent(app) == [b"v%d" % i for i in range(6)]  # v5 after v0..v4: the key's last value wins
    await first
    # one batch of five, and the table told of its last write's offset once
    assert [(t, p, len(v)) for t, p, v in app.producer.kafka.batches] == [("t-changelog", 0, 5), ("t-changelog", 0, 1)]
    assert [(m.topic, m.partition, m.offset) for m in delivered] == [("t-changelog", 0, 4)]
    assert not sends.changelog


async def test_each_partition_is_one_batch_in_write_order_split_at_the_batch_size() -> None:
    app = App(Kafka(capacity=2))
    sends = Sends(app)
    reports: dict[str, list[int]] = {"a": [], "b": []}
    tables = {t: (lambda fut, t=t: reports[t].append(fut.result().offset)) for t in reports}   # a callback each
    writes = [("t-a", 0, b"a0"), ("t-a", 1, b"a1"), ("t-a", 0, b"a2"), ("t-b", 0, b"b0"), ("t-a", 0, b"a3"),
              ("t-a", 0, b"a4")]
    for topic, partition, value in writes:
        sends.queue_changelog(topic, partition, b"k", value, [], tables[topic[-1]])
    await sends.flush()
    await asyncio.sleep(0)   # delivery callbacks run on the loop
    assert app.producer.kafka.batches == [("t-a", 0, [b"a0", b"a2"]), ("t-a", 1, [b"a1"]), ("t-b", 0, [b"b0"]),
                                          ("t-a", 0, [b"a3", b"a4"])]
    # t-a's partition 0 took offsets 0..1, then 2..3; partition 1 its offset 0; t-b its 0
    assert reports == {"a": [1, 0, 3], "b": [0]}


class CancelledOnSecondBatch(Kafka):
    async def send_batch(self, builder: Builder, topic: str, *, partition: int) -> asyncio.Future[Any]:
        if len(self.batches) == 1:
            raise asyncio.CancelledError
        return await super().send_batch(builder, topic, partition=partition)


async def test_a_cancelled_flush_keeps_what_it_did_not_hand_over_for_the_next() -> None:
    app = App(CancelledOnSecondBatch())
    sends = Sends(app)
    for partition, value in [(0, b"v0"), (1, b"v1"), (0, b"v2"), (1, b"v3")]:
        sends.queue_changelog("t-changelog", partition, b"k", value, [])
    try:
        await sends.flush()
    except asyncio.CancelledError:
        pass
    assert sent(app) == [b"v0", b"v2"] and [c[3] for c in sends.changelog] == [b"v1", b"v3"]
    app.producer.kafka = Kafka()
    await sends.flush()
    assert sent(app) == [b"v1", b"v3"] and not sends.changelog


class RefusingKafka(Kafka):
    """Accepts every message; the broker refuses the second (its delivery fails later)."""

    async def send(self, topic: str, value: bytes | None, *, key: bytes | None, partition: int | None,
                   headers: Any) -> asyncio.Future[Any]:
        self.sent.append(value)
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if len(self.sent) == 2:
            done.set_exception(RuntimeError("MessageSizeTooLargeError"))
        else:
            done.set_result(RecordMetadata(topic, partition or 0, TopicPartition(topic, partition or 0), 0, -1, 0, 0))
        return done


async def test_a_write_the_producer_gives_up_on_is_recorded_and_stays_recorded() -> None:
    app = App(RefusingKafka())
    sends = Sends(app)
    await sends.send("lifecycle.account-events", "acct:a", b"1", partition=0)
    await asyncio.sleep(0)
    assert sends.failed is None
    await sends.send("lifecycle.account-events", "acct:a", b"2", partition=0)
    sends.queue_changelog("t-changelog", 0, b"k", b"v", [])
    await sends.flush()
    await asyncio.sleep(0)
    assert isinstance(sends.failed, RuntimeError)   # what the commit refuses on (pipeline.compat)
    assert sent(app) == [b"1", b"2", b"v"]          # later writes succeed, and change nothing


async def test_a_refused_batch_is_recorded_and_the_table_is_not_told_it_was_written() -> None:
    class RefusingBatches(Kafka):
        async def send_batch(self, builder: Builder, topic: str, *, partition: int) -> asyncio.Future[Any]:
            done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            done.set_exception(RuntimeError("NotLeaderForPartitionError"))
            return done

    app = App(RefusingBatches())
    sends = Sends(app)
    told: list[Any] = []
    sends.queue_changelog("t-changelog", 0, b"k", b"v", [], told.append)
    await sends.flush()
    await asyncio.sleep(0)
    assert isinstance(sends.failed, RuntimeError) and told == []
