"""``lifecycle bench``: the real pipeline against a raw Kafka loop and a bare Faust agent,
over the same bytes on the same broker, in one run.

Before anything is timed and before any worker starts, the generated sample is encoded
once and preloaded into the four raw topics (aiokafka, large batches). Each phase then
reads those same records from the start of those topics:

(a) raw: an aiokafka consume → orjson decode → encode → produce loop in this process,
    the ceiling for any Python consumer here; it reads the topics again and again (at
    least 3 passes and 200,000 records) and reports the median pass.
(b) pipeline: a ``lifecycle worker --role stream`` process (parse + identity → accounts),
    timed from its /readyz answering 200 to its consumer group having committed every raw
    record and every message on the account topic; CPU per record is its own. The read-model
    sink is its own role (``--role sink``, its own group) so SQL never competes with the
    stream loop; in production it runs on its own machine, and on a 2-core bench it would
    take CPU from the worker being timed, so it runs afterwards, over everything the stream
    worker published, and its own rate is printed.
(c) faust floor: a minimal Faust app in its own process (own group, the pipeline's Faust
    settings) whose one agent forwards each raw record, decoded and re-encoded, to a
    scratch topic; timed the same way, from its agent running.

Workers consume from the moment they are assigned their partitions, so what they do
in the last readiness poll (≤ 0.2 s) before the clock starts is not timed. "Done" is
checked every 0.5 s. CPU per record is the worker's utime + stime over the timed span
(the bench process's own for (a)). Each repetition runs on a fresh embedded broker.
Reported as ratios: these machines are noisy, absolute numbers are not comparable
between runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition as AioTopicPartition
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from pipeline.broker import die_with_parent
from pipeline.agents.sink import sink_topics
from pipeline.drive.runner import WorkerProcess, internal_topics, start_together
from pipeline.kafka_clients import client_kwargs
from pipeline.topic_reads import READ_FETCH, true_end_offsets
from pipeline.runtime import broker_for, create_topics
from pipeline.settings import Settings
from pipeline.topics import ensure_topics
from schemas.raw_batch import batched, pack, partition_for, unpack
from schemas.raw_batch import headers as raw_batch_headers
from schemas.topics import DEFAULT, Topics

if TYPE_CHECKING:
    import faust

    from pipeline.offline import RawInput, ReplayOutput, StageCpu
    from schemas.events import RawRecord

Echo = Callable[[str], None]
Message = tuple[str, int, bytes, bytes, int]  # topic, partition, key, value, records in it
S = TypeVar("S")


class BenchUsageError(ValueError):
    """Options that cannot work together (or with this environment)."""


RAW_OUT = "bench.raw-out"      # scratch topics, in the settings' topic namespace (Topics.name)
FLOOR_OUT = "bench.floor-out"
PIPELINE_APP_ID = "lifecycle-bench"
FLOOR_APP_ID = "lifecycle-bench-floor"
RAW_MIN_PASSES = 3
RAW_MIN_RECORDS = 200_000
POLL_SECONDS = 0.5
FLOOR_POLL_SECONDS = 0.05   # the floor drains in about a second: polled, and committing, at this pace
IDLE_SECONDS = 2.0   # how long the broker's idle CPU is read, once the workers are drained


@dataclass(frozen=True)
class Rate:
    """Records handled in a timed span, with the CPU they took."""

    records: int
    seconds: float
    cpu_seconds: float
    peak_rss_mib: float | None = None
    cpu_by_process: tuple[float, ...] = ()   # several processes: each one's part of ``cpu_seconds``
    own_by_process: tuple[float, ...] = ()   # and of that, each one's own, without its children's

    def busy(self, cpu: float) -> str:
        """``cpu`` seconds as a share of a core over the span."""
        return f"{cpu / self.seconds:.0%}"

    @property
    def per_second(self) -> float:
        return self.records / self.seconds

    @property
    def cpu_us_per_record(self) -> float:
        return self.cpu_seconds / self.records * 1e6

    def details(self) -> str:
        rss = f", peak RSS {self.peak_rss_mib:.0f} MiB" if self.peak_rss_mib is not None else ""
        return f"({self.records:,} in {self.seconds:.2f}s), CPU {self.cpu_us_per_record:,.0f} µs/record{rss}"

    def describe(self) -> str:
        return f"{self.per_second:,.0f} events/s {self.details()}"


@dataclass(frozen=True)
class RunResult:
    """One run's three phases, over the same records."""

    raw: Rate
    pipeline: Rate
    floor: Rate

    @property
    def ratio(self) -> float:
        return self.pipeline.per_second / self.raw.per_second

    @property
    def floor_ratio(self) -> float:
        return self.floor.per_second / self.raw.per_second


