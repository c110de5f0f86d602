"""The schema comes from Alembic and matches the models; engines come from URLs."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine

from pipeline.readmodel import DEFAULT_URL, ReadModelConfigError, make_engine, migrate
from pipeline.readmodel.engine import current_revision, head_revision, resolve_url
from pipeline.readmodel.models import metadata


def _diff(engine: Engine, target: sa.MetaData) -> list:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return compare_metadata(ctx, target)


def test_migrations_produce_the_models_schema(engine: Engine) -> None:
    assert _diff(engine, metadata) == []
    assert current_revision(engine) == head_revision()


def test_comparison_notices_a_difference(engine: Engine) -> None:
    # Guard against a comparison that can never fail: a column the migrations lack shows up.
    changed = sa.MetaData()
    for table in metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["accounts"].append_column(sa.Column("health_score", sa.Float))
    diff = _diff(engine, changed)
    assert [d[0] for d in diff] == ["add_column"] and diff[0][3].name == "health_score"


def test_migrate_is_idempotent_and_starts_from_nothing(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) is None
        migrate(engine)
        migrate(engine)
        assert current_revision(engine) == head_revision()
        assert set(sa.inspect(engine).get_table_names()) >= {"accounts", "stage_history", "handoffs", "sla_breaches"}
    finally:
        engine.dispose()


def test_default_url_creates_its_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LIFECYCLE_DATABASE_URL", raising=False)
    engine = make_engine()
    try:
        assert str(engine.url) == DEFAULT_URL
        migrate(engine)
        assert (tmp_path / "lifecycle-data" / "readmodel.db").is_file()
    finally:
        engine.dispose()


def test_env_overrides_default_and_argument_overrides_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIFECYCLE_DATABASE_URL", f"sqlite:///{tmp_path}/env.db")
    assert resolve_url() == f"sqlite:///{tmp_path}/env.db"
    assert resolve_url("sqlite:///other.db") == "sqlite:///other.db"
    assert resolve_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert resolve_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize("url, message", [
    ("not a url", "cannot parse database URL"),
    ("mysql://u@h/db", "unsupported database 'mysql'"),
    ("postgresql+nosuchdriver://u@h/db", "cannot use database URL"),
])
def test_bad_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ReadModelConfigError, match=message):
        make_engine(url)
