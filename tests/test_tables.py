"""Changelog records name their input; recovery keeps only those of committed input."""

from __future__ import annotations

from types import SimpleNamespace

from faust.types import TP

from pipeline.tables import OFF_HEADER, SRC_HEADER, _committed, _source

ACCOUNTS = TP("lifecycle.account-events", 1)


def record(headers) -> SimpleNamespace:
    return SimpleNamespace(message=SimpleNamespace(headers=headers))


def stamped(offset: int, as_dict: bool = False) -> SimpleNamespace:
    headers = [(SRC_HEADER, b"lifecycle.account-events|1"), (OFF_HEADER, str(offset).encode())]
    return record(dict(headers) if as_dict else headers)


def test_the_source_is_read_from_either_header_shape() -> None:
    assert _source(stamped(41)) == (ACCOUNTS, 41)
    assert _source(stamped(41, as_dict=True)) == (ACCOUNTS, 41)
    assert _source(record(None)) is None


def test_a_write_is_kept_only_if_its_input_was_committed() -> None:
    committed = {ACCOUNTS: 42}  # offsets 0..41 are done; 42 will be processed again
    assert _committed(_source(stamped(41)), committed)
    assert not _committed(_source(stamped(42)), committed)
    assert not _committed(_source(stamped(5)), {})  # nothing committed yet: everything replays
    assert _committed(_source(record([])), committed)  # unstamped (older) records are kept


async def test_the_groups_commits_are_read_for_partitions_this_member_does_not_own(kafka_bootstrap):
    """``CommittedOffsets.of_group``: one admin OffsetFetch, 0 where the group committed nothing
    (the ingest's pace reads other workers' account partitions so)."""
    import uuid

    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import OffsetAndMetadata, TopicPartition
    from yarl import URL

    from pipeline.tables import CommittedOffsets
    from pipeline.topics import ensure_topics

    topic, group = f"pace-{uuid.uuid4().hex[:8]}", f"pace-group-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, [topic], 2)
    committer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await committer.start()
    try:
        committer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        await committer.commit({TopicPartition(topic, 1): OffsetAndMetadata(7, "")})
    finally:
        await committer.stop()
    app = SimpleNamespace(conf=SimpleNamespace(broker=[URL(f"kafka://{kafka_bootstrap.split(',')[0]}")], id=group))
    offsets = CommittedOffsets(app)  # type: ignore[arg-type]
    try:
        assert await offsets.of_group([TP(topic, 0), TP(topic, 1)]) == {TP(topic, 0): 0, TP(topic, 1): 7}
    finally:
        await offsets._admin.close()