# ---- the sample, preloaded ----------------------------------------------------------------

def sample(accounts: int, seed: int, records: int | None) -> tuple[list[RawRecord], int]:
    """The generated sample and its accounts; with ``records``, grown (more accounts) and cut
    to exactly that many."""
    from pipeline.sample import SampleConfig, generate

    out = generate(SampleConfig(accounts=accounts, seed=seed))
    while records and len(out) < records:  # records grow about linearly with accounts
        accounts = math.ceil(accounts * records / max(len(out), 1) * 1.05)
        out = generate(SampleConfig(accounts=accounts, seed=seed))
    return (out[:records] if records else out), accounts


def encode(records: Sequence[RawRecord], partitions: int, topics: Topics = DEFAULT) -> list[Message]:
    """The records as a connector writes them when they arrive faster than its linger (a
    replay): batches per raw-topic partition (``schemas.raw_batch``), keyed by event id over
    ``partitions`` partitions, as created."""
    placed = ((topics.raw[r.source], partition_for(key, partitions), key, r.to_json())
              for r in records for key in (r.event_id.encode(),))
    return [(b.topic, b.partition, b.key, b.value(), b.count) for b in batched(placed)]


def record_count(messages: Sequence[Message]) -> int:
    return sum(m[4] for m in messages)


async def _produce(bootstrap: str, messages: Sequence[Message]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=50, max_batch_size=1024 * 1024,
                                max_request_size=2 * 1024 * 1024, **client_kwargs())
    await producer.start()
    try:
        for topic, partition, key, value, count in messages:
            await producer.send(topic, key=key, value=value, partition=partition, headers=raw_batch_headers(count))
        await producer.flush()
    finally:
        await producer.stop()


def preload(bootstrap: str, messages: Sequence[Message]) -> float:
    """Write every message before anything is timed (aiokafka: ~6x kafka-python's rate here); seconds."""
    started = time.perf_counter()
    asyncio.run(_produce(bootstrap, messages))
    return time.perf_counter() - started


# ---- measuring a process from outside -------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """utime + stime so far of a process and its living children (a stream worker's parse
    process, ``pipeline.parse_pool``), and of the children it has reaped (Linux /proc)."""
    return cpu_split(pid)[0]


def cpu_split(pid: int) -> tuple[float, float]:
    """``cpu_seconds`` and, of it, the process's own (its children's left out), from one reading."""
    own = _own_cpu(pid)
    return own + sum(_own_cpu(p) for p in children(pid)), own


def _own_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:   # it exited meanwhile
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """A process's living children."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            out += [int(c) for c in task.read_text().split()]
        except OSError:
            continue
    return out


def broker_pid(bootstrap: str) -> int | None:
    """The embedded broker serving ``bootstrap``, found by the listener on its command line
    (``pipeline.broker.EmbeddedBroker``); None for a broker that is not a process here."""
    listener = f"tcp://{bootstrap.split(',')[0]}".encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if listener in (proc / "cmdline").read_bytes().split(b"\0"):
                    return int(proc.name)
            except OSError:
                continue
    return None


def peak_rss_mib(pid: int) -> float:
    """The peak RSS of a process plus its living children's (each its own peak)."""
    return sum(_own_peak_rss_mib(p) for p in (pid, *children(pid)))


