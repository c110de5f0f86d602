"""The read model's tables: one row per account, transition, handoff and SLA breach.

This metadata is the single source of the schema: Alembic migrations in
``migrations/versions`` must produce exactly these tables (a test compares them
with autogenerate on SQLite and PostgreSQL).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    PostgreSQL keeps ``timestamptz``; SQLite has no zones, so values are stored
    as naive UTC text (which sorts correctly) and come back tagged as UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to the read model; attach a UTC offset")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("account_id", sa.String, primary_key=True),
    sa.Column("current_stage", sa.String, nullable=True),
    sa.Column("stage_entered_at", UtcDateTime, nullable=True),
    sa.Column("owner_team", sa.String, nullable=True),
    sa.Column("owner_id", sa.String, nullable=True),
    sa.Column("segment", sa.String, nullable=True),
    sa.Column("merged_into", sa.String, nullable=True, index=True),
    sa.Column("first_seen_at", UtcDateTime, nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

stage_history = sa.Table(
    "stage_history",
    metadata,
    sa.Column("transition_id", sa.String, primary_key=True),
    sa.Column("account_id", sa.String, nullable=False),
    sa.Column("from_stage", sa.String, nullable=True),
    sa.Column("to_stage", sa.String, nullable=False),
    sa.Column("occurred_at", UtcDateTime, nullable=False),
    sa.Column("trigger_event_id", sa.String, nullable=False),
    sa.Column("trigger_kind", sa.String, nullable=False),
    sa.Column("from_owner_team", sa.String, nullable=True),
    sa.Column("to_owner_team", sa.String, nullable=False),
    sa.Column("owner_id", sa.String, nullable=True),
    sa.Column("time_in_previous_stage_seconds", sa.Float, nullable=True),
    sa.Column("inferred", sa.Boolean, nullable=False),
    sa.Column("direction", sa.String, nullable=False),
    sa.Column("emitted_at", UtcDateTime, nullable=False),
    sa.Index(None, "account_id", "occurred_at"),
    sa.Index(None, "to_stage", "occurred_at"),
)

handoffs = sa.Table(
    "handoffs",
    metadata,
    sa.Column("handoff_id", sa.String, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("account_id", sa.String, nullable=False, index=True),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("from_team", sa.String, nullable=True),
    sa.Column("to_team", sa.String, nullable=False),
    sa.Column("from_owner", sa.String, nullable=True),
    sa.Column("to_owner", sa.String, nullable=True),
    sa.Column("from_stage", sa.String, nullable=True),
    sa.Column("to_stage", sa.String, nullable=False),
    sa.Column("handoff_event", sa.String, nullable=False),
    sa.Column("segment", sa.String, nullable=True),
    sa.Column("trigger_event_id", sa.String, nullable=False),
    sa.Column("occurred_at", UtcDateTime, nullable=False, index=True),
    sa.Column("first_action_at", UtcDateTime, nullable=True),
    sa.Column("overlap_until", UtcDateTime, nullable=True),
    sa.Column("closed_at", UtcDateTime, nullable=True),
    # Sticky across versions: when a version with status 'dropped' was seen. A
    # later 'accepted' keeps it, which is how a late acceptance is recognised.
    sa.Column("dropped_at", UtcDateTime, nullable=True),
    sa.Column("emitted_at", UtcDateTime, nullable=False),
)

sla_breaches = sa.Table(
    "sla_breaches",
    metadata,
    sa.Column("breach_id", sa.String, primary_key=True),
    sa.Column("account_id", sa.String, nullable=False, index=True),
    sa.Column("sla_id", sa.String, nullable=False),
    sa.Column("sla_name", sa.String, nullable=False),
    sa.Column("owner_team", sa.String, nullable=False),
    sa.Column("severity", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("start_event_id", sa.String, nullable=False),
    sa.Column("deadline", UtcDateTime, nullable=False),
    # detected_at of the 'breached' record; NULL while only 'met_late' was seen
    sa.Column("breached_at", UtcDateTime, nullable=True),
    sa.Column("met_at", UtcDateTime, nullable=True),
    sa.Column("met_event_id", sa.String, nullable=True),
    sa.Column("late_by_seconds", sa.Float, nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index(None, "sla_id", "started_at"),
)

TABLES: tuple[sa.Table, ...] = (accounts, stage_history, handoffs, sla_breaches)
