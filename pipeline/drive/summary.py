"""A short, readable summary of what the pipeline emitted, computed from its topics."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from schemas.events import DeadLetter
from schemas.handoffs import Handoff
from schemas.sla import SlaBreach
from schemas.transitions import StageTransition


@dataclass
class Summary:
    accounts_by_stage: Counter[str] = field(default_factory=Counter)
    transitions_by_pair: Counter[tuple[str, str]] = field(default_factory=Counter)
    handoffs_by_status: Counter[tuple[str, str]] = field(default_factory=Counter)
    breaches_by_sla: Counter[tuple[str, str]] = field(default_factory=Counter)
    dead_letters_by_reason: Counter[tuple[str, str]] = field(default_factory=Counter)
    transitions: int = 0
    duplicates: int = 0

    @classmethod
    def build(cls, transitions: list[StageTransition], handoffs: list[Handoff], breaches: list[SlaBreach],
              dead_letters: list[DeadLetter], merged: set[str] = frozenset()) -> Summary:
        """``merged``: accounts absorbed by identity merges; their history lives on in the survivor."""
        s = cls()
        seen: set[str] = set()
        current: dict[str, StageTransition] = {}
        for t in transitions:
            if t.transition_id in seen:  # at-least-once: consumers de-duplicate on the id
                s.duplicates += 1
                continue
            seen.add(t.transition_id)
            if t.merged_into:  # a merged account's stream ends: not a stage entry
                continue
            s.transitions += 1
            s.transitions_by_pair[(t.from_stage or "(new)", t.to_stage)] += 1
            prev = current.get(t.account_id)
            if prev is None or (t.occurred_at, t.emitted_at) >= (prev.occurred_at, prev.emitted_at):
                current[t.account_id] = t
        s.accounts_by_stage.update(t.to_stage for a, t in current.items() if a not in merged)
        latest: dict[str, Handoff] = {}
        for h in handoffs:
            if h.handoff_id not in latest or h.version > latest[h.handoff_id].version:
                latest[h.handoff_id] = h
        s.handoffs_by_status.update((f"{h.from_team}→{h.to_team}", h.status.value) for h in latest.values())
        records = {b.record_id: b for b in breaches}
        s.breaches_by_sla.update((b.sla_id, b.status.value) for b in records.values())
        s.dead_letters_by_reason.update((d.stage, d.reason) for d in {d.dead_letter_id: d for d in dead_letters}.values())
        return s

    def render(self, stage_order: list[str] | None = None) -> str:
        order = {s: i for i, s in enumerate(stage_order or [])}
        lines = ["", "== Accounts by current stage =="]
        for stage, n in sorted(self.accounts_by_stage.items(), key=lambda kv: (order.get(kv[0], 99), kv[0])):
            lines.append(f"  {stage:<14} {n:>5}  {'#' * n}")
        lines.append(f"\n== Transitions by stage pair ({self.transitions} unique"
                     f"{f', {self.duplicates} re-delivered' if self.duplicates else ''}) ==")
        for (a, b), n in sorted(self.transitions_by_pair.items(), key=lambda kv: (order.get(kv[0][1], 99), -kv[1])):
            lines.append(f"  {a:>12} → {b:<14} {n:>5}")
        lines.append("\n== Handoffs (latest status) ==")
        for (teams, status), n in sorted(self.handoffs_by_status.items()):
            lines.append(f"  {teams:<36} {status:<10} {n:>5}")
        if not self.handoffs_by_status:
            lines.append("  (none)")
        lines.append("\n== SLA breaches ==")
        for (sla, status), n in sorted(self.breaches_by_sla.items()):
            lines.append(f"  {sla:<28} {status:<10} {n:>5}")
        if not self.breaches_by_sla:
            lines.append("  (none)")
        lines.append("\n== Dead letters ==")
        for (stage, reason), n in sorted(self.dead_letters_by_reason.items()):
            lines.append(f"  {stage + '/' + reason:<36} {n:>5}")
        if not self.dead_letters_by_reason:
            lines.append("  (none)")
        return "\n".join(lines)