def _own_peak_rss_mib(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class CommitWatch:
    """Whether a consumer group has committed everything on some topics.

    One consumer (for true end offsets: see ``topic_reads.true_end_offsets``) and one admin
    client (for the group's commits) serve a whole run: a client per poll costs a
    connection and metadata round trip each time, and closing one mid-refresh logs an
    error. The watch shares the machine with what it times, so it must cost next to
    nothing: the preloaded topics' ends are read once (``fix``), and the consumer skips
    CRC checks (kafka-python's are pure Python: re-reading a 500-record raw batch each poll
    took most of a core away from the worker being timed).
    """

    def __init__(self, bootstrap: str) -> None:
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                      **READ_FETCH, **client_kwargs())
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap, **client_kwargs())
        self.fixed: dict[TopicPartition, int] = {}

    def fix(self, topics: Sequence[str]) -> dict[TopicPartition, int]:
        """Read the ends of topics that will not grow (the preloaded input) once, for every later poll."""
        ends = self.ends(topics)
        self.fixed.update(ends)
        return ends

    def partitions(self, topics: Sequence[str]) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t in topics for p in sorted(self.consumer.partitions_for_topic(t) or ())]

    def ends(self, topics: Sequence[str]) -> dict[TopicPartition, int]:
        tps = self.partitions(topics)
        ends = {tp: self.fixed[tp] for tp in tps if tp in self.fixed}
        return ends | true_end_offsets(self.consumer, [tp for tp in tps if tp not in ends])

    def lag(self, group: str, topics: Sequence[str]) -> int:
        """Messages on ``topics`` that ``group`` has not committed yet."""
        ends = self.ends(topics)
        committed = self.admin.list_group_offsets({group: list(ends)}).get(group, {})
        lag = 0
        for tp, end in ends.items():
            c = committed.get(tp)
            lag += max(0, end - (c.offset if c is not None and c.offset > 0 else 0))
        return lag

    def wait(self, group: str, topics: Sequence[str], sample: Callable[[], S],
             timeout: float, poll: float = POLL_SECONDS) -> tuple[float, S]:
        """Seconds until ``group`` was first seen caught up, and ``sample()`` taken then.

        Caught up must hold again one poll later: the account topic can still grow
        (a batch released late, a timer tick), and then the wait goes on.
        """
        start = time.perf_counter()
        seen: tuple[float, S] | None = None
        while time.perf_counter() - start < timeout:
            if self.lag(group, topics) == 0:
                if seen is not None:
                    return seen
                seen = (time.perf_counter() - start, sample())
            else:
                seen = None
            time.sleep(poll)
        raise TimeoutError(f"group {group} did not commit everything on {list(topics)} in {timeout:.0f}s")

    def close(self) -> None:
        self.consumer.close()
        self.admin.close()

    def __enter__(self) -> CommitWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Ready:
    """A timed process: when it became ready (``time.perf_counter``) and its CPU seconds then."""

    pid: int
    at: float
    cpu: float
    steps: dict[str, float] = field(default_factory=dict)   # a worker's step CPU counters then
    own: float = 0.0   # of ``cpu``, the process's own, without its children's (a worker's parse process)

    @classmethod
    def now(cls, pid: int, steps: dict[str, float] | None = None) -> Ready:
        cpu, own = cpu_split(pid)
        return cls(pid, time.perf_counter(), cpu, steps or {}, own)


STEPS = {"parse": "parse", "merge": "merge and identity", "accounts": "accounts"}   # metrics.STEP_CPU's labels


def step_seconds(worker: WorkerProcess) -> dict[str, float]:
    """A worker's ``lifecycle_step_cpu_seconds`` counters now, by step (its /metrics)."""
    from prometheus_client.parser import text_string_to_metric_families

    return {sample.labels["step"]: sample.value
            for family in text_string_to_metric_families(worker.fetch("/metrics").decode())
            if family.name == "lifecycle_step_cpu_seconds"
            for sample in family.samples if sample.name.endswith("_total")}


def step_spent(ready: Ready, done: dict[str, float]) -> dict[str, float]:
    """One worker's CPU seconds by step between its readiness and ``done`` (its counters then)."""
    return {step: done.get(step, 0.0) - ready.steps.get(step, 0.0) for step in STEPS}


