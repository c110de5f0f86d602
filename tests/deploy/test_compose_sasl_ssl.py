"""docker-compose.sasl-ssl.yml: a valid Compose override whose lifecycle services get settings the
model accepts, on a SASL_SSL listener the Kafka service defines for the same user."""

from __future__ import annotations

import re
from typing import Any

import pytest

from pipeline.settings import Settings
from tests.deploy.conftest import COMPOSE, ROOT, load_yaml
from tests.deploy.test_compose import errors

OVERRIDE = ROOT / "docker-compose.sasl-ssl.yml"
APP_SERVICES = ("topics", "worker", "webhook")


def substitute(value: str) -> str:
    """Compose's ${NAME:-default} / ${NAME:?error} interpolation, with a stand-in for required ones."""
    return re.sub(r"\$\{(\w+)(?::-([^}]*)|:\?[^}]*)?\}", lambda m: m.group(2) or f"<{m.group(1)}>", value)


@pytest.fixture(scope="module")
def override() -> dict[str, Any]:
    return load_yaml(OVERRIDE)


def test_override_matches_the_compose_spec(override: dict[str, Any]) -> None:
    assert errors(override) == []


def test_lifecycle_services_get_valid_sasl_ssl_settings(override: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path) -> None:
    base = load_yaml(COMPOSE)["services"]
    kafka = {**base["kafka"]["environment"], **override["services"]["kafka"]["environment"]}
    assert "SASL_SSL://kafka:9096" in kafka["KAFKA_ADVERTISED_LISTENERS"]
    for name in APP_SERVICES:
        env = {k: substitute(str(v)) for k, v in {**base[name].get("environment", {}),
                                                  **override["services"][name]["environment"]}.items()}
        mounted = [v.split(":")[1] for v in override["services"][name]["volumes"]]
        assert env["KAFKA_SSL_CA_FILE"] in mounted
        ca = tmp_path / "ca.pem"
        ca.write_text("")
        env["KAFKA_SSL_CA_FILE"] = str(ca)  # the container's path, here
        for var in Settings.env_names():
            monkeypatch.delenv(var, raising=False)
        for var, value in env.items():
            monkeypatch.setenv(var, value)
        s = Settings.from_env()
        assert (s.security_protocol, s.bootstrap_servers) == ("SASL_SSL", "kafka:9096")
        assert f'user_{s.sasl_username}="' in kafka["KAFKA_LISTENER_NAME_SASL__SSL_PLAIN_SASL_JAAS_CONFIG"]
        assert s.sasl_mechanism in kafka["KAFKA_SASL_ENABLED_MECHANISMS"]
