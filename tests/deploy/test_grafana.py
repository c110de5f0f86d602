"""The Grafana dashboard and provisioning: valid JSON, valid PromQL over real metric names."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.deploy.conftest import (
    COMPOSE,
    DASHBOARD,
    DEPLOY,
    PROMETHEUS_BUILTIN,
    dashboard,
    exposed_metric_names,
    grafana_to_promql,
    load_yaml,
    selectors,
)

PROVISIONING = DEPLOY / "grafana" / "provisioning"


def panels() -> list[dict]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def targets() -> list[tuple[str, str]]:
    return [(f"{p['id']}:{t['refId']} {p['title']}", t["expr"]) for p in panels() for t in p["targets"]]


def test_dashboard_structure() -> None:
    dash = dashboard()
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 36
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for p in dash["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, f"panel {p['title']!r} leaves the 24-column grid"
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"panel {p['title']!r} overlaps another"
        cells |= mine
    for p in panels():
        assert p["targets"], f"panel {p['title']!r} has no query"
        assert len({t["refId"] for t in p["targets"]}) == len(p["targets"])


def test_dashboard_covers_what_operators_need() -> None:
    exprs = " ".join(e for _, e in targets())
    for metric in ("lifecycle_events_ingested_total", "lifecycle_consumer_lag",
                   "lifecycle_processing_latency_seconds_bucket", "lifecycle_sla_breaches_total",
                   "lifecycle_dead_letters_total", "lifecycle_stage_transitions_total"):
        assert metric in exprs, f"no panel shows {metric}"
    assert any("from_stage, to_stage" in e for _, e in targets()), "no transitions-per-stage-pair panel"


@pytest.mark.parametrize("name, expr", targets(), ids=[n for n, _ in targets()])
def test_panel_queries_parse_and_use_real_metrics(name: str, expr: str) -> None:
    names = selectors(grafana_to_promql(expr))
    assert names, f"{name}: selects no series"
    unknown = names - exposed_metric_names() - PROMETHEUS_BUILTIN
    assert not unknown, f"{name}: metrics not in pipeline/metrics.py: {sorted(unknown)}"


def test_selector_check_can_fail() -> None:
    assert selectors("rate(lifecycle_transitions_total[5m])") - exposed_metric_names() == {"lifecycle_transitions_total"}


def test_promtool_parses_every_panel_query(promtool: str, tmp_path) -> None:
    # promtool has no "check expression"; a recording rule per query gets the same parser.
    rules = [{"record": f"dashboard:panel_{i}", "expr": grafana_to_promql(expr)} for i, (_, expr) in enumerate(targets())]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_datasource_and_dashboard_provisioning_fit_together() -> None:
    datasources = load_yaml(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    uids = {d["uid"] for d in datasources if d["type"] == "prometheus"}
    for p in panels():
        assert p["datasource"]["uid"] in uids, f"panel {p['title']!r} uses an unprovisioned datasource"
    assert datasources[0]["url"] == "http://prometheus:9090"

    provider = load_yaml(PROVISIONING / "dashboards" / "lifecycle.yml")["providers"][0]
    grafana = load_yaml(COMPOSE)["services"]["grafana"]
    mounts = dict(v.removesuffix(":ro").split(":", 1)[::-1] for v in grafana["volumes"] if v.startswith("./"))
    assert mounts[provider["options"]["path"]] == "./" + str(DASHBOARD.parent.relative_to(COMPOSE.parent))
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
