"""Connecting to the read model and bringing its schema up to date.

SQLite by default (a file under ``lifecycle-data/``), PostgreSQL by URL. The
schema comes from the Alembic migrations shipped in this package, never from
``create_all``, so production databases and tests share one upgrade path.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from pipeline.settings import Settings

ENV_URL = Settings.env_name("database_url")
DEFAULT_URL = Settings().resolved_database_url  # sqlite:///lifecycle-data/readmodel.db

# Any constant works; it only has to be the same in every worker so that two
# replicas starting together do not both create the tables.
_MIGRATION_LOCK_KEY = 0x11FEC7C1E


class ReadModelConfigError(ValueError):
    """A database URL that cannot be used; the message says why."""


def resolve_url(url: str | None = None) -> str:
    """The URL to use: the argument, else the settings' (``$LIFECYCLE_DATABASE_URL`` or the SQLite default)."""
    chosen = url or Settings.from_env().resolved_database_url
    # psycopg 3 is the driver we ship; bare postgres URLs would pick psycopg2.
    for bare in ("postgres://", "postgresql://"):
        if chosen.startswith(bare):
            return "postgresql+psycopg://" + chosen[len(bare):]
    return chosen


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for the read model; creates the SQLite file's directory if needed."""
    text = resolve_url(url)
    try:
        parsed = make_url(text)
    except ArgumentError as exc:
        raise ReadModelConfigError(f"cannot parse database URL {text!r}: {exc}") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ReadModelConfigError(
            f"unsupported database {backend!r} in {parsed.render_as_string(hide_password=True)}; "
            "use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB"
        )
    if backend == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise ReadModelConfigError(f"cannot use database URL {parsed.render_as_string(hide_password=True)}: {exc}") from None
    if backend == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the report CLI read while the worker writes; the timeout turns
    # a brief writer lock into a wait instead of "database is locked".
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def alembic_config() -> Config:
    """Alembic configuration pointing at the migrations inside this package."""
    cfg = Config()
    location = resources.files("pipeline.readmodel").joinpath("migrations")
    cfg.set_main_option("script_location", str(location))
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the read model's schema (``alembic upgrade head``); a no-op when current."""
    cfg = alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    """The schema revision stored in the database, ``None`` before the first migration."""
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the read model ships at least one migration"
    return head
