"""Topic names are a function of the namespace (``LIFECYCLE_TOPIC_NAMESPACE``), in one place
(``schemas.topics.Topics``); production code takes a deployment's ``Topics``, never the
module-level names of the empty namespace."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pipeline.settings import ConfigError, Settings
from pipeline.tail import resolve_topic
from schemas.events import SourceKind
from schemas.topics import DEFAULT, Topics, all_topic_names

ROOT = Path(__file__).resolve().parent.parent
MODULE_NAMES = {"RAW", "RAW_CRM", "RAW_BILLING", "RAW_PRODUCT", "RAW_SUPPORT", "ACCOUNT_EVENTS", "STAGE_TRANSITIONS",
                "HANDOFFS", "SLA_BREACHES", "DEAD_LETTER", "IDENTITY", "PUBLIC", "all_topic_names"}


def test_the_empty_namespace_keeps_todays_names() -> None:
    assert Settings().topics == DEFAULT
    assert all_topic_names() == DEFAULT.all_names() == [
        "lifecycle.raw.crm", "lifecycle.raw.billing", "lifecycle.raw.product", "lifecycle.raw.support",
        "lifecycle.stage-transitions", "lifecycle.handoffs", "lifecycle.sla-breaches", "lifecycle.identity",
        "lifecycle.dead-letter", "lifecycle.account-events"]


def test_a_namespace_prefixes_every_topic() -> None:
    topics = Settings(topic_namespace="acme.staging").topics
    assert all(name == "acme.staging." + plain for name, plain in zip(topics.all_names(), DEFAULT.all_names()))
    assert topics.raw[SourceKind.BILLING] == "acme.staging.lifecycle.raw.billing"
    assert topics.account_events == "acme.staging.lifecycle.account-events"
    parsed = topics.parsed(2)
    assert parsed == {f"acme.staging.lifecycle.parsed.{kind.value}.{p}": (raw, p)
                      for kind, raw in topics.raw.items() for p in (0, 1)}
    assert set(topics.single_partition(2)) == {*parsed, topics.identity, topics.dead_letter}
    # the ingest step tells a raw topic's source from its last dot-separated part
    assert topics.raw[SourceKind.SUPPORT].rsplit(".", 1)[-1] == "support"


def test_tail_resolves_short_names_in_its_namespace() -> None:
    staging = Topics("staging")
    assert resolve_topic("stage-transitions", staging) == "staging.lifecycle.stage-transitions"
    assert resolve_topic("raw.crm", staging) == "staging.lifecycle.raw.crm"
    assert resolve_topic("staging.lifecycle.handoffs", staging) == "staging.lifecycle.handoffs"
    with pytest.raises(ValueError, match="unknown topic 'lifecycle.handoffs'.*namespace 'staging'"):
        resolve_topic("lifecycle.handoffs", staging)  # another deployment's topic
    assert resolve_topic("handoffs") == "lifecycle.handoffs"


@pytest.mark.parametrize("bad", ["staging.", ".staging", "a..b", "stag ing", "prod/eu"])
def test_a_bad_namespace_fails_at_start_by_name(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFECYCLE_TOPIC_NAMESPACE", bad)
    with pytest.raises(ConfigError, match="LIFECYCLE_TOPIC_NAMESPACE.*dot-separated words"):
        Settings.from_env()


def test_the_namespace_reaches_child_processes() -> None:
    settings = Settings(topic_namespace="whatif-1")
    assert settings.to_env()["LIFECYCLE_TOPIC_NAMESPACE"] == "whatif-1"


def test_production_code_takes_a_deployments_topics() -> None:
    """``schemas.topics.RAW`` & co. are the empty namespace's names: a module serving a deployment
    that used them would read or write another deployment's topics."""
    offenders = []
    for path in [p for d in ("pipeline", "connectors", "schemas") for p in (ROOT / d).rglob("*.py")]:
        if path == ROOT / "schemas" / "topics.py":
            continue
        tree = ast.parse(path.read_text())
        aliases = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                   and node.module == "schemas" for a in node.names if a.name == "topics"}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "schemas.topics":
                offenders += [f"{path.relative_to(ROOT)}: {a.name}" for a in node.names if a.name in MODULE_NAMES]
            elif (isinstance(node, ast.Attribute) and node.attr in MODULE_NAMES and isinstance(node.value, ast.Name)
                  and node.value.id in aliases):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value.id}.{node.attr}")
    assert offenders == []


def test_parsed_topics_are_named_once_and_recognised_in_any_namespace() -> None:
    for topics in (DEFAULT, Topics("acme.staging")):
        names = topics.parsed(2)
        assert len(names) == 8 and all(topics.is_parsed(n) for n in names)
        assert not any(topics.is_parsed(n) for n in topics.all_names())
        assert topics.parsed_pattern == topics.name("lifecycle.parsed.<source>.<partition>")
    assert not DEFAULT.is_parsed("acme.staging.lifecycle.parsed.crm.0")
