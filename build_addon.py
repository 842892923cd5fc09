"""Assemble the installable Blender extension zip.

    python build_addon.py [--output-dir dist]    -> dist/human_recon-<version>.zip

The zip holds the manifest and the add-on at its root, and under
``inference_pkg/`` the runtime package (``inference``), the weights it loads and its
requirements, which the add-on puts on the child process's PYTHONPATH. Training,
benchmarks, tests and docs stay out.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SKIP_PARTS = {"__pycache__", ".pytest_cache"}
# What inference loads from weights/: the regressor's weights and the pose and hand detectors'
# bundles, with the bundles' licence (the model card stays in the repo).
RUNTIME_WEIGHTS = ["regressor.safetensors", "pose_landmarker_heavy.task", "pose_landmarker_full.task",
                   "hand_landmarker.task", "LICENSE-mediapipe-Apache-2.0.txt"]  # fmt: skip


def _files(folder: Path):
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not SKIP_PARTS & set(p.parts) and p.suffix != ".pyc":
            yield p


def build(output_dir: str | Path = ROOT / "dist") -> Path:
    manifest = tomllib.loads((ROOT / "blender_manifest.toml").read_text())
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    zip_path = out_dir / f"{manifest['id']}-{manifest['version']}.zip"
    tmp = zip_path.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(ROOT / "blender_manifest.toml", "blender_manifest.toml")
        for p in _files(ROOT / "addon" / "human_recon"):
            z.write(p, p.relative_to(ROOT / "addon" / "human_recon").as_posix())
        for p in _files(ROOT / "inference"):
            z.write(p, ("inference_pkg" / p.relative_to(ROOT)).as_posix())
        for name in RUNTIME_WEIGHTS:
            z.write(ROOT / "weights" / name, f"inference_pkg/weights/{name}")
        z.write(ROOT / "requirements.txt", "inference_pkg/requirements.txt")
    tmp.replace(zip_path)
    return zip_path


def blender_ext_tool() -> Path:
    """Blender's own extension command-line tool, shipped inside the bpy wheel."""
    import importlib.util

    spec = importlib.util.find_spec("bpy")
    if spec is None or spec.origin is None:
        raise SystemExit("the bpy package is not installed")
    base = Path(spec.origin).parent
    hits = sorted(base.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not hits:
        raise SystemExit("blender_ext.py not found in the bpy package")
    return hits[-1]


def validate(zip_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(blender_ext_tool()), "validate", str(zip_path)], capture_output=True, text=True
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output-dir", default=str(ROOT / "dist"))
    ap.add_argument("--no-validate", action="store_true")
    args = ap.parse_args()
    path = build(args.output_dir)
    print(path)
    if not args.no_validate:
        proc = validate(path)
        print((proc.stdout + proc.stderr).strip())
        return proc.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
