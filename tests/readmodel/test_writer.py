"""ReadModelWriter: idempotent, order-independent, one transaction per batch."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipeline.metrics import READ_MODEL_ROWS
from pipeline.readmodel import ReadModelWriter
from pipeline.readmodel.models import TABLES, accounts, handoffs, sla_breaches, stage_history
from tests.readmodel import story
from tests.readmodel.story import at

VOLATILE = {"updated_at"}  # wall-clock of the write; everything else must match exactly


def snapshot(engine: Engine, *, volatile: bool = True) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    with engine.connect() as conn:
        for table in TABLES:
            cols = [c for c in table.c if volatile or c.name not in VOLATILE]
            out[table.name] = sorted(tuple(r) for r in conn.execute(sa.select(*cols)))
    return out


def count_metric(kind: str, outcome: str) -> float:
    return READ_MODEL_ROWS.labels(kind=kind, outcome=outcome)._value.get()


def test_apply_then_reapply_changes_nothing(engine: Engine) -> None:
    writer = ReadModelWriter(engine)
    records = story.story()
    first = writer.apply(records)
    assert first.inserted == len(records) - _superseded_in_batch(records)
    before = snapshot(engine)
    again = writer.apply(records)
    assert (again.inserted, again.duplicates) == (0, len(records))
    assert snapshot(engine) == before  # including updated_at: nothing was rewritten


def _superseded_in_batch(records: list[Any]) -> int:
    """Handoff versions below the highest one in the same batch count as duplicates."""
    from schemas.handoffs import Handoff

    ids = [r.handoff_id for r in records if isinstance(r, Handoff)]
    return len(ids) - len(set(ids))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_shuffled_batches_with_redelivery_end_in_the_same_state(engine: Engine, seed: int) -> None:
    in_order = story.story()
    writer = ReadModelWriter(engine)
    rng = random.Random(seed)
    delivered = in_order + rng.sample(in_order, k=len(in_order) // 2)  # at-least-once: some twice
    rng.shuffle(delivered)
    total_inserted = 0
    while delivered:
        size = rng.randint(1, 7)
        batch, delivered = delivered[:size], delivered[size:]
        total_inserted += writer.apply(batch).inserted
    shuffled = snapshot(engine, volatile=False)

    with engine.begin() as conn:
        for table in TABLES:
            conn.execute(table.delete())
    for record in in_order:
        writer.apply([record])
    assert snapshot(engine, volatile=False) == shuffled

    with engine.connect() as conn:
        row = conn.execute(sa.select(accounts).where(accounts.c.account_id == "A")).mappings().one()
    assert (row["current_stage"], row["stage_entered_at"], row["owner_team"]) == ("churned", at(60), "customer_success")
    assert row["first_seen_at"] == at(0) and row["segment"] == "enterprise"


def test_older_transition_does_not_overwrite_current_stage(engine: Engine) -> None:
    transitions = [t for t in story.transitions() if t.account_id == "A"]
    writer = ReadModelWriter(engine)
    writer.apply([transitions[-1]])          # churned, day 60
    writer.apply(transitions[:3])            # MQL, SQL, closed-won arrive late
    with engine.connect() as conn:
        row = conn.execute(sa.select(accounts).where(accounts.c.account_id == "A")).mappings().one()
    assert row["current_stage"] == "churned"
    assert row["stage_entered_at"] == at(60)
    assert row["first_seen_at"] == at(0)


def test_jump_chain_at_one_instant_ends_at_its_last_stage(engine: Engine) -> None:
    b = [t for t in story.transitions() if t.account_id == "B"]
    onboarding = b[3]
    # Emitted later than its chain's end, so "latest emitted" would pick the wrong stage.
    inferred_cw = b[2].model_copy(update={"emitted_at": onboarding.emitted_at + timedelta(minutes=1)})
    assert inferred_cw.occurred_at == onboarding.occurred_at
    writer = ReadModelWriter(engine)
    writer.apply([onboarding])
    writer.apply([inferred_cw, *b[:2]])      # the chain's first link arrives after its end
    with engine.connect() as conn:
        stage = conn.execute(sa.select(accounts.c.current_stage).where(accounts.c.account_id == "B")).scalar_one()
    assert stage == "onboarding"


def test_lower_handoff_version_is_ignored(engine: Engine) -> None:
    v1, v2, v3 = [h for h in story.handoffs() if h.handoff_id == "ho-A1"]
    writer = ReadModelWriter(engine)
    assert writer.apply([v3]).inserted == 1
    result = writer.apply([v1, v2])
    assert (result.inserted, result.duplicates) == (0, 2)
    with engine.connect() as conn:
        row = conn.execute(sa.select(handoffs).where(handoffs.c.handoff_id == "ho-A1")).mappings().one()
    assert (row["version"], row["status"], row["closed_at"]) == (3, "completed", at(47))


def test_drop_seen_out_of_order_still_marks_a_late_acceptance(engine: Engine) -> None:
    v1, dropped, accepted = [h for h in story.handoffs() if h.handoff_id == "ho-A2"]
    writer = ReadModelWriter(engine)
    writer.apply([accepted])
    assert writer.apply([dropped]).inserted == 1  # lower version: state kept, but the drop is remembered
    assert writer.apply([v1, dropped]).inserted == 0
    with engine.connect() as conn:
        row = conn.execute(sa.select(handoffs).where(handoffs.c.handoff_id == "ho-A2")).mappings().one()
    assert (row["version"], row["status"], row["first_action_at"], row["dropped_at"]) == (3, "accepted", at(19), at(17))


@pytest.mark.parametrize("order", ["breached_first", "met_late_first", "same_batch"])
def test_met_late_merges_into_its_breach_in_any_order(engine: Engine, order: str) -> None:
    breached, met_late = story.breach("A", "kickoff", "customer_success", 10, 15, met=18)
    writer = ReadModelWriter(engine)
    if order == "breached_first":
        results = [writer.apply([breached]), writer.apply([met_late])]
    elif order == "met_late_first":
        results = [writer.apply([met_late]), writer.apply([breached])]
    else:
        results = [writer.apply([met_late, breached])]
    assert sum(r.inserted for r in results) == 2
    assert writer.apply([breached, met_late]).inserted == 0
    with engine.connect() as conn:
        rows = conn.execute(sa.select(sla_breaches)).mappings().all()
    assert len(rows) == 1
    row = rows[0]
    assert (row["status"], row["met_at"], row["late_by_seconds"], row["breached_at"]) == (
        "met_late", at(18), 3 * story.DAY, at(15))


def test_batch_is_one_transaction(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = ReadModelWriter(engine)

    def fail(*_: Any) -> None:
        raise RuntimeError("simulated failure after the inserts")

    monkeypatch.setattr(writer, "_refresh_accounts", fail)
    with pytest.raises(RuntimeError):
        writer.apply(story.story())
    assert all(rows == [] for rows in snapshot(engine).values())


def test_wrong_record_type_is_refused_before_writing(engine: Engine) -> None:
    writer = ReadModelWriter(engine)
    raw = story.transitions()[1].model_dump(mode="json")  # decoded JSON, not the model
    with pytest.raises(TypeError, match=r"records\[1\] is a dict"):
        writer.apply([story.transitions()[0], raw])  # type: ignore[list-item]
    assert snapshot(engine)["stage_history"] == []


def test_metrics_count_inserted_and_duplicate(engine: Engine) -> None:
    writer = ReadModelWriter(engine)
    records = story.transitions()[:3]
    ins, dup = count_metric("transition", "inserted"), count_metric("transition", "duplicate")
    writer.apply(records)
    writer.apply(records[:2])
    assert count_metric("transition", "inserted") - ins == 3
    assert count_metric("transition", "duplicate") - dup == 2


def test_mark_merged_is_idempotent_and_refuses_cycles(engine: Engine) -> None:
    writer = ReadModelWriter(engine)
    writer.apply(story.transitions())
    writer.mark_merged("D", "A")
    writer.mark_merged("D", "A")
    writer.mark_merged("X", "D")      # unknown account: recorded, chain X → D → A
    with engine.connect() as conn:
        merged = dict(conn.execute(sa.select(accounts.c.account_id, accounts.c.merged_into)
                                   .where(accounts.c.merged_into.is_not(None))).all())
    assert merged == {"D": "A", "X": "D"}
    with pytest.raises(ValueError, match="cycle"):
        writer.mark_merged("A", "X")
    with pytest.raises(ValueError, match="into itself"):
        writer.mark_merged("A", "A")
    with pytest.raises(ValueError, match="non-empty"):
        writer.mark_merged("", "A")


def test_merges_in_a_batch_are_one_transaction_followed_in_order(engine: Engine) -> None:
    """A sink batch's merges go with its records in one commit; each is checked against the
    chains as the merges before it in the same batch left them."""
    writer = ReadModelWriter(engine)
    transitions = story.transitions()
    ins, dup = count_metric("merge", "inserted"), count_metric("merge", "duplicate")
    writer.apply(transitions, [("D", "A"), ("X", "D"), ("D", "A"), ("Y", "X")])
    assert count_metric("merge", "inserted") - ins == 3
    assert count_metric("merge", "duplicate") - dup == 1

    def merged() -> dict[str, str]:
        with engine.connect() as conn:
            return dict(conn.execute(sa.select(accounts.c.account_id, accounts.c.merged_into)
                                     .where(accounts.c.merged_into.is_not(None))).all())

    assert merged() == {"D": "A", "X": "D", "Y": "X"}
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(stage_history)).scalar_one() == len(
            {t.transition_id for t in transitions})
    # A cycle closed by a later merge of the same batch (Z → Y, then A → Z: A → Z → Y → X → D → A)
    # refuses the whole batch: nothing of it is written.
    late = story.handoff_versions("ho-batch-1", "A", "marketing", "sales", 1, "mid_market")
    with pytest.raises(ValueError, match="cycle"):
        writer.apply(late, [("Z", "Y"), ("A", "Z")])
    assert merged() == {"D": "A", "X": "D", "Y": "X"}
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(handoffs)
                            .where(handoffs.c.handoff_id == "ho-batch-1")).scalar_one() == 0
    with pytest.raises(ValueError, match="into itself"):
        writer.apply([], [("B", "B")])


def test_segment_is_the_latest_handoffs_whatever_the_batches(engine: Engine) -> None:
    """An account's segment comes from its latest handoff by event time, not from whichever
    write batch happened to come last (a sink's batches end wherever they end)."""
    early = story.handoff_versions("ho-seg-1", "S", "marketing", "sales", 1, "mid_market")[-1]
    late = story.handoff_versions("ho-seg-2", "S", "sales", "customer_success", 5, "enterprise")[-1]
    writer = ReadModelWriter(engine)
    writer.apply([late])
    writer.apply([early])  # an older handoff, written later
    with engine.connect() as conn:
        segment = conn.execute(sa.select(accounts.c.segment).where(accounts.c.account_id == "S")).scalar_one()
    assert segment == "enterprise"
