"""The parse process (``pipeline.parse_pool``): a raw message parsed in a real child process
gives exactly what the same parse gives on the event loop, and a child that dies is replaced
without losing the message it had."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from pipeline.drive.bench import children, cpu_seconds, encode
from pipeline.ingest import parse_message, parse_to_wire, to_parsed
from pipeline.journey import load_journey
from pipeline.metrics import REGISTRY
from pipeline.parse_pool import ParseOptions, ParsePool, RawMessage
from pipeline.sample import SampleConfig, generate
from pipeline.settings import Settings
from pipeline.core.identity import UsableIdentifiers
from schemas.base import dumps

NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)
SKEW = timedelta(hours=1)


@pytest.fixture(scope="module")
def options() -> ParseOptions:
    return ParseOptions(load_journey(Settings().journey_path).identity, accept_test_mode=False, future_skew=SKEW)


@pytest.fixture(scope="module")
def messages() -> list[RawMessage]:
    """A small generated sample (its planted malformed records included) as raw batch messages."""
    settings = Settings()
    encoded = encode(generate(SampleConfig(accounts=12, seed=5)), settings.partitions, settings.topics)
    return [RawMessage(value, topic, partition, offset, offset + 1, offset, NOW)
            for offset, (topic, partition, _key, value, _count) in enumerate(encoded)]


def _parse_processes(before: set[int]) -> set[int]:
    """This process's children started since ``before`` that run a pool's worker (``spawn``
    also starts multiprocessing's resource tracker)."""
    out = set()
    for pid in set(children(os.getpid())) - before:
        try:
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.add(pid)
        except OSError:
            continue
    return out


def _processes(state: str) -> float | None:
    """``lifecycle_parse_processes{state}``: configured, or running now."""
    return REGISTRY.get_sample_value("lifecycle_parse_processes", {"state": state})


def _restarts() -> float:
    """Parse processes replaced so far in this test process (``lifecycle_parse_process_restarts_total``)."""
    return REGISTRY.get_sample_value("lifecycle_parse_process_restarts_total") or 0.0


def test_the_wire_form_is_the_parsed_message_and_its_dead_letters(options: ParseOptions,
                                                                 messages: list[RawMessage]) -> None:
    usable = UsableIdentifiers(options.identity)
    letters = 0
    for m in messages:
        wire = parse_to_wire(m.value, m.topic, m.partition, m.offset, m.highwater, m.after, now=NOW,
                             accept_test_mode=False, future_skew=SKEW, usable=usable)
        parsed = parse_message(m.value, m.topic, f"{m.topic}/{m.partition}/{m.offset}", now=NOW,
                               accept_test_mode=False, future_skew=SKEW)
        assert wire.value == dumps(to_parsed(parsed, m.offset, m.highwater, after=m.after, usable=usable))
        assert wire.dead_letters == [r.dead_letter for r in parsed.records if r.dead_letter is not None]
        assert sum(wire.ingested.values()) == len(parsed.records) == orjson.loads(wire.value)["records"]
        assert sum(wire.kinds.values()) == sum(len(events) for events in parsed.events)
        letters += len(wire.dead_letters)
    assert letters > 0   # the sample's planted malformed records


def test_a_child_process_parses_exactly_as_the_event_loop_does(options: ParseOptions,
                                                               messages: list[RawMessage]) -> None:
    inline, pool = ParsePool(options, processes=0), ParsePool(options, processes=1)
    before = set(children(os.getpid()))
    pool.start()
    try:
        assert pool._executor is not None
        here = [asyncio.run(inline.parse(m)) for m in messages]
        there = [asyncio.run(pool.parse(m)) for m in messages]
        assert [(w.value, w.dead_letters, w.ingested, w.ignored, w.kinds) for w in there] == \
               [(w.value, w.dead_letters, w.ingested, w.ignored, w.kinds) for w in here]
        assert sum(w.cpu for w in there) > 0
        [child] = _parse_processes(before)   # the bench counts its CPU as the worker's
        assert cpu_seconds(os.getpid()) > cpu_seconds(child) > 0
    finally:
        pool.close()


def test_a_dead_child_is_replaced_and_its_message_parsed_on_the_loop(options: ParseOptions,
                                                                   messages: list[RawMessage]) -> None:
    pool = ParsePool(options, processes=1)
    before = set(children(os.getpid()))
    pool.start()
    try:
        first = asyncio.run(pool.parse(messages[0]))
        [child] = _parse_processes(before)
        os.kill(child, signal.SIGKILL)
        again = asyncio.run(pool.parse(messages[0]))   # the pool finds its process gone
        assert again.value == first.value
        after = asyncio.run(pool.parse(messages[1]))   # and parses in a new one
        assert _parse_processes(before) - {child} and _processes("running") == 1
        assert after.value == asyncio.run(ParsePool(options, processes=0).parse(messages[1])).value
    finally:
        pool.close()
    assert asyncio.run(pool.parse(messages[0])).value == first.value   # closed: on the loop, never restarted


def test_parses_in_flight_when_the_child_dies_are_all_kept_and_the_child_replaced_once(
        options: ParseOptions, messages: list[RawMessage]) -> None:
    """The parse agent keeps several messages in flight: each one the dead child had is parsed
    on the loop, and only the first parse to find it dead starts a new child (a later one must
    not shut down the new child, and with it the parses already submitted to it)."""
    inline = ParsePool(options, processes=0)
    pool = ParsePool(options, processes=1)
    before = set(children(os.getpid()))
    pool.start()

    async def burst() -> list[bytes]:
        await pool.parse(messages[0])   # the child is up
        [child] = _parse_processes(before)
        parses = [asyncio.ensure_future(pool.parse(m)) for m in messages]
        await asyncio.sleep(0)          # every parse submitted to the child
        os.kill(child, signal.SIGKILL)
        return [w.value for w in await asyncio.gather(*parses)]

    restarts = _restarts()
    try:
        values = asyncio.run(burst())
        assert values == [asyncio.run(inline.parse(m)).value for m in messages]
        assert _restarts() == restarts + 1
        assert asyncio.run(pool.parse(messages[1])).value == values[1]   # in the new child
        assert pool._executor is not None and len(_parse_processes(before)) >= 1
    finally:
        pool.close()


def test_a_child_that_dies_before_its_first_parse_is_not_replaced(options: ParseOptions,
                                                                   messages: list[RawMessage]) -> None:
    """A child that cannot start (or dies at once) would otherwise be spawned again for every
    message: the pool parses on the loop from then on, and says so once."""
    pool = ParsePool(options, processes=1)
    before = set(children(os.getpid()))
    restarts = _restarts()
    pool.start()
    assert (_processes("configured"), _processes("running")) == (1, 1)
    try:
        deadline = time.monotonic() + 30
        while not _parse_processes(before) and time.monotonic() < deadline:
            time.sleep(0.05)
        [child] = _parse_processes(before)
        os.kill(child, signal.SIGKILL)
        inline = ParsePool(options, processes=0)
        for m in messages[:3]:
            assert asyncio.run(pool.parse(m)).value == asyncio.run(inline.parse(m)).value
        assert pool._executor is None
        assert _restarts() == restarts
        assert (_processes("configured"), _processes("running")) == (1, 0)   # the alert's condition
        time.sleep(0.5)
        assert not _parse_processes(before) - {child}   # no new child was started
    finally:
        pool.close()
