"""pipeline.sends: changelog writes reach the producer in write order, and a flush returns only
once everything queued before it was handed over (what a commit's drain relies on)."""

from __future__ import annotations

import asyncio
from typing import Any

from pipeline.sends import Sends


class SlowProducer:
    """Records what it was handed; each send yields to the loop, as aiokafka's may."""

    def __init__(self) -> None:
        self.sent: list[bytes | None] = []

    async def send(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
                   timestamp: Any, headers: Any) -> asyncio.Future[Any]:
        await asyncio.sleep(0)
        self.sent.append(value)
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result((topic, partition))
        return done


class App:
    def __init__(self) -> None:
        self.producer = SlowProducer()


async def test_concurrent_flushes_keep_write_order_and_wait_for_each_other() -> None:
    app = App()
    sends = Sends(app)
    delivered: list[Any] = []
    for i in range(5):
        sends.queue_changelog("t-changelog", 0, b"k", b"v%d" % i, [], lambda fut: delivered.append(fut.result()))
    first = asyncio.ensure_future(sends.flush())
    await asyncio.sleep(0)                      # the first flush is handing over its batch
    sends.queue_changelog("t-changelog", 0, b"k", b"v5", [])
    await sends.flush()                         # a commit's drain, meanwhile
    assert app.producer.sent == [b"v%d" % i for i in range(6)]  # v5 after v0..v4: the key's last value wins
    await first
    assert delivered == [("t-changelog", 0)] * 5 and not sends.changelog


class CancelledOnSecond(SlowProducer):
    async def send(self, *args: Any) -> asyncio.Future[Any]:
        if len(self.sent) == 1:
            raise asyncio.CancelledError
        return await super().send(*args)


async def test_a_cancelled_flush_keeps_what_it_did_not_hand_over_for_the_next() -> None:
    app = App()
    app.producer = CancelledOnSecond()
    sends = Sends(app)
    for i in range(3):
        sends.queue_changelog("t-changelog", 0, b"k", b"v%d" % i, [])
    try:
        await sends.flush()
    except asyncio.CancelledError:
        pass
    assert app.producer.sent == [b"v0"] and [c[3] for c in sends.changelog] == [b"v1", b"v2"]
    app.producer = SlowProducer()
    await sends.flush()
    assert app.producer.sent == [b"v1", b"v2"] and not sends.changelog


class RefusingProducer(SlowProducer):
    """Accepts every message; the broker refuses the second (its delivery fails later)."""

    async def send(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
                   timestamp: Any, headers: Any) -> asyncio.Future[Any]:
        self.sent.append(value)
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if len(self.sent) == 2:
            done.set_exception(RuntimeError("MessageSizeTooLargeError"))
        else:
            done.set_result((topic, partition))
        return done


async def test_a_write_the_producer_gives_up_on_is_recorded_and_stays_recorded() -> None:
    app = App()
    app.producer = RefusingProducer()
    sends = Sends(app)
    await sends.send("lifecycle.account-events", "acct:a", b"1", partition=0)
    await asyncio.sleep(0)
    assert sends.failed is None
    await sends.send("lifecycle.account-events", "acct:a", b"2", partition=0)
    sends.queue_changelog("t-changelog", 0, b"k", b"v", [])
    await sends.flush()
    await asyncio.sleep(0)
    assert isinstance(sends.failed, RuntimeError)   # what the commit refuses on (pipeline.compat)
    assert app.producer.sent == [b"1", b"2", b"v"]   # later writes succeed, and change nothing
