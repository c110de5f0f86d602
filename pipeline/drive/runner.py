"""Drive a pipeline from outside, the way the demo, the benchmark and the tests do:
run workers as real processes, feed raw records, wait for the consumer group to
catch up (reading topics back: ``pipeline.topic_reads``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient

from pipeline.broker import die_with_parent, free_port
from pipeline.kafka_clients import client_kwargs
from pipeline.settings import Settings, topics_for
from pipeline.topic_reads import READ_FETCH, true_end_offsets
from schemas.events import RawRecord
from schemas.raw_batch import batched, partition_for
from schemas.raw_batch import headers as raw_batch_headers
from schemas.topics import Topics


class WorkerProcess:
    """``lifecycle worker`` as a child process; ready when /readyz says so."""

    def __init__(self, settings: Settings, log_path: Path, ready_timeout: float = 90.0) -> None:
        self.settings = settings if settings.web_port != 6066 else settings.with_(web_port=free_port())
        self.log_path = log_path
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.settings.web_host}:{self.settings.web_port}"

    def start(self) -> WorkerProcess:
        start_together([self])
        return self

    def launch(self) -> WorkerProcess:
        """Start the process, not waiting for it (``ready``). From the thread that will outlive it:
        ``die_with_parent`` ends the child when the thread that started it ends."""
        env = os.environ.copy() | self.settings.to_env()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "worker"], env=env,
                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=die_with_parent)
        log.close()
        return self

    def ready(self, deadline: float) -> bool:
        """Whether /readyz says 200 now; raises if the worker exited or ``deadline`` passed."""
        assert self.proc is not None, "launch() first"
        if self.proc.poll() is not None:
            raise RuntimeError(f"worker exited with {self.proc.returncode}; log:\n{self.tail()}")
        if self.get("/readyz", quiet=True) == 200:
            return True
        if time.monotonic() >= deadline:
            self.stop()
            raise RuntimeError(f"worker not ready after {self.ready_timeout}s; log:\n{self.tail()}")
        return False

    def get(self, path: str, quiet: bool = False) -> int | None:
        try:
            with urllib.request.urlopen(self.url + path, timeout=2) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            if quiet:
                return None
            raise

    def fetch(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=10) as resp:
            return resp.read()

    def assignment(self) -> dict[str, list[int]]:
        """The partitions this worker owns now, topic → partitions (its ``/assignment``, active)."""
        return orjson.loads(self.fetch("/assignment"))["active"]

    def owned_inputs(self) -> str:
        """The input partitions this worker owns now (tables' changelogs, which follow their input
        partitions, left out): ``topic [partitions]; ...``, the one-partition parsed topics counted."""
        owned = {topic: parts for topic, parts in self.assignment().items()
                 if not topic.endswith("-changelog") and "__assignor" not in topic}
        parsed = [topic for topic in owned if self.settings.topics.is_parsed(topic)]
        shown = [f"{topic} {parts}" for topic, parts in owned.items() if topic not in parsed]
        if parsed:
            shown.append(f"{len(parsed)} parsed topics ({self.settings.topics.parsed_pattern})")
        return "; ".join(shown) or "-"

    def stop(self, timeout: float = 30.0) -> int | None:
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL: no commit, no clean shutdown; the next worker replays."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_together(workers: Sequence[WorkerProcess],
                   on_ready: Callable[[int, WorkerProcess], None] | None = None) -> None:
    """Launch ``workers`` at once (a group forms as in a deployment) and wait until each answers
    /readyz, each within its own ``ready_timeout``; ``on_ready(i, worker)`` as each becomes ready.
    Launched from this thread, so they live as long as it does (``die_with_parent``). If one
    fails, all are stopped."""
    for worker in workers:
        worker.launch()
    deadlines = [time.monotonic() + w.ready_timeout for w in workers]
    waiting = set(range(len(workers)))
    try:
        while waiting:
            for i in sorted(waiting):
                if workers[i].ready(deadlines[i]):
                    waiting.discard(i)
                    if on_ready is not None:
                        on_ready(i, workers[i])
            if waiting:
                time.sleep(0.1)
    except BaseException:
        for worker in workers:
            worker.stop()
        raise


def produce_raw(bootstrap: str, records: Iterable[RawRecord], key: Callable[[RawRecord], str] | None = None,
                topic: str | None = None, topics: Topics | None = None) -> int:
    """Write raw records to their source's raw topic in ``topics`` (default: the environment's
    namespace), or all to ``topic``, in batches per partition of their key, as a connector
    does when records arrive faster than its linger (``schemas.raw_batch``); returns records."""
    raw = (topics or topics_for()).raw
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all", batch_size=1024 * 1024,
                             max_request_size=2 * 1024 * 1024, **client_kwargs())
    partitions: dict[str, int] = {}

    def placed(record: RawRecord) -> tuple[str, int, bytes, bytes]:
        target = topic or raw[record.source]
        if target not in partitions:
            partitions[target] = len(producer.partitions_for(target))
        k = (key(record) if key else record.event_id).encode()
        return target, partition_for(k, partitions[target]), k, record.to_json()

    n = 0
    for batch in batched(map(placed, records)):
        producer.send(batch.topic, key=batch.key, value=batch.value(), partition=batch.partition,
                      headers=raw_batch_headers(batch.count))
        n += batch.count
    producer.flush()
    producer.close()
    return n


def produce_bytes(bootstrap: str, topic: str, values: Sequence[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, **client_kwargs())
    for v in values:
        producer.send(topic, value=v)
    producer.flush()
    producer.close()


def group_lag(bootstrap: str, group: str, topics: Sequence[str]) -> int:
    """Messages on ``topics`` not yet committed by ``group`` (-1 if the group has no commits yet)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **client_kwargs())
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **READ_FETCH,
                             **client_kwargs())
    try:
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        end = true_end_offsets(consumer, tps)
        committed = admin.list_group_offsets({group: tps}).get(group, {})
        total = 0
        for tp in tps:
            if end[tp] == 0:
                continue
            c = committed.get(tp)
            if c is None or c.offset < 0:
                total += end[tp]
            else:
                total += max(0, end[tp] - c.offset)
        return total
    finally:
        consumer.close()
        admin.close()


def wait_caught_up(bootstrap: str, group: str, topics: Sequence[str], timeout: float = 120.0,
                   settle: float = 1.5) -> float:
    """Block until the group has committed everything on ``topics`` and stays so for ``settle`` s."""
    start = time.monotonic()
    zero_since: float | None = None
    while time.monotonic() - start < timeout:
        lag = group_lag(bootstrap, group, topics)
        now = time.monotonic()
        if lag == 0:
            zero_since = zero_since or now
            if now - zero_since >= settle:
                return now - start
        else:
            zero_since = None
        time.sleep(0.3)
    raise TimeoutError(f"group {group} still lagging on {topics} after {timeout}s")


def internal_topics(settings: Settings) -> list[str]:
    """What the processing agents consume (the benchmark's measure of done), in ``settings``'
    namespace and partition count (the parsed topics are one per raw partition)."""
    t = settings.topics
    return [*t.raw.values(), *t.parsed(settings.partitions), t.account_events]


def consumed_topics(settings: Settings) -> list[str]:
    """Everything a worker consumes, the read-model sink included (the tests' and demo's measure of done)."""
    from pipeline.agents.sink import sink_topics

    return [*internal_topics(settings), *sink_topics(settings.topics)]
