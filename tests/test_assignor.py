"""The merge worker is lightened: whole partitions (every topic of that partition number) move off
the worker holding the parsed topics, and which ones follows the previous assignment."""

from __future__ import annotations

from pipeline.assignor import lighten_merge

PARSED = ["lifecycle.parsed.crm.0", "lifecycle.parsed.crm.1"]
GROUP = ["lifecycle.account-events", "lifecycle.raw.crm", "lifecycle-accounts-changelog"]
SIZES = {**{t: 1 for t in PARSED}, "lifecycle-identity-changelog": 1, **{t: 4 for t in GROUP}}


def _faust(*partitions: list[int], merge: int = 0) -> dict[str, dict[str, list[int]]]:
    """Faust's even split: client i holds ``partitions[i]`` of every four-partition topic."""
    actives: dict[str, dict[str, list[int]]] = {}
    for i, owned in enumerate(partitions):
        actives[f"w{i}"] = {t: list(owned) for t in GROUP}
    actives[f"w{merge}"].update({t: [0] for t in [*PARSED, "lifecycle-identity-changelog"]})
    return actives


def _owned(actives: dict[str, dict[str, list[int]]]) -> dict[str, list[int]]:
    out = {}
    for client, topics in actives.items():
        sets = {tuple(sorted(topics.get(t, []))) for t in GROUP}
        assert len(sets) == 1, f"{client}'s topics of one partition number were split: {topics}"
        out[client] = list(sets.pop())
    return out


def test_two_workers_the_merge_worker_keeps_one_of_four() -> None:
    actives = _faust([0, 2], [1, 3])
    lighten_merge(actives, SIZES, PARSED, previous={})
    assert _owned(actives) == {"w0": [0], "w1": [1, 2, 3]}
    assert actives["w0"]["lifecycle.parsed.crm.0"] == [0]            # the merge stays where it was
    assert actives["w0"]["lifecycle-identity-changelog"] == [0]       # and its one-partition tables


def test_the_partition_that_moves_is_one_the_other_worker_had_before() -> None:
    # Faust's sticky assignment gave w0 back partition 3 (w1's before, over its even share)
    actives = _faust([0, 3], [1, 2])
    lighten_merge(actives, SIZES, PARSED, previous={"w1": {t: [1, 2, 3] for t in GROUP}})
    assert _owned(actives) == {"w0": [0], "w1": [1, 2, 3]}


def test_the_merge_worker_always_keeps_one() -> None:
    three = _faust([0, 3], [1], [2])
    lighten_merge(three, SIZES, PARSED, previous={})
    owned = _owned(three)
    assert owned["w0"] == [0] and sorted(len(p) for p in owned.values()) == [1, 1, 2]
    assert sorted(p for ps in owned.values() for p in ps) == [0, 1, 2, 3]

    two_of_two = _faust([0], [1])  # two partitions: both workers keep parsing and running accounts
    lighten_merge(two_of_two, SIZES | {t: 2 for t in GROUP}, PARSED, previous={})
    assert _owned(two_of_two) == {"w0": [0], "w1": [1]}


def test_one_worker_or_no_merge_topics_change_nothing() -> None:
    one = _faust([0, 1, 2, 3])
    lighten_merge(one, SIZES, PARSED, previous={})
    assert _owned(one) == {"w0": [0, 1, 2, 3]}

    two = _faust([0, 2], [1, 3])
    lighten_merge(two, SIZES, [], previous={})
    assert _owned(two) == {"w0": [0, 2], "w1": [1, 3]}
