"""deploy/config/lifecycle.env.example lists exactly the settings model's variables, and its
values are valid settings; no module but ``pipeline.settings`` reads the environment."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pipeline.settings import Settings
from tests.deploy.conftest import ENV_EXAMPLE

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {
    "KAFKA_BOOTSTRAP_SERVERS", "LIFECYCLE_DATABASE_URL", "LIFECYCLE_JOURNEY", "LIFECYCLE_WEB_PORT",
    "STRIPE_WEBHOOK_SECRET", "HUBSPOT_CLIENT_SECRET", "ZENDESK_WEBHOOK_SECRET", "SEGMENT_SHARED_SECRET",
    "SALESFORCE_SHARED_SECRET", "KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_PASSWORD",
}


def documented() -> dict[str, str]:
    values = {}
    for n, line in enumerate(ENV_EXAMPLE.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep and name.isupper() and " " not in name, f"{ENV_EXAMPLE.name}:{n}: not NAME=value: {line!r}"
        assert name not in values, f"{ENV_EXAMPLE.name}:{n}: {name} twice"
        values[name] = value
    return values


def documented_variables() -> set[str]:
    return set(documented())


def test_the_example_lists_exactly_the_models_variables() -> None:
    assert REQUIRED <= set(Settings.env_names())
    assert set(documented()) == set(Settings.env_names())


def test_the_examples_values_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.env_names():
        monkeypatch.delenv(name, raising=False)
    for name, value in documented().items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    assert settings.bootstrap_servers == "kafka:9092"
    assert settings.database_url and settings.database_url.startswith("postgresql")


def test_no_module_but_settings_reads_the_environment() -> None:
    """``os.environ``/``os.getenv`` reads and click ``envvar=`` options outside the model would be
    variables defined twice (or undocumented); passing the environment to a child is fine."""
    offenders = []
    for path in [*ROOT.joinpath("pipeline").rglob("*.py"), *ROOT.joinpath("connectors").rglob("*.py")]:
        if path.name == "settings.py" and path.parent.name == "pipeline":
            continue
        if path == ROOT / "pipeline" / "__init__.py":   # LIFECYCLE_COMPILED, before the modules it loads
            assert "LIFECYCLE_COMPILED" in path.read_text() and "compiled" in Settings.model_fields
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            read = (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and (node.func.attr == "getenv" or (node.func.attr == "get" and ast.unparse(node.func.value) == "os.environ")))
            read |= isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ"
            read |= isinstance(node, ast.keyword) and node.arg == "envvar"
            # the environment kept for reading later (``env = os.environ if ... else ...``)
            read |= isinstance(node, (ast.Assign, ast.IfExp, ast.BoolOp)) and "os.environ" in ast.unparse(node) \
                and not any(isinstance(n, ast.BinOp) or (isinstance(n, ast.Attribute) and n.attr == "copy")
                            for n in ast.walk(node))
            if read:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
