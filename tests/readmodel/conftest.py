"""Read-model fixtures: a migrated database per test, on SQLite and on PostgreSQL.

PostgreSQL tests use the server on 127.0.0.1:5432 (``LIFECYCLE_TEST_PG_URL``
overrides). Each test session creates its own database and drops it at the
end; each test gets a fresh schema in it, so parallel runs never collide. The
URLs carry the schema (``options=-csearch_path=...``) so the CLI and HTTP tests
reach the same data through a plain ``--db URL``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipeline.readmodel import make_engine, migrate

PG_ADMIN_URL = os.environ.get("LIFECYCLE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A throwaway database for this test session; yields its URL."""
    admin = make_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        message = f"PostgreSQL not reachable at {PG_ADMIN_URL}: {str(exc).splitlines()[0]}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must run the postgres tests; .ci/run starts the server)")
        pytest.skip(message)
    name = f"lifecycle_rm_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = make_engine(PG_ADMIN_URL).url.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _pg_schema_url(database_url: str) -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(database_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{database_url}?options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """An empty database URL (no schema yet) on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'readmodel.db'}"
    else:
        yield from _pg_schema_url(request.getfixturevalue("pg_database"))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated, empty read model."""
    eng = make_engine(db_url)
    migrate(eng)
    yield eng
    eng.dispose()
