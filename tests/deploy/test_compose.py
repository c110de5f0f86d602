"""docker-compose.yml against the Compose Specification's JSON Schema, plus its wiring.

The schema is vendored (tests/deploy/compose-spec.schema.json, Apache-2.0, see
tests/deploy/VENDORED.md); no Docker engine is needed.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.deploy.conftest import COMPOSE, DOCKERFILE, PROMETHEUS, ROOT, load_yaml
from tests.deploy.test_env_example import documented_variables

SCHEMA = json.loads((Path(__file__).parent / "compose-spec.schema.json").read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


def errors(doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def test_compose_file_matches_the_compose_spec(compose: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert errors(compose) == []


def test_schema_rejects_a_misspelt_key(compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["worker"]["depend_on"] = ["kafka"]
    assert any("depend_on" in e for e in errors(broken))


def test_services(compose: dict[str, Any]) -> None:
    s = compose["services"]
    assert {"kafka", "topics", "worker", "webhook", "postgres", "prometheus", "grafana"} <= set(s)
    assert s["kafka"]["image"].startswith("apache/kafka:")
    kafka_env = s["kafka"]["environment"]
    assert "controller" in kafka_env["KAFKA_PROCESS_ROLES"] and "KAFKA_CONTROLLER_QUORUM_VOTERS" in kafka_env
    assert not any("zookeeper" in name.lower() for name in s), "KRaft mode: no ZooKeeper"
    assert s["topics"]["command"] == ["lifecycle", "topics", "create"]
    assert s["worker"]["command"] == ["lifecycle", "worker"]
    assert s["webhook"]["command"][:3] == ["lifecycle", "connect", "webhook"]
    assert s["worker"]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert s["worker"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("topics", "worker", "webhook"):
        assert s[name]["build"]["dockerfile"] == DOCKERFILE.name


def test_bind_mounts_exist_in_the_repository(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in compose["volumes"], f"{name} uses undeclared volume {source}"


def test_prometheus_scrapes_the_compose_services(compose: dict[str, Any]) -> None:
    jobs = {j["job_name"]: j for j in load_yaml(PROMETHEUS)["scrape_configs"]}
    worker_sd = jobs["lifecycle-worker"]["dns_sd_configs"][0]
    env = compose["services"]["worker"]["environment"]
    assert worker_sd["names"] == ["worker"] and str(worker_sd["port"]) == env["LIFECYCLE_WEB_PORT"]
    webhook_port = compose["services"]["webhook"]["command"][-1]
    assert jobs["lifecycle-webhook"]["static_configs"][0]["targets"] == [f"webhook:{webhook_port}"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in compose["services"]["prometheus"]["volumes"]


def test_app_environment_uses_documented_variables(compose: dict[str, Any]) -> None:
    documented = documented_variables()
    for name in ("topics", "worker", "webhook"):
        assert set(compose["services"][name]["environment"]) <= documented, name
    webhook_env = compose["services"]["webhook"]["environment"]
    assert {"STRIPE_WEBHOOK_SECRET", "HUBSPOT_CLIENT_SECRET"} <= set(webhook_env)
    assert "STRIPE_WEBHOOK_SECRET" not in compose["services"]["worker"]["environment"]
