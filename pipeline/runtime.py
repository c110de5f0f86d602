"""Starting things: resolve the broker (configured or embedded), create topics, run a worker."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pipeline import gc_policy
from pipeline.broker import EmbeddedBroker
from pipeline.settings import Settings
from pipeline.topics import ensure_topics
from schemas.topics import LARGE_TOPIC_CONFIG

if TYPE_CHECKING:
    import faust
    from faust.worker import Worker

log = logging.getLogger(__name__)


@contextlib.contextmanager
def broker_for(settings: Settings) -> Iterator[Settings]:
    """Yield settings with ``bootstrap_servers`` set, starting the embedded broker if none is configured."""
    if settings.bootstrap_servers:
        yield settings
        return
    with EmbeddedBroker() as broker:
        log.warning("no KAFKA_BOOTSTRAP_SERVERS: started the embedded broker on %s", broker.bootstrap_servers)
        yield settings.with_(bootstrap_servers=broker.bootstrap_servers)


def create_topics(settings: Settings) -> list[str]:
    """Create every topic of the pipeline in ``settings.topics``' namespace: the raw and
    account-keyed ones with ``settings.partitions``, the parsed topics, identity and dead letters
    with one (the parsed topics and dead letters taking messages up to 8 MiB)."""
    assert settings.bootstrap_servers
    topics = settings.topics
    single = topics.single_partition(settings.partitions)  # one ordered view for identity
    large = topics.large(settings.partitions)
    keyed = [n for n in topics.all_names() if n not in single]
    created = ensure_topics(settings.bootstrap_servers, keyed, settings.partitions)
    created += ensure_topics(settings.bootstrap_servers, [n for n in single if n not in large], 1)
    created += ensure_topics(settings.bootstrap_servers, large, 1,
                             configs=LARGE_TOPIC_CONFIG)
    return created


def make_worker(app: faust.App, log_level: str) -> Worker:
    """Faust's Worker with our JSON logging, the root logger left at ``log_level``."""
    from faust.worker import Worker

    from pipeline.logs import logging_config, restore_root_level

    class LevelKeepingWorker(Worker):
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            super().on_setup_root_logger(logger, level)  # the spinner; sets the root to DEBUG
            restore_root_level(log_level)

    return LevelKeepingWorker(app, loglevel=log_level, quiet=True, logging_config=logging_config(log_level))


def run_worker(settings: Settings) -> None:
    """Run one Faust worker until SIGTERM/SIGINT (blocking)."""
    from pipeline.app import LifecyclePipeline

    pipeline = LifecyclePipeline(settings)
    create_topics(settings)
    pipeline.start_processes()
    worker = make_worker(pipeline.app, settings.log_level)
    gc_policy.for_worker()
    worker.execute_from_commandline()
