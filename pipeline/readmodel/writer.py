"""Applying stage transitions, handoffs and SLA breaches to the read model.

Shaped like a Quix Streams sink: the caller batches records and calls
:meth:`ReadModelWriter.apply` at checkpoint; each call is one transaction.
Delivery is at-least-once and partitions interleave, so every write is an
idempotent upsert keyed by the records' deterministic ids, and nothing depends
on arrival order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from pipeline.metrics import READ_MODEL_ROWS
from pipeline.readmodel.models import accounts, handoffs, sla_breaches, stage_history
from schemas.base import utcnow
from schemas.handoffs import Handoff, HandoffStatus
from schemas.sla import SlaBreach, SlaBreachStatus
from schemas.transitions import StageTransition

Applicable = StageTransition | Handoff | SlaBreach

_CHUNK = 500  # ids per IN (...) list; far below every backend's parameter limit


@dataclass(frozen=True)
class ApplyResult:
    """What a batch did: ``inserted`` records changed the read model; ``duplicates``
    were already reflected (re-delivered, or superseded by a newer version)."""

    inserted: int = 0
    duplicates: int = 0


class ReadModelWriter:
    """Writes records into the read model, one transaction per batch."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise ValueError(f"the read model supports SQLite and PostgreSQL, not {engine.dialect.name!r}")
        self.engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._insert = postgresql.insert if self._postgres else sqlite.insert

    # ---- public API -----------------------------------------------------------------
    def apply(self, records: Sequence[Applicable], merges: Sequence[tuple[str, str]] = ()) -> ApplyResult:
        """Apply a batch atomically; re-applying the same records changes nothing. ``merges``:
        identity's (absorbed, survivor) pairs to mark in the same transaction (``mark_merged``):
        a sink's batch is one commit, not one per merge."""
        transitions: list[StageTransition] = []
        handoff_records: list[Handoff] = []
        breaches: list[SlaBreach] = []
        pairs = list(merges)
        for i, record in enumerate(records):
            if isinstance(record, StageTransition) and record.merged_into:
                # the end of a merged account's stream, not a stage entry
                pairs.append((record.account_id, record.merged_into))
            elif isinstance(record, StageTransition):
                transitions.append(record)
            elif isinstance(record, Handoff):
                handoff_records.append(record)
            elif isinstance(record, SlaBreach):
                breaches.append(record)
            else:
                raise TypeError(
                    f"records[{i}] is a {type(record).__name__}; the read model takes "
                    "StageTransition, Handoff or SlaBreach"
                )
        if not records and not pairs:
            return ApplyResult()
        for from_account, into_account in pairs:
            _check_merge(from_account, into_account)
        now = utcnow()
        with self.engine.begin() as conn:
            applied = {
                "transition": (len(transitions), self._apply_transitions(conn, transitions)),
                "handoff": (len(handoff_records), self._apply_handoffs(conn, handoff_records)),
                "sla_breach": (len(breaches), self._apply_breaches(conn, breaches, now)),
            }
            changed: dict[str, list[Applicable]] = {}
            for _, records_applied in applied.values():
                for r in records_applied:
                    changed.setdefault(r.account_id, []).append(r)
            self._refresh_accounts(conn, changed, now)
            marked = self._mark_merges(conn, pairs, now)
        inserted = duplicates = 0
        for kind, (total, records_applied) in applied.items():
            new, dup = len(records_applied), total - len(records_applied)
            if new:
                READ_MODEL_ROWS.labels(kind=kind, outcome="inserted").inc(new)
            if dup:
                READ_MODEL_ROWS.labels(kind=kind, outcome="duplicate").inc(dup)
            inserted += new
            duplicates += dup
        _count_merges(marked)
        return ApplyResult(inserted=inserted, duplicates=duplicates)

    def mark_merged(self, from_account: str, into_account: str) -> None:
        """Record that identity resolution merged ``from_account`` into ``into_account``.

        Reports then count both ids as one account (``into_account``'s chain end).
        """
        self.apply([], [(from_account, into_account)])

    def _mark_merges(self, conn: Connection, pairs: Sequence[tuple[str, str]], now: datetime) -> list[bool]:
        """Mark identity's merges, in order, inside the caller's transaction; whether each changed
        the read model. The chains are read once per batch and followed in memory (a statement
        per merge cost the sink more than everything else it writes)."""
        if not pairs:
            return []
        parent = _merged_into(conn, {account for pair in pairs for account in pair})
        marked: list[bool] = []
        rows: dict[str, dict[str, Any]] = {}
        for from_account, into_account in pairs:
            root, seen = into_account, {from_account}
            while (nxt := parent.get(root)) is not None:
                if nxt in seen:
                    raise ValueError(f"merging {from_account!r} into {into_account!r} would make a merge cycle")
                seen.add(root)
                root = nxt
            changed = parent.get(from_account) != into_account
            if changed:
                parent[from_account] = into_account
                rows[from_account] = {"account_id": from_account, "merged_into": into_account, "updated_at": now}
            marked.append(changed)
        if rows:
            stmt = self._insert(accounts)
            stmt = stmt.on_conflict_do_update(
                index_elements=[accounts.c.account_id],
                set_={"merged_into": stmt.excluded.merged_into, "updated_at": stmt.excluded.updated_at},
                where=sa.or_(accounts.c.merged_into.is_(None), accounts.c.merged_into != stmt.excluded.merged_into),
            )
            conn.execute(stmt, list(rows.values()))
        return marked

    # ---- one method per record kind; each returns the records that changed something ----
    def _apply_transitions(self, conn: Connection, records: list[StageTransition]) -> list[StageTransition]:
        unique = {r.transition_id: r for r in reversed(records)}
        stmt = self._bulk_insert(stage_history).on_conflict_do_nothing(index_elements=[stage_history.c.transition_id])
        new = self._returned(conn, stmt.returning(stage_history.c.transition_id),
                             [_transition_row(r) for r in unique.values()])
        return [unique[t] for t in new]

    def _apply_handoffs(self, conn: Connection, records: list[Handoff]) -> list[Handoff]:
        # Several versions of one handoff may share a batch: keep the highest, and
        # carry the earliest 'dropped' moment of any version (it is sticky).
        best: dict[str, Handoff] = {}
        dropped: dict[str, datetime] = {}
        for r in records:
            if r.handoff_id not in best or r.version > best[r.handoff_id].version:
                best[r.handoff_id] = r
            if r.status is HandoffStatus.DROPPED:
                at = r.closed_at or r.emitted_at
                dropped[r.handoff_id] = min(at, dropped.get(r.handoff_id, at))
        rows = [_handoff_row(r, dropped.get(hid)) for hid, r in best.items()]
        ins = self._bulk_insert(handoffs)
        newer = ins.excluded.version > handoffs.c.version
        set_: dict[str, Any] = {
            c.name: sa.case((newer, ins.excluded[c.name]), else_=handoffs.c[c.name])
            for c in handoffs.c
            if c.name not in ("handoff_id", "dropped_at")
        }
        set_["dropped_at"] = sa.case(
            (handoffs.c.dropped_at.is_(None), ins.excluded.dropped_at),
            (ins.excluded.dropped_at.is_(None), handoffs.c.dropped_at),
            (ins.excluded.dropped_at < handoffs.c.dropped_at, ins.excluded.dropped_at),
            else_=handoffs.c.dropped_at,
        )
        earlier_drop = sa.and_(
            ins.excluded.dropped_at.is_not(None),
            sa.or_(handoffs.c.dropped_at.is_(None), ins.excluded.dropped_at < handoffs.c.dropped_at),
        )
        stmt = ins.on_conflict_do_update(
            index_elements=[handoffs.c.handoff_id], set_=set_, where=sa.or_(newer, earlier_drop)
        )
        # One record per changed handoff counts as applied; the rest were superseded.
        return [best[hid] for hid in self._returned(conn, stmt.returning(handoffs.c.handoff_id), rows)]

    def _apply_breaches(self, conn: Connection, records: list[SlaBreach], now: datetime) -> list[SlaBreach]:
        # 'breached' and 'met_late' share breach_id and merge into one row. Each
        # status is written by its own statement so that one statement never
        # touches a row twice, and either arrival order ends in the same row.
        breached = {r.breach_id: r for r in records if r.status is SlaBreachStatus.BREACHED}
        met_late = {r.breach_id: r for r in records if r.status is SlaBreachStatus.MET_LATE}
        ins = self._bulk_insert(sla_breaches)
        first = ins.on_conflict_do_update(
            index_elements=[sla_breaches.c.breach_id],
            set_={"breached_at": ins.excluded.breached_at, "updated_at": ins.excluded.updated_at},
            where=sla_breaches.c.breached_at.is_(None),
        )
        applied = [breached[b] for b in self._returned(conn, first.returning(sla_breaches.c.breach_id),
                                                  [_breach_row(r, now) for r in breached.values()])]
        late_cols = ("status", "met_at", "met_event_id", "late_by_seconds", "updated_at")
        second = ins.on_conflict_do_update(
            index_elements=[sla_breaches.c.breach_id],
            set_={c: ins.excluded[c] for c in late_cols},
            where=sla_breaches.c.status != SlaBreachStatus.MET_LATE.value,
        )
        applied += [met_late[b] for b in self._returned(conn, second.returning(sla_breaches.c.breach_id),
                                                   [_breach_row(r, now) for r in met_late.values()])]
        return applied

    # ---- the accounts projection ----------------------------------------------------
    def _refresh_accounts(self, conn: Connection, changed: dict[str, list[Applicable]], now: datetime) -> None:
        """Upsert one row per account touched by a change.

        The current stage is re-derived from ``stage_history`` (the account's
        latest transition, chains at one instant resolved to their end), so a
        late-arriving older transition can never overwrite a newer stage.
        """
        if not changed:
            return
        with_transitions = [a for a, rs in changed.items() if any(isinstance(r, StageTransition) for r in rs)]
        heads = _heads(conn, with_transitions)
        segments = _segments(conn, [a for a, rs in changed.items()
                                    if any(isinstance(r, Handoff) and r.segment for r in rs)])
        rows = []
        for account_id, recs in changed.items():
            seen = [_record_time(r) for r in recs]
            head = heads.get(account_id)
            rows.append({
                "account_id": account_id,
                "current_stage": head["to_stage"] if head else None,
                "stage_entered_at": head["occurred_at"] if head else None,
                "owner_team": head["to_owner_team"] if head else None,
                "owner_id": head["owner_id"] if head else None,
                "segment": segments.get(account_id),
                "merged_into": None,
                "first_seen_at": min(seen),
                "updated_at": now,
            })
        ins = self._bulk_insert(accounts)
        ex = ins.excluded
        has_head = ex.stage_entered_at.is_not(None)
        keep = accounts.c
        set_ = {
            "current_stage": sa.case((has_head, ex.current_stage), else_=keep.current_stage),
            "stage_entered_at": sa.case((has_head, ex.stage_entered_at), else_=keep.stage_entered_at),
            "owner_team": sa.case((has_head, ex.owner_team), else_=keep.owner_team),
            "owner_id": sa.func.coalesce(ex.owner_id, keep.owner_id),
            "segment": sa.func.coalesce(ex.segment, keep.segment),
            "first_seen_at": sa.case(
                (keep.first_seen_at.is_(None), ex.first_seen_at),
                (ex.first_seen_at < keep.first_seen_at, ex.first_seen_at),
                else_=keep.first_seen_at,
            ),
            "updated_at": ex.updated_at,
        }
        conn.execute(ins.on_conflict_do_update(index_elements=[keep.account_id], set_=set_), self._params(rows))

    # ---- many rows per statement ------------------------------------------------------
    def _bulk_insert(self, table: sa.Table) -> Any:
        """An INSERT of many rows in one statement, ready for ON CONFLICT.

        PostgreSQL gets one array per column, unnested server-side: the SQL
        text stays small and cached, where a VALUES list of a thousand rows
        costs more to build than to run. SQLite takes a plain executemany.
        """
        if not self._postgres:
            return sqlite.insert(table)
        columns = [c for c in table.c]
        arrays = sa.select(*(sa.func.unnest(sa.bindparam(c.name, type_=postgresql.ARRAY(c.type))) for c in columns))
        return postgresql.insert(table).from_select([c.name for c in columns], arrays)

    def _params(self, rows: list[dict[str, Any]]) -> Any:
        if not self._postgres:
            return rows
        return {key: [row[key] for row in rows] for key in rows[0]}

    def _returned(self, conn: Connection, stmt: Any, rows: list[dict[str, Any]]) -> set[str]:
        """Run an upsert over ``rows`` and return the keys of the rows it changed."""
        if not rows:
            return set()
        return {row[0] for row in conn.execute(stmt, self._params(rows))}