def describe_steps(rate: Rate, ready: Sequence[Ready], done: Sequence[dict[str, float]]) -> str:
    """The timed span's worker CPU split: each step's own work (``metrics.StepCpu``, the steps
    the pure path (d) times), the rest being Kafka, Faust, asyncio, serialization and table writes."""
    us = 1e6 / rate.records
    each = [step_spent(r, d) for r, d in zip(ready, done)]
    spent = {step: sum(e[step] for e in each) for step in STEPS}
    rest = rate.cpu_seconds - sum(spent.values())
    parts = " + ".join(f"{label} {spent[step] * us:,.0f}" for step, label in STEPS.items())
    return f"worker CPU {rate.cpu_us_per_record:,.0f} µs/record = {parts} + Kafka, Faust and the rest {rest * us:,.0f}"


def worker_share(rate: Rate, i: int, ready: Ready, done: dict[str, float]) -> str:
    """One worker of several: its share of a core over the timed span (the busiest one is the
    limit) and its CPU per record of the whole input, by step."""
    cpu = rate.cpu_by_process[i]
    us = 1e6 / rate.records
    parts = " + ".join(f"{step} {seconds * us:,.0f}" for step, seconds in step_spent(ready, done).items())
    loop = f", its event loop's process {rate.busy(rate.own_by_process[i])}" if rate.own_by_process else ""
    return f"busy {rate.busy(cpu)} of the span{loop}, CPU {cpu * us:,.0f} µs/record ({parts} + the rest)"


def loop_share(rate: Rate) -> str:
    """One stream worker: how busy its own process was, the one thread that runs the merge, the
    accounts and all their Kafka and Faust work (its parse process apart). Near 100%, the worker
    is bound by that CPU; well below, by waits (a hop's fetch, the pace)."""
    return (f"the worker's own process (its event loop, without its parse process): busy "
            f"{rate.busy(sum(rate.own_by_process))} of the span")


def idle_share(pid: int, seconds: float = IDLE_SECONDS) -> float:
    """A process's CPU over ``seconds`` from now, as a share of a core: the embedded broker's,
    with the drained workers still connected, is what their fetches cost it with no records."""
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / seconds


def time_processes(watch: CommitWatch, ready: Sequence[Ready], group: str, topics: Sequence[str],
                   records: int, poll: float = POLL_SECONDS) -> Rate:
    """From the first process's readiness until ``group`` (run by those processes) has committed
    all of ``topics``; the CPU each spent after its own readiness, and their peak RSS summed."""
    called = time.perf_counter()
    seconds, after = watch.wait(group, topics, lambda: [cpu_split(r.pid) for r in ready],
                                timeout=300 + records / 100, poll=poll)
    spent = tuple(cpu - r.cpu for r, (cpu, _) in zip(ready, after))
    own = tuple(cpu - r.own for r, (_, cpu) in zip(ready, after))
    return Rate(records, called + seconds - min(r.at for r in ready), sum(spent),
                sum(peak_rss_mib(r.pid) for r in ready), spent, own)


def time_process(watch: CommitWatch, pid: int, group: str, topics: Sequence[str], records: int,
                 poll: float = POLL_SECONDS) -> Rate:
    """From now until ``group`` (run by process ``pid``) has committed all of ``topics``."""
    return time_processes(watch, [Ready.now(pid)], group, topics, records, poll)


def start_workers(settings: Settings, count: int, ready_timeout: float = 90.0) -> list[tuple[WorkerProcess, Ready]]:
    """``count`` stream workers of one group, started together (each its data dir and log);
    each with its readiness. A worker that joins after another began pays for the rebalance
    in the timing, as scaling out does."""
    workers = [WorkerProcess(settings.with_(data_dir=settings.data_dir / f"worker-{i}"),
                             settings.data_dir / f"worker-{i}.log", ready_timeout) for i in range(count)]
    ready: dict[int, Ready] = {}

    def note(i: int, worker: WorkerProcess) -> None:
        assert worker.proc is not None
        ready[i] = Ready.now(worker.proc.pid, step_seconds(worker))

    start_together(workers, note)
    return [(worker, ready[i]) for i, worker in enumerate(workers)]


