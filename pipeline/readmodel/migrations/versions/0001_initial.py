"""Initial read model: accounts, stage_history, handoffs, sla_breaches.

Revision ID: 0001
Revises:
Create Date: 2024-06-01
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# Plain types on purpose: a migration is frozen in time and must not import the
# models it predates. UtcDateTime's storage type is DateTime(timezone=True).
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("current_stage", sa.String(), nullable=True),
        sa.Column("stage_entered_at", TS, nullable=True),
        sa.Column("owner_team", sa.String(), nullable=True),
        sa.Column("owner_id", sa.String(), nullable=True),
        sa.Column("segment", sa.String(), nullable=True),
        sa.Column("merged_into", sa.String(), nullable=True),
        sa.Column("first_seen_at", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("account_id", name="pk_accounts"),
    )
    op.create_index("ix_accounts_merged_into", "accounts", ["merged_into"])

    op.create_table(
        "stage_history",
        sa.Column("transition_id", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("from_stage", sa.String(), nullable=True),
        sa.Column("to_stage", sa.String(), nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("trigger_event_id", sa.String(), nullable=False),
        sa.Column("trigger_kind", sa.String(), nullable=False),
        sa.Column("from_owner_team", sa.String(), nullable=True),
        sa.Column("to_owner_team", sa.String(), nullable=False),
        sa.Column("owner_id", sa.String(), nullable=True),
        sa.Column("time_in_previous_stage_seconds", sa.Float(), nullable=True),
        sa.Column("inferred", sa.Boolean(), nullable=False),
        sa.Column("direction", sa.String(), nullable=False),
        sa.Column("emitted_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("transition_id", name="pk_stage_history"),
    )
    op.create_index("ix_stage_history_account_id_occurred_at", "stage_history", ["account_id", "occurred_at"])
    op.create_index("ix_stage_history_to_stage_occurred_at", "stage_history", ["to_stage", "occurred_at"])

    op.create_table(
        "handoffs",
        sa.Column("handoff_id", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("from_team", sa.String(), nullable=True),
        sa.Column("to_team", sa.String(), nullable=False),
        sa.Column("from_owner", sa.String(), nullable=True),
        sa.Column("to_owner", sa.String(), nullable=True),
        sa.Column("from_stage", sa.String(), nullable=True),
        sa.Column("to_stage", sa.String(), nullable=False),
        sa.Column("handoff_event", sa.String(), nullable=False),
        sa.Column("segment", sa.String(), nullable=True),
        sa.Column("trigger_event_id", sa.String(), nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("first_action_at", TS, nullable=True),
        sa.Column("overlap_until", TS, nullable=True),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("dropped_at", TS, nullable=True),
        sa.Column("emitted_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("handoff_id", name="pk_handoffs"),
    )
    op.create_index("ix_handoffs_account_id", "handoffs", ["account_id"])
    op.create_index("ix_handoffs_occurred_at", "handoffs", ["occurred_at"])

    op.create_table(
        "sla_breaches",
        sa.Column("breach_id", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("sla_id", sa.String(), nullable=False),
        sa.Column("sla_name", sa.String(), nullable=False),
        sa.Column("owner_team", sa.String(), nullable=False),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("start_event_id", sa.String(), nullable=False),
        sa.Column("deadline", TS, nullable=False),
        sa.Column("breached_at", TS, nullable=True),
        sa.Column("met_at", TS, nullable=True),
        sa.Column("met_event_id", sa.String(), nullable=True),
        sa.Column("late_by_seconds", sa.Float(), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("breach_id", name="pk_sla_breaches"),
    )
    op.create_index("ix_sla_breaches_account_id", "sla_breaches", ["account_id"])
    op.create_index("ix_sla_breaches_sla_id_started_at", "sla_breaches", ["sla_id", "started_at"])


def downgrade() -> None:
    op.drop_table("sla_breaches")
    op.drop_table("handoffs")
    op.drop_table("stage_history")
    op.drop_table("accounts")
