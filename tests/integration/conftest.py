"""Integration fixtures: a real worker process on the session's real broker."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.drive.runner import WorkerProcess, consumed_topics, internal_topics, produce_raw, wait_caught_up
from pipeline.runtime import create_topics
from pipeline.settings import Settings
from schemas.events import RawRecord

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def base_settings(isolated_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(bootstrap_servers=isolated_bootstrap, partitions=2, timer_interval=0.25,
                        commit_interval=0.3, data_dir=tmp_path_factory.mktemp("lifecycle"))
    create_topics(settings)
    return settings


def unique_settings(base: Settings, name: str, tmp: Path) -> Settings:
    """A fresh consumer group and fresh tables (changelog topics are named after the app id)."""
    return base.with_(app_id=f"it-{name}-{uuid.uuid4().hex[:6]}", data_dir=tmp,
                      database_url=f"sqlite:///{tmp / 'readmodel.db'}")


class Feeder:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def send(self, *records: RawRecord) -> None:
        assert self.settings.bootstrap_servers
        produce_raw(self.settings.bootstrap_servers, records)

    def caught_up(self, timeout: float = 60.0) -> None:
        """Everything the worker's group consumes is committed (a stream-role group does not read
        the output topics: the read-model sink is its own group)."""
        assert self.settings.bootstrap_servers
        s = self.settings
        topics = internal_topics(s) if s.role == "stream" else consumed_topics(s)
        wait_caught_up(s.bootstrap_servers, s.app_id, topics, timeout=timeout, settle=0.4)

    def in_order(self, records: list[RawRecord]) -> None:
        """One at a time, each processed before the next: Kafka orders within a partition only,
        and the four raw topics are four partitions."""
        for r in records:
            self.send(r)
            self.caught_up()


@pytest.fixture
def start_worker(base_settings: Settings, tmp_path: Path) -> Iterator[Callable[..., tuple[WorkerProcess, Feeder]]]:
    started: list[WorkerProcess] = []

    def start(name: str, settings: Settings | None = None) -> tuple[WorkerProcess, Feeder]:
        s = settings or unique_settings(base_settings, name, tmp_path)
        worker = WorkerProcess(s, tmp_path / f"{s.app_id}-{len(started)}.log").start()
        started.append(worker)
        return worker, Feeder(s)

    yield start
    for w in started:
        w.stop()
