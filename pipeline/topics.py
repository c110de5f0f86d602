"""Create the pipeline's topics with the partition counts Faust expects.

Faust checks that a table's changelog has as many partitions as its source topic;
creating everything up front (instead of relying on broker auto-create, whose
default differs between Kafka and Tansu) keeps them equal.
"""

from __future__ import annotations

import logging
import time

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from pipeline.kafka_clients import client_kwargs

log = logging.getLogger(__name__)


def ensure_topics(bootstrap: str, names: list[str], partitions: int, replication: int = 1,
                  timeout: float = 30.0, configs: dict[str, str] | None = None) -> list[str]:
    """Create the missing topics (with topic-level ``configs``); return the names created."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="lifecycle-admin",
                                     request_timeout_ms=10_000, **client_kwargs())
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    try:
        existing = set(admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            try:
                admin.create_topics([NewTopic(n, partitions, replication, topic_configs=configs or {})
                                     for n in missing])
            except TopicAlreadyExistsError:
                pass
            log.info("created topics %s", missing)
        return missing
    finally:
        admin.close()
