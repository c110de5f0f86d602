"""Faust's consumer with ``pipeline.compat``'s ack patch: only the agents' acks count, and a
commit never moves past an offset nobody acknowledged.

The consistency verifier's sigterm scenario lost account batches because Faust's stream
iterator acknowledges events it skips (flow suspended at shutdown, or fetched before the
assignment's generation was known), even on a ``noack()`` stream; these tests pin the two
guards on Faust's real ``Consumer`` bookkeeping (no broker is needed to ack or pick an offset).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import faust
import pytest
from faust.events import Event
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from pipeline.compat import acknowledge, patch_faust_manual_acks

TOPIC = "compat-acks"
tp = TP(TOPIC, 0)


@pytest.fixture()
def consumer() -> Iterator[faust.types.ConsumerT]:
    patch_faust_manual_acks()
    app = faust.App("compat-acks", broker="kafka://127.0.0.1:1")
    topic = app.topic(TOPIC)
    app.topics.add(topic)
    asyncio.run(app.topics._update_indices())  # marks the topic as acking, as a subscribed agent would
    assert app.topics.acks_enabled_for(TOPIC)
    yield app.consumer


def _message(offset: int) -> ConsumerMessage:
    message = ConsumerMessage(TOPIC, 0, offset, 0.0, 0, None, b"k", b"v", None)
    message.incref()  # delivered to one stream
    return message


def _event(consumer: faust.types.ConsumerT, offset: int) -> Event:
    return Event(consumer.app, b"k", b"v", {}, _message(offset))


def test_an_ack_faust_makes_for_a_skipped_event_is_not_recorded(consumer: faust.types.ConsumerT) -> None:
    _message(0).ack(consumer)  # what the stream iterator does for an event it skips
    assert list(consumer._acked[tp]) == []
    assert consumer._new_offset(tp) is None

    acknowledge(_event(consumer, 0))  # what an agent does once the event's work is written
    assert list(consumer._acked[tp]) == [0]
    assert consumer._new_offset(tp) == 1


def test_a_commit_never_moves_past_an_unacknowledged_offset(consumer: faust.types.ConsumerT) -> None:
    consumer._committed_offset[tp] = 3  # the next offset to read
    for offset in (4, 5):  # offset 3 was never acknowledged (Faust's own check lets a hole of one pass)
        acknowledge(_event(consumer, offset))
    assert consumer._new_offset(tp) is None

    acknowledge(_event(consumer, 3))
    assert consumer._new_offset(tp) == 6


def test_no_offset_is_committed_after_a_write_the_producer_gave_up_on(
        consumer: faust.types.ConsumerT, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    import pipeline.compat as compat

    compat.patch_faust_durable_commit()

    async def drained(producer: object) -> bool:
        return True

    crashed: list[BaseException] = []

    async def crash(exc: BaseException) -> None:
        crashed.append(exc)

    monkeypatch.setattr(compat, "drain_producer", drained)
    app = consumer.app
    monkeypatch.setattr(app, "crash", crash)
    app.sends = SimpleNamespace(failed=RuntimeError("MessageSizeTooLargeError"))  # type: ignore[attr-defined]
    assert asyncio.run(consumer._commit_offsets({tp: 5})) is False
    assert [str(e) for e in crashed] == ["MessageSizeTooLargeError"]
    assert consumer._committed_offset[tp] is None


def test_once_the_app_stops_agents_take_nothing_more() -> None:
    """After a graceful stop's last commit, what is delivered is read again by the restarted worker."""
    from types import SimpleNamespace

    from pipeline.compat import stale

    event = SimpleNamespace(message=SimpleNamespace(generation_id=3))
    running = SimpleNamespace(should_stop=False, flow_control=SimpleNamespace(is_active=lambda: True),
                              consumer_generation_id=3)
    assert not stale(running, event)
    assert stale(SimpleNamespace(**{**vars(running), "should_stop": True}), event)


def test_the_worker_consumer_waits_at_most_the_apps_fetch_wait(tmp_path) -> None:
    """Faust's driver fixes 1,500 ms; the embedded broker holds every fetch that long, so the
    pipeline's app sets its own (``Settings.fetch_max_wait_ms``) and the patch applies it."""
    from pipeline.app import LifecyclePipeline
    from pipeline.compat import patch_faust_fetch_wait
    from pipeline.settings import Settings

    async def fetch_wait(app: faust.App) -> int:  # aiokafka builds its consumer inside a loop
        return app.consumer._thread._create_worker_consumer(app.transport)._fetch_max_wait_ms

    patch_faust_fetch_wait()
    plain = faust.App("compat-fetch-plain", broker="kafka://127.0.0.1:1")
    assert asyncio.run(fetch_wait(plain)) == 1500

    settings = Settings(bootstrap_servers="127.0.0.1:1", data_dir=tmp_path, fetch_max_wait_ms=37,
                        web_enabled=False, role="stream")
    assert asyncio.run(fetch_wait(LifecyclePipeline(settings).app)) == 37
