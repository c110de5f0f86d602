import os

from pipeline.drive.bench import Rate, cpu_seconds, encode, peak_rss_mib, record_count, sample
from schemas import topics as T
from schemas.raw_batch import MAX_RECORDS, partition_for, unpack


def test_rate_per_record_figures():
    rate = Rate(records=2_000, seconds=4.0, cpu_seconds=1.0, peak_rss_mib=100.0)
    assert rate.per_second == 500
    assert rate.cpu_us_per_record == 500
    assert rate.describe() == "500 events/s (2,000 in 4.00s), CPU 500 µs/record, peak RSS 100 MiB"


def test_process_figures_come_from_proc():
    before = cpu_seconds(os.getpid())
    sum(i * i for i in range(2_000_000))  # some CPU
    assert cpu_seconds(os.getpid()) > before
    assert peak_rss_mib(os.getpid()) > 10


def test_records_option_grows_the_sample_and_cuts_it_exactly():
    records, accounts = sample(accounts=2, seed=11, records=500)
    assert len(records) == 500 and accounts > 2
    topic, partition, key, value, count = encode(records[:1], 4)[0]
    assert topic == T.RAW[records[0].source] and key == records[0].event_id.encode() and value == records[0].to_json()
    assert (partition, count) == (partition_for(key, 4), 1)


def test_the_preload_is_the_records_in_batches_per_partition_in_order():
    records, _ = sample(accounts=2, seed=11, records=1_500)
    messages = encode(records, 2)
    assert record_count(messages) == 1_500 and len(messages) < 1_500 / 50
    assert all(count <= MAX_RECORDS and len(unpack(value)) == count for _, _, _, value, count in messages)
    for source, topic in T.RAW.items():
        for p in (0, 1):
            lines = [line for t, tp, _, value, _ in messages if (t, tp) == (topic, p) for line in unpack(value)]
            assert lines == [r.to_json() for r in records
                             if r.source == source and partition_for(r.event_id.encode(), 2) == p]
            assert lines, "both partitions of every raw topic get records"


def test_the_pure_path_line_runs_the_offline_driver_over_the_preloaded_messages(tmp_path):
    from pipeline.drive.bench import pure_path
    from pipeline.settings import Settings

    messages = encode(sample(accounts=3, seed=11, records=None)[0], 4)
    pure = pure_path(Settings(data_dir=tmp_path), messages, passes=2)
    rate, cpu = pure.rate, pure.cpu
    assert rate.records == record_count(messages) and rate.cpu_seconds > 0 and rate.seconds > 0
    # the split by step covers the pass: every step took time, and they add up to the pass's CPU
    assert cpu.parse > 0 and cpu.merge > 0 and cpu.accounts > 0
    assert cpu.parse + cpu.merge + cpu.accounts <= rate.cpu_seconds
    assert cpu.parse + cpu.merge + cpu.accounts > 0.9 * rate.cpu_seconds
    assert "= parse " in pure.describe() and "+ accounts " in pure.describe()
