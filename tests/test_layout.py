"""The repository's layout: imports run one way (benchmarks -> training -> inference), nobody
imports another module's private names, and the extension zip carries only the runtime."""

from __future__ import annotations

import ast
import sys
import zipfile
from pathlib import Path

import pytest

import build_addon

from .conftest import ROOT

PACKAGES = ("inference", "training", "benchmarks")
# What each top-level package may import of the project's own packages.
ALLOWED = {"inference": {"inference"}, "training": {"inference", "training"},
           "benchmarks": {"inference", "training", "benchmarks"}}  # fmt: skip


def _sources(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(absolute module imported, names taken from it, line) for every import in ``path``; relative
    imports are resolved against the file's package."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    if path.name == "__init__.py":
        package = path.relative_to(ROOT).parts[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            out.append((base, [a.name for a in node.names], node.lineno))
    return out


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_run_one_way(package):
    bad = []
    for path in _sources(package):
        for module, _, line in _imports(path):
            top = module.split(".")[0]
            if top in PACKAGES and top not in ALLOWED[package]:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not bad, "\n".join(bad)


def test_import_rule_is_enforced_on_a_file_that_breaks_it(tmp_path, monkeypatch):
    """The checker itself sees a relative import that climbs out of the package."""
    pkg = tmp_path / "inference" / "sub"
    pkg.mkdir(parents=True)
    (pkg / "m.py").write_text("from ...training import synth\nfrom .. import keypoints\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = [m for m, _, _ in _imports(pkg / "m.py")]
    assert found == ["training", "inference"]


def test_no_module_imports_another_modules_private_names():
    bad = []
    for path in _sources(*PACKAGES, "tests", "scripts"):
        for module, names, line in _imports(path):
            if module.split(".")[0] in (*PACKAGES, "tests"):
                private = [n for n in names if n.startswith("_") and not n.endswith("__")]
                bad += [f"{path.relative_to(ROOT)}:{line} {module}.{n}" for n in private]
    assert not bad, "\n".join(bad)


def _private_definitions(paths: list[Path]) -> set[str]:
    """Private names the project defines: functions, classes and ``self._x`` attributes."""
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
    return {n for n in names if n.startswith("_") and not n.endswith("__")}


def test_no_code_reaches_into_another_objects_private_names():
    """``x._name`` on anything but ``self`` or ``cls``, for a private name the project defines
    (a third-party library's private names are its own business)."""
    paths = _sources(*PACKAGES, "tests", "scripts")
    private = _private_definitions(paths)
    bad = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in private:
                if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)}")
    assert not bad, "\n".join(bad)


def test_extension_zip_carries_only_the_runtime(tmp_path):
    names = set(zipfile.ZipFile(build_addon.build(tmp_path)).namelist())
    addon_dir = ROOT / "addon" / "human_recon"
    addon = {p.relative_to(addon_dir).as_posix() for p in addon_dir.rglob("*")
             if p.is_file() and "__pycache__" not in p.parts}  # fmt: skip
    runtime = {f"inference_pkg/{p.relative_to(ROOT).as_posix()}" for p in (ROOT / "inference").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}  # fmt: skip
    weights = {f"inference_pkg/weights/{n}" for n in build_addon.RUNTIME_WEIGHTS}
    assert names == {"blender_manifest.toml", "inference_pkg/requirements.txt"} | addon | runtime | weights
    assert "inference_pkg/inference/pipeline.py" in names and "inference_pkg/weights/regressor.safetensors" in names
    assert not any(n.split("/")[1] in ("training", "benchmarks", "tests", "docs") for n in names if "/" in n)
    assert not any(n.endswith(("README.md", ".sh")) for n in names)
