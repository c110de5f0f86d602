"""The per-record modules compiled from their unchanged source (pipeline/compiled.py): used when
built and current, never when their source changed, and giving the same outputs as the source."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from pipeline import compiled

BUILT = (compiled.COMPILED_DIR / compiled.MANIFEST).exists()


def test_make_install_builds_them_where_a_compiler_is():
    if not BUILT and not os.environ.get("CI"):
        pytest.skip("no build (lifecycle compile)")
    assert BUILT, "make install compiles the per-record modules; CI has a compiler"
    manifest = json.loads((compiled.COMPILED_DIR / compiled.MANIFEST).read_text())
    assert sorted(manifest) == sorted(compiled.MODULES)


@pytest.mark.skipif(not BUILT, reason="no build (lifecycle compile)")
def test_the_built_modules_are_the_ones_imported():
    code = ("import pipeline, importlib; from pipeline.compiled import MODULES, compiled, enabled; "
            "assert enabled() == sorted(m for m in MODULES if compiled(importlib.import_module(m))); "
            "print(sum(compiled(importlib.import_module(m)) for m in MODULES))")
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "LIFECYCLE_COMPILED": "0"})
    assert int(on.stdout) == len(compiled.MODULES) and int(off.stdout) == 0


REPLAY = textwrap.dedent("""
    import hashlib
    from datetime import timedelta
    from pipeline.drive.bench import encode, pure_sources, sample
    from pipeline.journey import load_journey
    from pipeline.offline import OfflinePipeline
    from schemas.base import dumps
    records, _ = sample(40, 5, None)
    now = max(r.received_at for r in records) + timedelta(days=1)
    out = OfflinePipeline([load_journey(None)], now=now).run(pure_sources(encode(records, 4)))[0]
    h = hashlib.sha256()
    for x in [*out.transitions, *out.handoffs, *out.breaches, *out.merges, *(out.accounts[k] for k in sorted(out.accounts))]:
        h.update(dumps(x))
    print(len(out.transitions), len(out.breaches), h.hexdigest())
""")


@pytest.mark.skipif(not BUILT, reason="no build (lifecycle compile)")
def test_compiled_and_source_publish_the_same_bytes():
    on = subprocess.run([sys.executable, "-c", REPLAY], capture_output=True, text=True, check=True)
    off = subprocess.run([sys.executable, "-c", REPLAY], capture_output=True, text=True, check=True,
                         env={**os.environ, "LIFECYCLE_COMPILED": "0"})
    transitions = int(on.stdout.split()[0])
    assert transitions > 20 and on.stdout == off.stdout


def test_a_module_edited_since_its_build_is_imported_from_its_source(tmp_path):
    pytest.importorskip("Cython")
    package = tmp_path / "src" / "lcprobe"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "mod.py").write_text("def answer():\n    return 1\n")
    dest = tmp_path / "compiled"
    manifest = compiled.build(dest, ["lcprobe.mod"], root=tmp_path / "src")
    assert list(manifest) == ["lcprobe.mod"]
    check = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path / 'src')!r})
        from pathlib import Path
        from pipeline.compiled import compiled, enable
        print(enable(Path({str(dest)!r}), root=Path({str(tmp_path / 'src')!r})))
        import lcprobe.mod
        print(compiled(lcprobe.mod), lcprobe.mod.answer())
    """)
    env = {**os.environ, "LIFECYCLE_COMPILED": "0"}   # only the tmp build, enabled by the script
    fresh = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True, env=env)
    assert fresh.stdout.split("\n")[:2] == ["['lcprobe.mod']", "True 1"]
    (package / "mod.py").write_text("def answer():\n    return 2\n")
    edited = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True, env=env)
    assert edited.stdout.split("\n")[:2] == ["[]", "False 2"]
    assert "changed since they were compiled, so imported from source (lifecycle compile): lcprobe.mod" in edited.stderr
