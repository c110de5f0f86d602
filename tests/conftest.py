"""Shared fixtures: a real Kafka broker for integration tests.

Chosen in this order: ``KAFKA_BOOTSTRAP_SERVERS`` → a testcontainers Kafka where a
Docker engine answers → the embedded Tansu broker. Never a mock.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pipeline.broker import EmbeddedBroker, configured_bootstrap


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=2)
        client.ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def docker_available() -> bool:
    return os.environ.get("LIFECYCLE_TEST_DOCKER", "1") != "0" and _docker_answers()


@pytest.fixture(scope="session")
def kafka_bootstrap(docker_available: bool) -> Iterator[str]:
    configured = configured_bootstrap()
    if configured:
        yield configured
        return
    if docker_available:
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers


@pytest.fixture(scope="module")
def isolated_bootstrap(kafka_bootstrap: str, docker_available: bool) -> Iterator[str]:
    """A broker of the module's own where that is cheap (the embedded one starts in
    milliseconds), so pipeline tests do not re-read every other test's records; the
    shared broker otherwise (configured or containerised)."""
    if configured_bootstrap() or docker_available:
        yield kafka_bootstrap
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers
