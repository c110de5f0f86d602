"""The pure per-record modules compiled by Cython from their unchanged source.

The same ``.py`` files, compiled to C extension modules (as pydantic 1 shipped its own pure
Python): on the bench's records about 16% fewer instructions per record on the pure path
(``lifecycle bench --instructions``), with the same outputs. Nothing is written in Cython's
language, so the source stays the one truth and any module may be left out.

``lifecycle compile`` (run by ``make install`` and the image build) writes the
extensions under ``pipeline/_compiled/`` with a manifest of each source's digest. Cython's
``annotation_typing`` is off: an annotation does not become a C type check, so every module
behaves exactly as its source does. Importing ``pipeline`` calls ``enable``: a module whose source still has the digest it was compiled from
is loaded from its extension; one edited since is loaded from its source, with a warning, so a
stale build can never shadow a change. ``LIFECYCLE_COMPILED=0`` turns it off.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent      # where the packages live (a checkout or site-packages)
COMPILED_DIR = Path(__file__).resolve().parent / "_compiled"
MANIFEST = "manifest.json"
PROBE = "pipeline_compiled_probe"                   # one compiled function: Cython's function type

# The per-record path: parsing, the merge, identity, the account state machine and its trackers.
MODULES: tuple[str, ...] = (
    "connectors.parsing", "connectors.billing.stripe", "connectors.crm.hubspot", "connectors.crm.salesforce",
    "connectors.product.segment", "connectors.support.zendesk",
    "pipeline.ingest", "pipeline.offline",
    "pipeline.core.account", "pipeline.core.calendar", "pipeline.core.durations", "pipeline.core.engine",
    "pipeline.core.handoffs", "pipeline.core.identity", "pipeline.core.journey", "pipeline.core.merge",
    "pipeline.core.numbering", "pipeline.core.partition", "pipeline.core.predicates", "pipeline.core.sla",
    "pipeline.core.state", "pipeline.core.visits",
)


def source_of(module: str, root: Path = ROOT) -> Path:
    return root.joinpath(*module.split(".")).with_suffix(".py")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(dest: Path = COMPILED_DIR, modules: Sequence[str] = MODULES, root: Path = ROOT) -> dict[str, str]:
    """Compile ``modules`` into ``dest`` (replaced whole); returns the manifest (module → source digest)."""
    from Cython.Build import cythonize
    from setuptools import Distribution
    from setuptools.command.build_ext import build_ext

    with tempfile.TemporaryDirectory(prefix="lifecycle-cython-") as tmp:
        tree = Path(tmp)
        sources, manifest = [], {}
        for module in modules:
            src = source_of(module, root)
            parts = module.split(".")
            for depth in range(1, len(parts)):   # the packages, so each extension gets its dotted name
                init = tree.joinpath(*parts[:depth], "__init__.py")
                init.parent.mkdir(parents=True, exist_ok=True)
                init.touch()
            target = tree.joinpath(*parts).with_suffix(".py")
            shutil.copyfile(src, target)
            sources.append(str(target.relative_to(tree)))
            manifest[module] = digest(src)
        (tree / f"{PROBE}.py").write_text("def function():\n    pass\n")
        sources.append(f"{PROBE}.py")
        cwd = Path.cwd()
        try:
            os.chdir(tree)
            extensions = cythonize(sources, language_level=3, quiet=True, nthreads=os.cpu_count() or 1,
                                   compiler_directives={"binding": True, "annotation_typing": False})
            for extension in extensions:   # no debug sections: they would be most of each file
                extension.extra_compile_args += ["-g0"]
                extension.extra_link_args += ["-s"]
            dist = Distribution({"ext_modules": extensions})
            cmd = build_ext(dist)
            cmd.inplace, cmd.parallel = True, os.cpu_count() or 1
            cmd.ensure_finalized()
            cmd.run()
        finally:
            os.chdir(cwd)
        staged = Path(tempfile.mkdtemp(prefix="compiled-", dir=dest.parent))
        try:
            for built in tree.rglob("*.so"):
                if built.relative_to(tree).parts[0] == "build":   # build_ext's own copies
                    continue
                out = staged / built.relative_to(tree)
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(built, out)
            (staged / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
            shutil.rmtree(dest, ignore_errors=True)
            staged.rename(dest)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
    return manifest


class _Finder(importlib.abc.MetaPathFinder):
    """Loads a listed module from its extension while its source is the one compiled."""

    def __init__(self, extensions: dict[str, Path]) -> None:
        self.extensions = extensions

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        extension = self.extensions.get(fullname)
        if extension is None:
            return None
        return _spec(fullname, extension)


_enabled: dict[str, Path] | None = None


def enable(dest: Path = COMPILED_DIR, root: Path = ROOT) -> list[str]:
    """Load the built modules compiled from here on (idempotent); returns those that will be.
    No build, or no usable one: nothing changes and the sources are imported as always."""
    global _enabled
    if _enabled is not None:
        return sorted(_enabled)
    _enabled = {}
    manifest_path = dest / MANIFEST
    if not manifest_path.exists():
        return []
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    try:
        manifest: dict[str, str] = json.loads(manifest_path.read_text())
        probe = _load(PROBE, dest / f"{PROBE}{suffix}")
        _let_pydantic_skip(type(probe.function))
    except Exception as exc:   # a build for another Python, or a pydantic without the hook
        log.warning("compiled modules in %s not used: %s", dest, exc)
        return []
    changed = []
    for module, compiled_digest in manifest.items():
        extension = dest.joinpath(*module.split(".")).with_name(module.rsplit(".", 1)[-1] + suffix)
        source = source_of(module, root)
        if not extension.exists() or not source.exists() or module in sys.modules:
            continue
        if digest(source) != compiled_digest:
            changed.append(module)
            continue
        _enabled[module] = extension
    if changed:
        log.warning("changed since they were compiled, so imported from source (lifecycle compile): %s",
                    ", ".join(changed))
    sys.meta_path.insert(0, _Finder(_enabled))
    return sorted(_enabled)


def enabled() -> list[str]:
    """The modules this process loads compiled (none unless ``enable`` ran and found a current build)."""
    return sorted(_enabled or {})


def _spec(name: str, extension: Path) -> importlib.machinery.ModuleSpec | None:
    loader = importlib.machinery.ExtensionFileLoader(name, str(extension))
    return importlib.util.spec_from_file_location(name, extension, loader=loader)


def _load(name: str, extension: Path) -> ModuleType:
    spec = _spec(name, extension)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _let_pydantic_skip(function_type: type) -> None:
    """pydantic treats a class attribute of an unknown type as a field missing its annotation;
    a compiled method is a Cython function, so it is added to the types pydantic ignores."""
    from pydantic._internal import _model_construction

    defaults = _model_construction.default_ignored_types
    if function_type in defaults():
        return

    def ignored_types() -> tuple[type, ...]:
        return (*defaults(), function_type)

    _model_construction.default_ignored_types = ignored_types


def compiled(module: ModuleType) -> bool:
    """Whether ``module`` was loaded from its extension."""
    return isinstance(module.__spec__.loader, importlib.machinery.ExtensionFileLoader) if module.__spec__ else False

