"""Kubernetes manifests against the official API JSON schemas (kubernetes-validate,
offline, strict: unknown fields fail), plus the wiring between them."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest
import yaml

from pipeline.journey import parse_journey
from tests.deploy.conftest import K8S, k8s_documents
from tests.deploy.test_env_example import documented_variables

K8S_VERSION = "1.30.0"
DOCS = k8s_documents()


def by_kind(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for _, d in DOCS if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


@pytest.mark.parametrize("doc", [d for _, d in DOCS], ids=[f"{p.name}:{d['kind']}/{d['metadata']['name']}" for p, d in DOCS])
def test_manifest_matches_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    if doc["kind"] != "Namespace":
        assert doc["metadata"]["namespace"] == "lifecycle"


def test_validation_rejects_a_misspelt_field() -> None:
    broken = copy.deepcopy(by_kind("StatefulSet"))
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_required_kinds() -> None:
    kinds = {d["kind"] for _, d in DOCS}
    assert {"Namespace", "ConfigMap", "Secret", "StatefulSet", "Deployment", "Service", "PodDisruptionBudget"} <= kinds


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("kind, name, command, port", [
    ("StatefulSet", "lifecycle-worker", ["lifecycle", "worker"], 6066),
    ("Deployment", "lifecycle-webhook", ["lifecycle", "connect", "webhook"], 8080),
])
def test_workload_probes_ports_and_scrape_annotations(kind: str, name: str, command: list[str], port: int) -> None:
    workload = by_kind(kind, name)
    c = _container(workload)
    assert c["command"][:len(command)] == command
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["http"] == port
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    notes = workload["spec"]["template"]["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true" and int(notes["prometheus.io/port"]) == port
    assert notes["prometheus.io/path"] == "/metrics"
    labels = workload["spec"]["template"]["metadata"]["labels"]
    assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert workload["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_services_and_disruption_budgets_select_their_pods() -> None:
    pods = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
            for _, d in DOCS if d["kind"] in ("StatefulSet", "Deployment")}
    for _, d in DOCS:
        if d["kind"] == "Service":
            selector = d["spec"]["selector"]
        elif d["kind"] == "PodDisruptionBudget":
            selector = d["spec"]["selector"]["matchLabels"]
        else:
            continue
        matched = [n for n, labels in pods.items() if selector.items() <= labels.items()]
        assert len(matched) == 1, f"{d['kind']} {d['metadata']['name']} selects {matched}"
    assert by_kind("StatefulSet")["spec"]["serviceName"] == "lifecycle-worker"
    assert by_kind("Service", "lifecycle-worker")["spec"]["clusterIP"] == "None"


def test_configmap_journey_is_valid_and_mounted_where_settings_say() -> None:
    config = by_kind("ConfigMap", "lifecycle-config")["data"]
    journey = parse_journey(yaml.safe_load(config["journey.yaml"]), "configmap journey.yaml")
    assert {s.id for s in journey.path} >= {"MQL", "SQL", "closed-won", "onboarding"}
    worker = by_kind("StatefulSet")
    mount = next(m for m in _container(worker)["volumeMounts"] if m["name"] == "journey")
    volume = next(v for v in worker["spec"]["template"]["spec"]["volumes"] if v["name"] == "journey")
    item = volume["configMap"]["items"][0]
    assert item["key"] == "journey.yaml"
    assert config["LIFECYCLE_JOURNEY"] == f"{mount['mountPath']}/{item['path']}"
    assert config["LIFECYCLE_WEB_PORT"] == str(_container(worker)["ports"][0]["containerPort"])
    assert config["LIFECYCLE_WEB_HOST"] == "0.0.0.0"


def test_settings_and_secrets_are_documented_variables() -> None:
    documented = documented_variables()
    config = by_kind("ConfigMap", "lifecycle-config")["data"]
    assert set(config) - {"journey.yaml"} <= documented
    secret = by_kind("Secret", "lifecycle-secrets")["stringData"]
    assert set(secret) <= documented
    for _, d in DOCS:
        if d["kind"] in ("StatefulSet", "Deployment", "Job"):
            for env in _container(d).get("env", []):
                assert env["name"] in documented, f"{d['metadata']['name']}: undocumented {env['name']}"
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "lifecycle-secrets" and ref["key"] in secret


def test_manifests_directory_has_only_yaml_documents() -> None:
    assert {p.suffix for p in K8S.iterdir()} == {".yaml"}
