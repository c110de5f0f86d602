"""``lifecycle bench``: the real pipeline against a raw Kafka loop, same events, same broker, one run.

(a) raw: an aiokafka consumer → orjson decode → aiokafka produce loop over the
    raw topics (the ceiling for any Python consumer on this machine);
(b) pipeline: a real ``lifecycle worker`` process (normalize → identity →
    accounts → read-model sink) over the same records, pre-loaded, timed from
    ready to the consumer group having committed everything.
Reported as a ratio measured in one run: these machines are noisy, absolute
numbers are not comparable between runs.
"""

from __future__ import annotations

import asyncio
import resource
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from pipeline.runner import WorkerProcess, group_lag, internal_topics, produce_raw
from pipeline.runtime import broker_for, create_topics
from pipeline.settings import Settings
from pipeline.topics import ensure_topics
from schemas import topics as T

Echo = Callable[[str], None]
RAW_IN = "bench.raw-in"
RAW_OUT = "bench.raw-out"


async def raw_loop(bootstrap: str, expected: int, group: str = "bench-raw") -> float:
    """Consume every raw record, decode it, produce it again; return seconds from first to last."""
    consumer = AIOKafkaConsumer(RAW_IN, bootstrap_servers=bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=True, max_poll_records=5000)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=256 * 1024)
    await consumer.start()
    await producer.start()
    try:
        n, first = 0, None
        while n < expected:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for msgs in batch.values():
                for m in msgs:
                    if first is None:
                        first = time.perf_counter()
                    record = orjson.loads(m.value)
                    await producer.send(RAW_OUT, key=m.key, value=orjson.dumps(record))
                    n += 1
        await producer.flush()
        assert first is not None
        return time.perf_counter() - first
    finally:
        await producer.stop()
        await consumer.stop()


def wait_drained(bootstrap: str, group: str, topics: list[str], timeout: float = 900.0) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if group_lag(bootstrap, group, topics) == 0:
            return time.perf_counter() - start
        time.sleep(0.1)
    raise TimeoutError(f"pipeline did not drain in {timeout}s")


def _hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def run_bench(settings: Settings, accounts: int = 600, seed: int = 11, echo: Echo = print,
              transports: int = 10_000) -> dict[str, float]:
    from pipeline.sample import SampleConfig, generate

    data_dir = settings.data_dir / "bench"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    settings = settings.with_(data_dir=data_dir, app_id="lifecycle-bench", commit_interval=0.5,
                              idle_seconds=3600.0, database_url=f"sqlite:///{data_dir / 'readmodel.db'}")
    records = generate(SampleConfig(accounts=accounts, seed=seed))
    n = len(records)
    echo(f"bench: {n} native records, {accounts} accounts")
    with broker_for(settings) as s:
        assert s.bootstrap_servers
        create_topics(s)
        ensure_topics(s.bootstrap_servers, [RAW_IN, RAW_OUT], s.partitions)
        produce_raw(s.bootstrap_servers, records, topic=RAW_IN)

        raw_seconds = asyncio.run(raw_loop(s.bootstrap_servers, n))
        raw_rate = n / raw_seconds
        echo(f"(a) raw aiokafka consume→decode→produce: {raw_rate:,.0f} events/s ({raw_seconds:.2f}s)")

        worker = WorkerProcess(s, data_dir / "worker.log").start()
        try:
            assert worker.proc is not None
            pid = worker.proc.pid
            # Fed only once the worker is ready, so start-up is not counted; feeding
            # overlaps processing, as it does live.
            t0 = time.perf_counter()
            produce_raw(s.bootstrap_servers, records)
            wait_drained(s.bootstrap_servers, s.app_id, internal_topics())
            pipe_seconds = time.perf_counter() - t0
            rss_mib = _hwm_kib(pid) / 1024
        finally:
            worker.stop()
        pipe_rate = n / pipe_seconds
        echo(f"(b) pipeline ingest(parse+identity)→accounts (+sink): {pipe_rate:,.0f} events/s ({pipe_seconds:.2f}s), "
             f"worker peak RSS {rss_mib:.0f} MiB")
        if transports:
            from connectors.bench import bench_transports

            rates = bench_transports(s.bootstrap_servers, transports)
            echo("connector transports into Kafka (records/s): "
                 + ", ".join(f"{name} {rate:,.0f}" for name, rate in rates.items()))
    ratio = pipe_rate / raw_rate
    echo(f"bench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    echo(f"ratio pipeline/raw = {ratio:.2f}")
    return {"records": n, "raw_rate": raw_rate, "pipeline_rate": pipe_rate, "ratio": ratio, "worker_rss_mib": rss_mib}