# ---- helpers --------------------------------------------------------------------------------
def _check_merge(from_account: str, into_account: str) -> None:
    if not from_account or not into_account:
        raise ValueError("mark_merged needs two non-empty account ids")
    if from_account == into_account:
        raise ValueError(f"cannot merge account {from_account!r} into itself")


def _count_merges(marked: Sequence[bool]) -> None:
    changed = sum(marked)
    if changed:
        READ_MODEL_ROWS.labels(kind="merge", outcome="inserted").inc(changed)
    if len(marked) - changed:
        READ_MODEL_ROWS.labels(kind="merge", outcome="duplicate").inc(len(marked) - changed)


def _record_time(record: Applicable) -> datetime:
    return record.started_at if isinstance(record, SlaBreach) else record.occurred_at


def _transition_row(r: StageTransition) -> dict[str, Any]:
    return r.model_dump(include=set(stage_history.c.keys()))


def _handoff_row(r: Handoff, dropped_at: datetime | None) -> dict[str, Any]:
    row = r.model_dump(include=set(handoffs.c.keys()) - {"dropped_at"})
    row["status"] = r.status.value
    row["dropped_at"] = dropped_at
    return row


def _breach_row(r: SlaBreach, now: datetime) -> dict[str, Any]:
    row = r.model_dump(include=set(sla_breaches.c.keys()) - {"breached_at", "updated_at"})
    row["status"] = r.status.value
    row["breached_at"] = r.detected_at if r.status is SlaBreachStatus.BREACHED else None
    row["updated_at"] = now
    return row


