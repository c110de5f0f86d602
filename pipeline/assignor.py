"""How a group of stream workers shares the partitions: Faust's copartitioned assignment, then
the merge worker lightened.

Faust balances each group of copartitioned topics by count. The sixteen one-partition parsed
topics (the event-time merge and identity: one ordered writer) form a group of their own and
land on one worker, which then also gets its even share of the raw and account partitions. With
two workers that worker was the limit (busy about 85% of a backfill, the other about 45%). Here
it gives whole partitions (every topic and changelog of that partition number, so a table stays
with its source) to the least loaded other worker for as long as it holds more than one and at
least as many as that worker: it keeps one, so every worker parses and runs accounts (and the
ingest's pace, which watches its own worker's account partitions, has one to watch). Which
partitions move follows the workers' previous assignment, so a rebalance does not shuffle the
others' state.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, MutableMapping
from typing import Any

from faust.assignor import PartitionAssignor

Actives = MutableMapping[str, list[int]]  # topic → partitions


def lighten_merge(actives: Mapping[str, Actives], partitions_by_topic: Mapping[str, int],
                  merge_topics: Collection[str], previous: Mapping[str, Mapping[str, list[int]]]) -> None:
    """Move partitions of every multi-partition group off the one client holding ``merge_topics``
    while it holds more than one and at least as many as the least loaded other client (in place)."""
    holders = [c for c, topics in actives.items() if any(topics.get(t) for t in merge_topics)]
    if len(holders) != 1 or len(actives) < 2:
        return
    merge = holders[0]
    for count in sorted({n for t, n in partitions_by_topic.items() if n > 1 and t not in merge_topics}):
        group = sorted(t for t, n in partitions_by_topic.items() if n == count and t not in merge_topics)

        def owned(client: str) -> set[int]:
            return {p for t in group for p in actives[client].get(t, ())}

        while True:
            light = min((c for c in actives if c != merge), key=lambda c: (len(owned(c)), c))
            mine = owned(merge)
            if len(mine) <= 1 or len(mine) < len(owned(light)):
                break
            before = {p for t in group for p in previous.get(light, {}).get(t, ())} & mine
            moved = max(before or mine)
            for topic in group:
                if moved in actives[merge].get(topic, ()):
                    actives[merge][topic].remove(moved)
                    actives[light].setdefault(topic, []).append(moved)


class PipelineAssignor(PartitionAssignor):
    """Faust's assignor with :func:`lighten_merge` applied to its actives (the app's
    ``merge_topics``; none: Faust's assignment as it is)."""

    def _perform_assignment(self, cluster: Any, member_metadata: Any) -> Any:
        self._previous = {member: dict(self._get_client_metadata(metadata).assignment.actives)
                          for member, metadata in member_metadata.items()}
        return super()._perform_assignment(cluster, member_metadata)

    def _global_table_standby_assignments(self, assignments: Any, partitions_by_topic: Mapping[str, int]) -> Any:
        # Faust's one hook between its copartitioned assignment and the changelog distribution it
        # derives from the actives: changed here, the distribution follows the moved partitions.
        merge_topics = getattr(self.app, "merge_topics", ())
        if merge_topics:
            lighten_merge({c: a.actives for c, a in assignments.items()}, partitions_by_topic, merge_topics,
                          getattr(self, "_previous", {}))
        return super()._global_table_standby_assignments(assignments, partitions_by_topic)
