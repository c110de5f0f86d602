"""The embedded broker starts, answers Kafka clients, and leaves no process behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient

from pipeline.broker import EmbeddedBroker, free_port, metadata_ready
from pipeline.topics import ensure_topics


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); read its state
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


def test_not_ready_on_a_closed_port():
    assert metadata_ready("127.0.0.1", free_port(), timeout=0.3) is False


def test_start_produce_and_stop_cleanly():
    with EmbeddedBroker() as broker:
        assert metadata_ready(broker.host, broker.port)
        created = ensure_topics(broker.bootstrap_servers, ["t.one", "t.two"], partitions=3)
        assert sorted(created) == ["t.one", "t.two"]
        assert ensure_topics(broker.bootstrap_servers, ["t.one"], partitions=3) == []
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        meta = producer.send("t.one", key=b"k", value=b"v").get(timeout=10)
        assert meta.topic == "t.one" and meta.offset == 0
        producer.close()
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        desc = admin.describe_topics(["t.two"])
        assert len(desc[0]["partitions"]) == 3
        admin.close()
        pid = broker._proc.pid
    assert not broker.running
    assert not _alive(pid)


def test_no_orphan_when_parent_is_killed(tmp_path):
    """SIGKILL the owning process: the kernel takes the broker down with it."""
    pidfile = tmp_path / "pid"
    script = textwrap.dedent(f"""
        import time
        from pipeline.broker import EmbeddedBroker
        b = EmbeddedBroker().start()
        open({str(pidfile)!r}, "w").write(str(b._proc.pid))
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 20
    while not pidfile.exists() or not pidfile.read_text():
        assert time.monotonic() < deadline, "broker did not start"
        time.sleep(0.05)
    broker_pid = int(pidfile.read_text())
    assert _alive(broker_pid)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 5
    while _alive(broker_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = _alive(broker_pid)
    if alive:
        os.kill(broker_pid, 9)
    assert not alive, "embedded broker outlived its parent"


def test_bad_binary_reports_clearly(monkeypatch):
    monkeypatch.setenv("CALF_TANSU_BIN", "/nonexistent/tansu")
    with pytest.raises(Exception, match="CALF_TANSU_BIN"):
        EmbeddedBroker().start()