def pure_path(settings: Settings, messages: Sequence[Message], passes: int = 3) -> PureRate:
    """The worker's pure steps over the same preloaded messages, no Kafka (``pipeline.offline``:
    parse, event-time merge, identity, the account state machine): the best of ``passes``, CPU
    time, with its split by step. Issue 9's lean-core measure, beside what the worker pays around it."""
    from datetime import datetime, timezone

    from pipeline.journey import load_journey
    from pipeline.offline import OfflinePipeline

    journey = load_journey(settings.journey_path)
    sources = pure_sources(messages)
    now = datetime.now(timezone.utc)
    best: PureRate | None = None
    for _ in range(passes):
        offline = OfflinePipeline([journey], now=now, partitions=settings.partitions,
                                  accept_test_mode=settings.accept_test_mode)
        cpu, started = time.process_time(), time.perf_counter()
        output = offline.run(sources)[0]
        rate = Rate(record_count(messages), time.perf_counter() - started, time.process_time() - cpu)
        if best is None or rate.cpu_seconds < best.rate.cpu_seconds:
            best = PureRate(rate, offline.stats.cpu, output)
    assert best is not None
    return best


def pure_sources(messages: Sequence[Message]) -> dict[tuple[str, int], list[RawInput]]:
    """The preloaded messages as ``pipeline.offline`` reads them: per (topic, partition), in offset order."""
    from pipeline.offline import RawInput

    sources: dict[tuple[str, int], list[RawInput]] = {}
    for topic, partition, _key, value, _count in messages:
        queue = sources.setdefault((topic, partition), [])
        queue.append(RawInput(topic, partition, len(queue), value))
    return sources


@dataclass(frozen=True)
class PureRate:
    """The pure path's best pass, its CPU by step, and what it published."""

    rate: Rate
    cpu: StageCpu
    output: ReplayOutput

    def describe(self) -> str:
        us = 1e6 / self.rate.records
        return (f"CPU {self.rate.cpu_us_per_record:,.0f} µs/record = parse {self.cpu.parse * us:,.0f} + merge and "
                f"identity {self.cpu.merge * us:,.0f} + accounts {self.cpu.accounts * us:,.0f}, best of 3 "
                f"({self.rate.records:,} records in {self.rate.seconds:.2f}s)")


def writer_path(output: ReplayOutput, database_url: str) -> Rate:
    """(e) The read-model writer alone: what the pure path published (transitions, handoffs,
    breaches) and identity's merges through ``ReadModelWriter.apply``, in the sink's batches,
    on a fresh database, no Kafka and no Faust: the sink's SQL cost, apart from what Faust costs
    it per message."""
    from pipeline.agents.sink import BATCH
    from pipeline.readmodel import ReadModelWriter, make_engine, migrate

    records = [*output.transitions, *output.handoffs, *output.breaches]
    merges = [(m.from_account, m.into_account) for m in output.merges]
    engine = make_engine(database_url)
    try:
        migrate(engine)
        writer = ReadModelWriter(engine)
        batches = max(1, math.ceil(len(records) / BATCH))
        per_batch = math.ceil(len(merges) / batches)
        cpu, started = time.process_time(), time.perf_counter()
        for i in range(batches):
            writer.apply(records[i * BATCH:(i + 1) * BATCH], merges[i * per_batch:(i + 1) * per_batch])
        return Rate(len(records) + len(merges), time.perf_counter() - started, time.process_time() - cpu)
    finally:
        engine.dispose()


# ---- (a) the raw ceiling --------------------------------------------------------------------

def raw_step(value: bytes) -> list[bytes]:
    """The raw loop's work on one message, without Kafka: every record in it decoded and encoded."""
    return [orjson.dumps(orjson.loads(line)) for line in unpack(value)]


