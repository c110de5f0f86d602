"""Managed Kafka: every client honours one security configuration.

TLS for real: a CA made here, a TLS-terminating proxy in front of the embedded broker (which
advertises the proxy), a worker process and the file-replay connector process running through
it. SASL (which the embedded broker does not speak): the settings reach the constructed clients
of each library the project uses."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from pipeline.broker import EmbeddedBroker, free_port
from pipeline.drive.runner import WorkerProcess, consumed_topics, wait_caught_up
from pipeline.kafka_clients import client_kwargs, faust_credentials
from pipeline.runtime import create_topics
from pipeline.sample import SampleConfig, generate, write_jsonl
from pipeline.settings import Settings
from pipeline.topic_reads import read_topic
from schemas import topics as T
from schemas.transitions import StageTransition
from tests.integration.tls import TlsProxy, make_certs

ROOT = Path(__file__).resolve().parents[2]
SASL = Settings(bootstrap_servers="127.0.0.1:1", security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
                sasl_username="svc-lifecycle", sasl_password="s3cret")


@pytest.mark.integration
def test_worker_and_connector_through_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    certs = make_certs(tmp_path / "certs")
    port = free_port()
    with EmbeddedBroker(advertised=f"localhost:{port}") as broker, TlsProxy(port, broker.port, certs) as proxy:
        settings = Settings(bootstrap_servers=f"localhost:{port}", security_protocol="SSL", ssl_ca_file=certs.ca,
                            app_id="lifecycle-tls", partitions=2, timer_interval=0.25, commit_interval=0.3,
                            data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'readmodel.db'}")
        for name, value in settings.to_env().items():  # this process's own clients read the environment
            monkeypatch.setenv(name, value)
        create_topics(settings)
        sample = tmp_path / "sample.jsonl"
        write_jsonl(generate(SampleConfig(accounts=4, seed=3)), sample)
        with WorkerProcess(settings, tmp_path / "worker.log"):
            replay = subprocess.run([sys.executable, "-m", "pipeline.cli", "connect", "replay", str(sample),
                                     "--no-progress"], env=dict(os.environ), capture_output=True, text=True,
                                    timeout=120)
            assert replay.returncode == 0, replay.stderr
            wait_caught_up(f"localhost:{port}", settings.app_id, consumed_topics(settings), timeout=120)
            transitions = read_topic(f"localhost:{port}", T.STAGE_TRANSITIONS, StageTransition)
        assert transitions, "the worker emitted nothing through TLS"
        assert proxy.handshakes >= 3 and proxy.bytes_in > 10_000

        # Hostname verification is on by default: the certificate names localhost, not 127.0.0.1.
        by_ip = settings.with_(bootstrap_servers=f"127.0.0.1:{port}")
        with pytest.raises(KafkaError):
            KafkaAdminClient(bootstrap_servers=by_ip.bootstrap_servers, request_timeout_ms=3000,
                             **client_kwargs(by_ip)).close()
        unchecked = by_ip.with_(ssl_check_hostname=False)
        KafkaAdminClient(bootstrap_servers=unchecked.bootstrap_servers, **client_kwargs(unchecked)).close()
        # A client that does not trust the CA cannot connect at all.
        with pytest.raises(KafkaError):
            KafkaAdminClient(bootstrap_servers=f"localhost:{port}", request_timeout_ms=3000,
                             **client_kwargs(settings.with_(ssl_ca_file=None))).close()


def test_sasl_reaches_the_faust_app() -> None:
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from pipeline.app import faust_config

    credentials = faust_config(SASL)["broker_credentials"]
    assert credentials is faust_credentials(SASL) or credentials is not None
    auth = credentials_to_aiokafka_auth(credentials)
    assert auth == {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
                    "sasl_plain_username": "svc-lifecycle", "sasl_plain_password": "s3cret", "ssl_context": None}


def test_sasl_ssl_reaches_the_faust_app_with_tls(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    s = SASL.with_(security_protocol="SASL_SSL", sasl_mechanism="PLAIN", ssl_ca_file=certs.ca)
    credentials = faust_credentials(s)
    assert (credentials.protocol.value, credentials.mechanism.value) == ("SASL_SSL", "PLAIN")
    assert credentials.ssl_context.check_hostname


async def test_sasl_reaches_aiokafka_clients() -> None:
    producer = AIOKafkaProducer(bootstrap_servers=SASL.bootstrap_servers, **client_kwargs(SASL))
    client = producer.client
    assert (client._security_protocol, client._sasl_mechanism) == ("SASL_PLAINTEXT", "SCRAM-SHA-512")
    assert (client._sasl_plain_username, client._sasl_plain_password) == ("svc-lifecycle", "s3cret")


def test_sasl_reaches_kafka_python_clients() -> None:
    consumer = KafkaConsumer(bootstrap_servers=SASL.bootstrap_servers, api_version=(2, 8), **client_kwargs(SASL))
    try:
        config = consumer.config
        assert (config["security_protocol"], config["sasl_mechanism"]) == ("SASL_PLAINTEXT", "SCRAM-SHA-512")
        assert (config["sasl_plain_username"], config["sasl_plain_password"]) == ("svc-lifecycle", "s3cret")
    finally:
        consumer.close()


def test_the_environment_configures_clients_without_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SASL.to_env().items():
        monkeypatch.setenv(name, value)
    assert client_kwargs() == client_kwargs(SASL)


KAFKA_CLIENTS = {"KafkaProducer", "KafkaConsumer", "KafkaAdminClient", "AIOKafkaProducer", "AIOKafkaConsumer",
                 "AIOKafkaAdminClient"}


def test_every_client_the_project_creates_gets_the_security_kwargs() -> None:
    """Every construction of a Kafka client in the project passes ``**client_kwargs(...)`` (or its
    options, built with it); a new client without it would connect in plaintext."""
    missing = []
    for path in [*ROOT.joinpath("pipeline").rglob("*.py"), *ROOT.joinpath("connectors").rglob("*.py")]:
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in KAFKA_CLIENTS:
                spread = [ast.unparse(k.value) for k in node.keywords if k.arg is None]
                if not any("client_kwargs(" in s for s in spread) and not (
                        spread and "client_kwargs(" in source):  # options assembled with it (RecordSink)
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert missing == []
