"""The ingest step's event-time merge: the released order is a function of each
partition's content, whatever the arrival interleaving."""

from __future__ import annotations

import itertools
import random
from datetime import datetime, timedelta, timezone

from pipeline.core.merge import Item, SourceMerge

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


PARTITIONS = {
    "crm": [Item(at(1), "c1"), Item(at(5), "c5"), Item(at(2), "c2-late"), Item(at(9), "c9")],
    "billing": [Item(at(3), "b3"), Item(None, "b-dead-letter"), Item(at(4), "b4")],
    "product": [Item(at(0), "p0"), Item(at(7), "p7")],
}


def run(arrival: list[tuple[str, Item]]) -> list[str]:
    """Feed items in ``arrival`` order, releasing after each; everything is read at the end."""
    merge: SourceMerge[str, str] = SourceMerge(order=lambda p: (p,))
    for p in PARTITIONS:
        merge.add_partition(p)
    read = {p: 0 for p in PARTITIONS}
    out: list[str] = []

    def caught_up(p: str) -> bool:
        return read[p] == len(PARTITIONS[p])

    for p, item in arrival:
        merge.push(p, item)
        read[p] += 1
        out += [v for _, v in merge.pop_ready(caught_up)]
    out += [v for _, v in merge.pop_ready(caught_up)]
    assert len(merge) == 0
    return out


def interleavings(seed: int) -> list[tuple[str, Item]]:
    rng = random.Random(seed)
    cursors = {p: 0 for p in PARTITIONS}
    out = []
    while any(cursors[p] < len(PARTITIONS[p]) for p in PARTITIONS):
        p = rng.choice([p for p in PARTITIONS if cursors[p] < len(PARTITIONS[p])])
        out.append((p, PARTITIONS[p][cursors[p]]))
        cursors[p] += 1
    return out


def test_the_same_order_for_every_interleaving() -> None:
    orders = {tuple(run(interleavings(seed))) for seed in range(200)}
    assert orders == {("p0", "c1", "b3", "b-dead-letter", "b4", "c5", "c2-late", "p7", "c9")}


def test_each_partition_leaves_in_its_own_order() -> None:
    out = run(interleavings(1))
    for items in PARTITIONS.values():
        values = [i.value for i in items]
        assert [v for v in out if v in values] == values


def test_a_partition_with_nothing_queued_holds_the_rest_until_it_is_caught_up() -> None:
    merge: SourceMerge[str, str] = SourceMerge(order=lambda p: (p,))
    merge.add_partition("a")
    merge.add_partition("b")
    merge.push("a", Item(at(1), "a1"))
    assert list(merge.pop_ready(lambda p: False)) == []           # b may still send something older
    assert [v for _, v in merge.pop_ready(lambda p: p == "b")] == ["a1"]  # b read to its end


def test_ties_break_by_partition_order() -> None:
    merge: SourceMerge[str, str] = SourceMerge(order=lambda p: (p,))
    for p, v in itertools.product(["b", "a"], ["x"]):
        merge.push(p, Item(at(1), f"{p}{v}"))
    assert [v for _, v in merge.pop_ready(lambda p: True)] == ["ax", "bx"]
