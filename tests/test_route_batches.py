"""Account batches stay below a broker's message limit (``pipeline.app.batches``)."""

from __future__ import annotations

from pipeline.app import BATCH_MAX, ROUTE_MAX_BYTES, batches


def test_batches_keep_order_and_stay_within_count_and_bytes() -> None:
    messages = [(f"acct:{i}", b"x" * 700) for i in range(3000)]
    out = batches(messages, BATCH_MAX, ROUTE_MAX_BYTES)
    assert [m for run in out for m in run] == messages
    assert all(len(run) <= BATCH_MAX for run in out)
    assert all(sum(len(v) + 1 for _, v in run) <= ROUTE_MAX_BYTES for run in out)
    assert len(out) == 5  # 2,100,700 bytes of JSON in runs of at most 748 messages


def test_a_message_larger_than_the_byte_bound_travels_alone() -> None:
    big = ("acct:big", b"y" * (ROUTE_MAX_BYTES + 1))
    out = batches([("a", b"1"), big, ("b", b"2")], BATCH_MAX, ROUTE_MAX_BYTES)
    assert out == [[("a", b"1")], [big], [("b", b"2")]]
