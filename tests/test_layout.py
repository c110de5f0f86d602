"""Item 8 of issue 11: the commands that drive the pipeline from outside live in ``pipeline.drive``;
nothing the production commands load imports them (or the test harness)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = [p for d in ("pipeline", "connectors", "schemas") for p in (ROOT / d).rglob("*.py")
              if "drive" not in p.relative_to(ROOT).parts and p.name != "cli.py"]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_production_modules_do_not_import_the_drivers_or_tests() -> None:
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p)
                                                  if m.startswith(("pipeline.drive", "tests")))
                 for p in PRODUCTION}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_identity_show_loads_no_driver() -> None:
    """Load everything ``lifecycle identity show`` needs and look at what got imported."""
    code = ("import sys, pipeline.cli, pipeline.topic_reads, pipeline.core.identity, pipeline.journey; "
            "print(sorted(m for m in sys.modules if m.startswith(('pipeline.drive', 'pipeline.sample', 'tests'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_identity_show_imports_no_driver() -> None:
    tree = ast.parse((ROOT / "pipeline" / "cli.py").read_text())
    show = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "identity_show")
    imports = {n.module for n in ast.walk(show) if isinstance(n, ast.ImportFrom)}
    assert "pipeline.topic_reads" in imports
    assert not {m for m in imports if m and m.startswith(("pipeline.drive", "tests"))}


CORE = ROOT / "pipeline" / "core"
JOURNEY_CONFIG = ("journey", "sla_rules", "handoff_rules", "calendar", "predicates", "durations")


def _core_imports(name: str) -> set[str]:
    return {m for m in imported_modules(CORE / f"{name}.py") if m.startswith("pipeline.")}


def test_the_journey_config_is_a_leaf_of_the_core() -> None:
    """Issue 9, item 7: the journey's models import only other configuration; the engine and the
    trackers import them (no ``TYPE_CHECKING`` circle), and no core module reads YAML."""
    config = {f"pipeline.core.{n}" for n in JOURNEY_CONFIG}
    outside = {n: sorted(_core_imports(n) - config) for n in JOURNEY_CONFIG}
    assert {n: m for n, m in outside.items() if m} == {}
    loaders = sorted(p.name for p in CORE.glob("*.py") if "pipeline.journey" in imported_modules(p)
                     or "yaml" in imported_modules(p))
    assert loaders == []
    for tracker in ("sla", "handoffs", "engine", "state"):
        assert "pipeline.core.journey" in _core_imports(tracker), tracker


def test_the_core_import_graph_has_no_cycle() -> None:
    """Issue 9, item 7: no circle held together by ``TYPE_CHECKING`` guards. The trackers type
    the account they read as ``core.visits.AccountView``, not ``core.state.AccountState`` (which
    holds their states), so every core module, type-only imports included, sits in a DAG."""
    graph = {p.stem: {m.rsplit(".", 1)[1] for m in _core_imports(p.stem) if m.startswith("pipeline.core.")}
             for p in CORE.glob("*.py") if p.stem != "__init__"}
    assert sorted(p.name for p in CORE.glob("*.py") if "TYPE_CHECKING" in p.read_text()) == []
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, f"import cycle: {' -> '.join((*path, node))}"
        if node in done:
            return
        for dep in sorted(graph.get(node, ())):
            visit(dep, (*path, node))
        done.add(node)

    for module in sorted(graph):
        visit(module, ())
    assert {"state", "sla", "handoffs", "visits"} <= done
