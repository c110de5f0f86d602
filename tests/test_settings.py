"""The settings model: one definition per variable, typed, failing early by name, secrets masked."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pipeline.settings import ConfigError, Settings


def clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in Settings.env_names()}
    return env | values


def lifecycle(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], env=clean_env(**env),
                          capture_output=True, text=True, timeout=60)


def test_from_env_reads_types_and_the_vendors_own_names(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.env_names():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LIFECYCLE_PARTITIONS", "3")
    monkeypatch.setenv("LIFECYCLE_SINK_ENABLED", "0")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", " k1:9092,k2:9092 ")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_x")
    monkeypatch.setenv("LIFECYCLE_WEB_HOST", "")  # empty means the default
    s = Settings.from_env()
    assert (s.partitions, s.sink_enabled, s.bootstrap_servers) == (3, False, "k1:9092,k2:9092")
    assert s.web_host == "127.0.0.1"
    assert s.webhook_secret("stripe").get_secret_value() == "whsec_x"
    assert "whsec_x" not in repr(s) and "whsec_x" not in str(s.describe())


def test_constructor_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFECYCLE_PARTITIONS", "9")
    assert Settings().partitions == 4
    assert Settings.from_env().partitions == 9


@pytest.mark.parametrize(("name", "value", "says"), [
    ("LIFECYCLE_PARTITIONS", "four", "LIFECYCLE_PARTITIONS='four': Input should be a valid integer"),
    ("LIFECYCLE_PARTITIONS", "0", "LIFECYCLE_PARTITIONS='0': Input should be greater than or equal to 1"),
    ("LIFECYCLE_SINK_ENABLED", "maybe", "LIFECYCLE_SINK_ENABLED='maybe': Input should be a valid boolean"),
    ("KAFKA_SECURITY_PROTOCOL", "TLS", "KAFKA_SECURITY_PROTOCOL='TLS': Input should be 'PLAINTEXT'"),
    ("LIFECYCLE_FROZEN_NOW", "yesterday", "LIFECYCLE_FROZEN_NOW='yesterday': Invalid isoformat string"),
])
def test_a_bad_value_fails_naming_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str,
                                                says: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as exc:
        Settings.from_env()
    assert says in str(exc.value)


def test_sasl_without_credentials_fails_and_never_shows_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "hunter2")
    monkeypatch.delenv("KAFKA_SASL_USERNAME", raising=False)
    with pytest.raises(ConfigError) as exc:
        Settings.from_env()
    assert "SASL_SSL needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD" in str(exc.value)
    assert "hunter2" not in str(exc.value)


def test_with_validates_and_to_env_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(bootstrap_servers="b:1", partitions=2, sasl_password="pw", frozen_now="2026-01-01T00:00:00Z")
    with pytest.raises(ValueError):
        s.with_(partitions=0)
    for name in Settings.env_names():
        monkeypatch.delenv(name, raising=False)
    for name, value in s.with_(partitions=5).to_env().items():
        monkeypatch.setenv(name, value)
    assert Settings.from_env() == s.with_(partitions=5)


def test_cli_stops_at_start_on_a_bad_value() -> None:
    out = lifecycle("journey", "check", LIFECYCLE_WEB_PORT="http")
    assert out.returncode == 2
    assert "LIFECYCLE_WEB_PORT='http'" in out.stderr


def test_config_show_prints_effective_values_with_secrets_masked() -> None:
    out = lifecycle("config", "show", LIFECYCLE_PARTITIONS="6", KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
                    KAFKA_SASL_USERNAME="svc", KAFKA_SASL_PASSWORD="hunter2", ZENDESK_OAUTH_TOKEN="zt-123")
    assert out.returncode == 0, out.stderr
    lines = dict(line.split("=", 1) for line in out.stdout.splitlines())
    assert set(lines) == set(Settings.env_names())
    assert lines["LIFECYCLE_PARTITIONS"] == "6" and lines["KAFKA_SASL_USERNAME"] == "svc"
    assert lines["LIFECYCLE_APP_ID"] == "lifecycle"  # defaults shown too
    assert lines["KAFKA_SASL_PASSWORD"] == lines["ZENDESK_OAUTH_TOKEN"] == "********"
    assert lines["STRIPE_WEBHOOK_SECRET"] == ""  # unset secrets show as unset
    assert "hunter2" not in out.stdout and "zt-123" not in out.stdout


def test_vendor_variables_are_the_settings_and_cover_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each vendor's secret, API token and API root is a settings field (its variable defined there
    once); the vendor descriptors hold no variable names, and every registered vendor has its fields."""
    from connectors.enrich import Enricher
    from connectors.registry import VENDORS
    from pipeline.settings import API_BASE_FIELDS, API_TOKEN_FIELDS, WEBHOOK_SECRET_FIELDS

    names = {v.name for v in VENDORS}
    assert set(WEBHOOK_SECRET_FIELDS) == set(API_TOKEN_FIELDS) == names
    assert set(API_BASE_FIELDS) == {v.name for v in VENDORS if v.enrichment is not None}
    for field in [*WEBHOOK_SECRET_FIELDS.values(), *API_TOKEN_FIELDS.values(), *API_BASE_FIELDS.values()]:
        assert field in Settings.model_fields
    assert not any(f.endswith("_env") for v in VENDORS for f in vars(v))

    for name in Settings.env_names():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ZENDESK_API_BASE_URL", "https://acme.zendesk.com")
    monkeypatch.setenv("ZENDESK_OAUTH_TOKEN", "tok")
    monkeypatch.setenv("LIFECYCLE_ENRICH_ATTEMPTS", "2")
    apis = Enricher.from_env(Settings.from_env()).apis
    assert list(apis) == ["zendesk"]
    assert (apis["zendesk"].base_url, apis["zendesk"].token, apis["zendesk"].max_attempts) == \
        ("https://acme.zendesk.com", "tok", 2)


def test_a_namespace_names_the_app_too_unless_an_app_id_is_given(monkeypatch) -> None:
    """Two deployments on one cluster need their own consumer group and changelogs, which Faust
    names after the app id: a namespace alone must not leave both on the default 'lifecycle'."""
    assert Settings().app_id == "lifecycle"
    assert Settings(topic_namespace="staging").app_id == "staging.lifecycle"
    assert Settings(topic_namespace="staging", app_id="mine").app_id == "mine"
    monkeypatch.setenv("LIFECYCLE_TOPIC_NAMESPACE", "prod")
    assert Settings.from_env().app_id == "prod.lifecycle"
    monkeypatch.setenv("LIFECYCLE_APP_ID", "explicit")
    assert Settings.from_env().app_id == "explicit"
