"""How messages on the account topic are numbered, so a partition applies each exactly once.

Every sender (the ingest step, each account partition forwarding merges) numbers the messages
it sends to one partition 1, 2, 3, … (``origin`` ``<sender>/p``). The receiving partition keeps
the last number applied per origin. A message at or below it is a repeat (a restart sent it
again) and is skipped; a message beyond the next is a *gap*: an earlier message of that sender
never reached the partition (a send cancelled or refused while a later one went through).
Applied, the gap's messages would be skipped as repeats when the sender sends them again from
its commit, and the account would lose them for good; so a message after a gap is not applied
either. The sender re-sends from its commit, which cannot be past the lost message
(``pipeline.sends``: no commit after a failed write), and the partition applies them in order.

Messages numbered by earlier versions (origins without ``/p``: one sequence per sender across
all partitions) are still deduplicated, but a gap cannot be told among them.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from enum import Enum

PER_PARTITION = "/p"


class Verdict(Enum):
    APPLY = "apply"
    REPEAT = "repeat"
    GAP = "gap"


def origin(sender: str) -> str:
    """The origin of a sender that numbers per receiving partition."""
    return sender + PER_PARTITION


class Counters:
    """A sender's last number per receiving partition, stored with the sender's state."""

    __slots__ = ("last",)

    def __init__(self, stored: Mapping[str, int] | None = None) -> None:
        self.last: dict[str, int] = {str(k): int(v) for k, v in (stored or {}).items()}

    def next(self, partition: int) -> int:
        key = str(partition)
        n = self.last[key] = self.last.get(key, 0) + 1
        return n

    def to_dict(self) -> dict[str, int]:
        return dict(self.last)


def check(last_seq: MutableMapping[str, int], origin: str | None, seq: int | None) -> Verdict:
    """Whether a received message is applied (then recorded in ``last_seq``), a repeat, or past a gap."""
    if origin is None or seq is None:
        return Verdict.APPLY   # un-numbered: clock readings
    if origin.endswith(PER_PARTITION):
        last = last_seq.get(origin, 0)
        if seq <= last:
            return Verdict.REPEAT
        if seq > last + 1:
            return Verdict.GAP
    elif seq <= last_seq.get(origin, -1):
        return Verdict.REPEAT
    last_seq[origin] = seq
    return Verdict.APPLY