def _merged_into(conn: Connection, account_ids: Iterable[str]) -> dict[str, str]:
    """``merged_into`` of these accounts and of every account their chains lead to."""
    out: dict[str, str] = {}
    asked: set[str] = set()
    todo = set(account_ids)
    while todo:
        asked |= todo
        ids = sorted(todo)
        todo = set()
        for start in range(0, len(ids), _CHUNK):
            query = (sa.select(accounts.c.account_id, accounts.c.merged_into)
                     .where(accounts.c.account_id.in_(ids[start:start + _CHUNK]), accounts.c.merged_into.is_not(None)))
            for account_id, merged_into in conn.execute(query):
                out[account_id] = merged_into
                if merged_into not in asked:
                    todo.add(merged_into)
    return out


def _segments(conn: Connection, account_ids: Iterable[str]) -> dict[str, str]:
    """Each account's segment: that of its latest handoff by event time (ties by id), read from
    the table, so the answer does not depend on where write batches happened to end."""
    ids = list(account_ids)
    c = handoffs.c
    out: dict[str, str] = {}
    for start in range(0, len(ids), _CHUNK):
        query = (sa.select(c.account_id, c.segment, c.occurred_at, c.handoff_id)
                 .where(c.account_id.in_(ids[start:start + _CHUNK]), c.segment.is_not(None)))
        latest: dict[str, tuple] = {}
        for row in conn.execute(query):
            key = (row.occurred_at, row.handoff_id)
            if row.account_id not in latest or key > latest[row.account_id][0]:
                latest[row.account_id] = (key, row.segment)
        out.update({account: segment for account, (_, segment) in latest.items()})
    return out


