"""Every YAML deploy file parses and passes yamllint (duplicate keys, indentation, syntax)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from tests.deploy.conftest import ROOT, yaml_files

LINT = YamlLintConfig("{extends: default, rules: {line-length: {max: 160}, document-start: disable}}")
FILES = [*yaml_files(), ROOT / "tests" / "deploy" / "alerts_test.yml"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_parses_and_lints_clean(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs, f"{path} holds no YAML document"
    problems = [f"{path.name}:{p.line}:{p.column} {p.level} {p.desc} ({p.rule})"
                for p in linter.run(path.read_text(), LINT, str(path))]
    assert problems == []


def test_linter_catches_a_duplicate_key() -> None:
    problems = list(linter.run("a: 1\nb: 2\na: 3\n", LINT))
    assert any(p.rule == "key-duplicates" for p in problems)


def test_the_expected_files_exist() -> None:
    expected = {
        "deploy/prometheus/prometheus.yml", "deploy/prometheus/alerts.yml",
        "deploy/grafana/provisioning/datasources/prometheus.yml",
        "deploy/grafana/provisioning/dashboards/lifecycle.yml", "docker-compose.yml",
    }
    assert expected <= {str(p.relative_to(ROOT)) for p in yaml_files()}
