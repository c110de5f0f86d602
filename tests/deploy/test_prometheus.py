"""Prometheus config and alert rules: promtool checks them, unit-tests the alerts,
and every metric they name exists in pipeline/metrics.py."""

from __future__ import annotations

import subprocess

import pytest

from tests.deploy.conftest import (
    ALERTS,
    PROMETHEUS,
    PROMETHEUS_BUILTIN,
    ROOT,
    exposed_metric_names,
    load_yaml,
    selectors,
)

ALERT_TESTS = ROOT / "tests" / "deploy" / "alerts_test.yml"
REQUIRED_ALERTS = {
    "LifecycleConsumerLagGrowing", "LifecycleDeadLetterRateHigh", "LifecycleSlaBreachSpike", "LifecycleWorkerDown",
    "LifecycleConnectorStale", "LifecycleConnectorDown", "LifecycleProcessingLatencyHigh",
}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=ROOT)


def rules() -> list[dict]:
    return [r for g in load_yaml(ALERTS)["groups"] for r in g["rules"]]


def test_promtool_checks_config_and_rules(promtool: str) -> None:
    config = run(promtool, "check", "config", str(PROMETHEUS))
    assert config.returncode == 0, config.stdout + config.stderr
    checked = run(promtool, "check", "rules", str(ALERTS))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout


def test_alerts_fire_as_specified(promtool: str) -> None:
    result = run(promtool, "test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rejects_a_broken_rule(promtool: str, tmp_path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: sum(rate(lifecycle_x[5m])\n")
    assert run(promtool, "check", "rules", str(bad)).returncode != 0


def test_required_alerts_are_there_with_severity_and_summary() -> None:
    by_name = {r["alert"]: r for r in rules()}
    assert REQUIRED_ALERTS <= set(by_name)
    for name, rule in by_name.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
    tested = load_yaml(ALERT_TESTS)
    fired = {t["alertname"] for case in tested["tests"] for t in case["alert_rule_test"] if t.get("exp_alerts")}
    assert fired == set(by_name), "every alert needs a promtool unit test that makes it fire"


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r["alert"])
def test_alert_metrics_exist(rule: dict) -> None:
    names = selectors(rule["expr"])
    assert names, "an alert must select at least one series"
    unknown = names - exposed_metric_names() - PROMETHEUS_BUILTIN
    assert not unknown, f"{rule['alert']} uses metrics that pipeline/metrics.py does not expose: {sorted(unknown)}"


def test_scrape_jobs_cover_worker_and_webhook() -> None:
    config = load_yaml(PROMETHEUS)
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert {"lifecycle-worker", "lifecycle-webhook"} <= set(jobs)
    assert config["rule_files"] == ["alerts.yml"]
    job_filters = {m for r in rules() for m in ("lifecycle-worker", "lifecycle-webhook") if m in r["expr"]}
    assert job_filters <= set(jobs), "alerts filter on job names that are not scraped"