async def _raw_pass(consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, ends: dict[TopicPartition, int],
                    out: str, batch_out: bool) -> Rate:
    """Every preloaded record once: consume its message, decode and encode every record in it
    (``schemas.raw_batch``), produce each record (``batch_out``: each message, re-encoded)."""
    await consumer.seek_to_beginning(*consumer.assignment())
    remaining = {tp for tp, end in ends.items() if end > 0}
    n = 0
    cpu, started = time.process_time(), time.perf_counter()
    while remaining:
        fetched = await consumer.getmany(timeout_ms=1000, max_records=5000)
        for tp, msgs in fetched.items():
            for m in msgs:
                records = raw_step(m.value)
                n += len(records)
                if batch_out:
                    await producer.send(out, key=m.key, value=pack(records))
                else:
                    for record in records:
                        await producer.send(out, key=m.key, value=record)
            if msgs and msgs[-1].offset + 1 >= ends[tp]:
                remaining.discard(tp)
    await producer.flush()
    return Rate(n, time.perf_counter() - started, time.process_time() - cpu)


async def raw_ceiling(bootstrap: str, ends: dict[TopicPartition, int], records: int, out: str,
                      batch_out: bool) -> tuple[Rate, int]:
    """The median of enough passes over the preloaded topics to be stable; (median pass, passes)."""
    passes = max(RAW_MIN_PASSES, math.ceil(RAW_MIN_RECORDS / records))
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **client_kwargs())
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1024 * 1024,
                                max_request_size=2 * 1024 * 1024, **client_kwargs())
    await consumer.start()
    await producer.start()
    try:
        consumer.assign([AioTopicPartition(tp.topic, tp.partition) for tp in ends])
        rates = [await _raw_pass(consumer, producer, ends, out, batch_out) for _ in range(passes)]
    finally:
        await producer.stop()
        await consumer.stop()
    return sorted(rates, key=lambda r: r.per_second)[passes // 2], passes


# ---- (c) the bare-Faust floor ---------------------------------------------------------------

def floor_app(settings: Settings) -> faust.App:
    """One agent: each raw message, every record in it decoded and re-encoded, to a scratch topic. Nothing else."""
    import faust

    from pipeline.app import faust_config

    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    app = faust.App(settings.app_id, **faust_config(settings))
    source = app.topic(*settings.topics.raw.values(), key_serializer="raw", value_serializer="raw")
    scratch = app.topic(settings.topics.name(FLOOR_OUT), key_serializer="raw", value_serializer="raw")

    @app.agent(source)
    async def forward(stream: faust.StreamT) -> None:
        async for event in stream.events():
            records = [orjson.dumps(orjson.loads(line)) for line in unpack(event.value)]
            await scratch.send(key=event.key, value=pack(records))

    @app.task
    async def ready() -> None:  # runs once the app has started (Faust: after table recovery)
        app.producer.buffer.max_messages = 20_000  # as the pipeline does, so no 0.1 s buffer stalls
        _ready_file(settings).touch()

    return app


def _ready_file(settings: Settings) -> Path:
    return settings.data_dir / "floor.ready"


@contextlib.contextmanager
def floor_process(settings: Settings, ready_timeout: float = 90.0) -> Iterator[int]:
    """``floor_app`` in a child process (``python -m pipeline.drive.bench``); yields its pid once it runs."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.data_dir / "floor.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline.drive.bench"], env=os.environ | settings.to_env(),
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                preexec_fn=die_with_parent)
    try:
        deadline = time.monotonic() + ready_timeout
        while not _ready_file(settings).exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = Path(log.name).read_text(errors="replace").splitlines()[-20:]
                raise RuntimeError(f"faust floor app not running (exit {proc.returncode}); {log.name}:\n"
                                   + "\n".join(tail))
            time.sleep(0.05)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- one run ---------------------------------------------------------------------------------

def run_once(settings: Settings, messages: Sequence[Message], echo: Echo, transports: int,
             stream_workers: int = 1) -> RunResult:
    """Preload, then (a), (b), (c) on one broker; then the connector transports if asked."""
    n = record_count(messages)
    topics = settings.topics
    raw_topics = list(topics.raw.values())
    with broker_for(settings) as s, CommitWatch(_bootstrap(s)) as watch:
        bootstrap = _bootstrap(s)
        create_topics(s)
        ensure_topics(bootstrap, [topics.name(RAW_OUT), topics.name(FLOOR_OUT)], 1)
        if any(watch.ends([*raw_topics, topics.account_events]).values()):
            raise RuntimeError("the bench needs empty topics: unset KAFKA_BOOTSTRAP_SERVERS "
                               "for a fresh embedded broker")
        seconds = preload(bootstrap, messages)
        ends = watch.fix(raw_topics)
        if sum(ends.values()) != len(messages):
            raise RuntimeError(f"preloaded {len(messages)} messages but the raw topics hold {sum(ends.values())}")
        echo(f"preloaded {n:,} records in {len(messages):,} batch messages into {len(raw_topics)} raw topics "
             f"in {seconds:.1f}s, before any timing")

        raw, passes = asyncio.run(raw_ceiling(bootstrap, ends, n, topics.name(RAW_OUT), batch_out=True))
        echo(f"(a) raw aiokafka consume→decode every record→produce each batch: {raw.describe()}, "
             f"median of {passes} passes ({passes * n:,} records)")
        per_record, _ = asyncio.run(raw_ceiling(bootstrap, ends, n, topics.name(RAW_OUT), batch_out=False))
        echo(f"    (for reference, producing each record alone: {per_record.describe()})")

        workers = start_workers(s.with_(app_id=PIPELINE_APP_ID, role="stream"), stream_workers)
        broker = broker_pid(bootstrap)
        broker_cpu = cpu_seconds(broker) if broker is not None else 0.0
        broker_idle = 0.0
        try:
            pipeline = time_processes(watch, [ready for _, ready in workers], PIPELINE_APP_ID,
                                      internal_topics(s), n)
            if broker is not None:
                broker_cpu = cpu_seconds(broker) - broker_cpu
                broker_idle = idle_share(broker)
            done = [step_seconds(w) for w, _ in workers]
            steps = describe_steps(pipeline, [r for _, r in workers], done)
            owners = [f"worker {i}: {worker_share(pipeline, i, r, done[i])}\n        owns {w.owned_inputs()}"
                      for i, (w, r) in enumerate(workers)] if stream_workers > 1 else []
        finally:
            for worker, _ in workers:
                worker.stop()
        who = "a stream worker" if stream_workers == 1 else f"{stream_workers} stream workers (CPU and RSS summed)"
        echo(f"(b) pipeline: {who}, parse→merge+identity→accounts: {pipeline.describe()}")
        echo(f"    {steps}")
        if stream_workers == 1:
            echo(f"    {loop_share(pipeline)}")
        for line in owners:
            echo(f"    {line}")
        if broker is not None:  # on a 2-core machine the broker's share is CPU the workers do not get
            echo(f"    the embedded broker meanwhile: busy {pipeline.busy(broker_cpu)} of the span, "
                 f"CPU {broker_cpu / n * 1e6:,.0f} µs/record; then, all committed and the workers still "
                 f"connected, {broker_idle:.0%} of a core for {IDLE_SECONDS:.0f}s (their fetches, no records)")
        outputs = sink_topics(topics)
        written = sum(watch.fix(outputs).values())
        sink = WorkerProcess(s.with_(app_id=PIPELINE_APP_ID, role="sink"), s.data_dir / "sink.log").start()
        try:
            assert sink.proc is not None
            sink_rate = time_process(watch, sink.proc.pid, f"{PIPELINE_APP_ID}-readmodel", outputs, written)
        finally:
            sink.stop()
        echo(f"    then the read-model sink alone (its own process and group, SQLite): "
             f"{sink_rate.per_second:,.0f} output records/s {sink_rate.details()}")

        floor_settings = s.with_(app_id=FLOOR_APP_ID, data_dir=s.data_dir / "floor", web_enabled=False,
                                 commit_interval=FLOOR_POLL_SECONDS)
        with floor_process(floor_settings) as pid:
            floor = time_process(watch, pid, FLOOR_APP_ID, raw_topics, n, poll=FLOOR_POLL_SECONDS)
        result = RunResult(raw, pipeline, floor)
        echo(f"(c) faust floor = {floor.per_second:,.0f} events/s ({result.floor_ratio:.2f} of raw) "
             f"{floor.details()}")
        echo(f"this run: pipeline/raw {result.ratio:.3f}, pipeline/faust floor "
             f"{pipeline.per_second / floor.per_second:.2f}")
        if transports:
            from connectors.bench import bench_transports

            rates = bench_transports(bootstrap, transports)
            echo("connector transports into Kafka (records/s): "
                 + ", ".join(f"{name} {rate:,.0f}" for name, rate in rates.items()))
    return result


def _bootstrap(settings: Settings) -> str:
    assert settings.bootstrap_servers
    return settings.bootstrap_servers


def run_bench(settings: Settings, accounts: int = 600, seed: int = 11, echo: Echo = print,
              transports: int = 10_000, records: int | None = None, repeat: int = 1,
              stream_workers: int = 1) -> dict[str, float]:
    """``repeat`` runs on the same sample, each on a fresh broker; the last line is the median ratio."""
    if repeat > 1 and settings.bootstrap_servers:
        raise BenchUsageError("--repeat needs a fresh broker per run: unset KAFKA_BOOTSTRAP_SERVERS")
    bench_dir = settings.data_dir / "bench"
    shutil.rmtree(bench_dir, ignore_errors=True)
    raw_records, accounts = sample(accounts, seed, records)
    messages = encode(raw_records, settings.partitions, settings.topics)
    echo(f"bench: {record_count(messages):,} native records ({accounts} accounts, seed {seed}), {repeat} run(s)")
    results: list[RunResult] = []
    for i in range(repeat):
        if repeat > 1:
            echo(f"-- run {i + 1}/{repeat}")
        run_dir = bench_dir / f"run-{i + 1}"
        run_dir.mkdir(parents=True)
        run_settings = settings.with_(data_dir=run_dir, commit_interval=0.5,
                                      database_url=f"sqlite:///{run_dir / 'readmodel.db'}")
        results.append(run_once(run_settings, messages, echo, transports if i == repeat - 1 else 0, stream_workers))
    pure = pure_path(settings, messages)
    echo(f"(d) pure path (pipeline.offline over the same messages, no Kafka): {pure.describe()}")
    writer = writer_path(pure.output, f"sqlite:///{bench_dir / 'writer.db'}")
    echo(f"(e) read-model writer alone ((d)'s outputs and merges through ReadModelWriter in the sink's batches, "
         f"SQLite, no Kafka): {writer.per_second:,.0f} records/s {writer.details()}")
    ratio = statistics.median(r.ratio for r in results)
    floor_ratio = statistics.median(r.floor_ratio for r in results)
    echo(f"bench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if repeat > 1:
        echo(f"median of {repeat} runs: faust floor/raw {floor_ratio:.2f} "
             f"(runs {', '.join(f'{r.floor_ratio:.2f}' for r in results)}), "
             f"pipeline/raw runs {', '.join(f'{r.ratio:.3f}' for r in results)}")
    echo(f"ratio pipeline/raw = {ratio:.2f}")
    last = results[-1]
    return {"records": record_count(messages), "raw_rate": last.raw.per_second, "pipeline_rate": last.pipeline.per_second,
            "floor_rate": last.floor.per_second, "ratio": ratio, "floor_ratio": floor_ratio,
            "worker_cpu_us": last.pipeline.cpu_us_per_record,
            "worker_rss_mib": last.pipeline.peak_rss_mib or 0.0, "pure_cpu_us": pure.rate.cpu_us_per_record,
            "writer_rate": writer.per_second}


if __name__ == "__main__":  # the faust floor's child process (floor_process)
    from pipeline.runtime import make_worker

    _floor = Settings.from_env()
    make_worker(floor_app(_floor), _floor.log_level).execute_from_commandline()