def _heads(conn: Connection, account_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Each account's current transition: the latest by event time.

    Transitions filled in on a jump share one instant (SQL → closed-won →
    onboarding); the head is the end of that chain, the one no other
    transition at the same instant leaves from.
    """
    ids = list(account_ids)
    h = stage_history.c
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        latest = (
            sa.select(h.account_id, sa.func.max(h.occurred_at).label("at"))
            .where(h.account_id.in_(chunk)).group_by(h.account_id).subquery()
        )
        query = (
            sa.select(h.account_id, h.from_stage, h.to_stage, h.occurred_at, h.to_owner_team, h.owner_id,
                      h.emitted_at, h.transition_id)
            .join(latest, sa.and_(latest.c.account_id == h.account_id, latest.c.at == h.occurred_at))
            .where(h.account_id.in_(chunk))
        )
        tied: dict[str, list[dict[str, Any]]] = {}
        for row in conn.execute(query).mappings():
            tied.setdefault(row["account_id"], []).append(dict(row))
        for account_id, group in tied.items():
            out[account_id] = _chain_end(group)
    return out


def _chain_end(group: list[dict[str, Any]]) -> dict[str, Any]:
    left_from = {g["from_stage"] for g in group}
    ends = [g for g in group if g["to_stage"] not in left_from] or group
    return max(ends, key=lambda g: (g["emitted_at"], g["transition_id"]))
