"""The RevOps read model: the lifecycle's records in SQL, and the reports over them.

The worker writes with :class:`ReadModelWriter`; people read through
``lifecycle report ...`` (:mod:`pipeline.readmodel.cli`) and the JSON API
(:mod:`pipeline.readmodel.http`), both backed by :mod:`pipeline.readmodel.queries`.
"""

from pipeline.readmodel.engine import DEFAULT_URL, ENV_URL, ReadModelConfigError, make_engine, migrate
from pipeline.readmodel.writer import ApplyResult, ReadModelWriter

__all__ = [
    "DEFAULT_URL",
    "ENV_URL",
    "ApplyResult",
    "ReadModelConfigError",
    "ReadModelWriter",
    "make_engine",
    "migrate",
]
