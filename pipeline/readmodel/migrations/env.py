"""Alembic environment for the read model.

``pipeline.readmodel.engine.migrate`` passes an open connection in
``config.attributes["connection"]``; the ``alembic`` command line (with
``pipeline/readmodel/alembic.ini``) connects from ``$LIFECYCLE_DATABASE_URL``.
"""

from __future__ import annotations

from alembic import context

from pipeline.readmodel.engine import make_engine, resolve_url
from pipeline.readmodel.models import metadata

config = context.config


def _configure(**kwargs: object) -> None:
    context.configure(target_metadata=metadata, compare_type=True, render_as_batch=True, **kwargs)


def run_offline() -> None:
    _configure(url=resolve_url(config.get_main_option("sqlalchemy.url") or None), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or None)
    with engine.begin() as conn:
        _configure(connection=conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
