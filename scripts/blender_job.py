"""Headless Blender job: photo -> .npz, .blend, .glb and a PNG render of the body over the photo.

    .venv/bin/python scripts/blender_job.py PHOTO OUT_DIR

Builds and installs the extension zip into a private Blender user folder, runs
the real "Reconstruct from image" operator (which runs the inference
subprocess), then saves, exports and renders from the matched camera.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path


def install_extension(zip_path: Path):
    """Install and enable the zip with Blender's own extension installer."""
    import bpy

    bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default", enable_on_install=True)
    import addon_utils

    if not addon_utils.check("bl_ext.user_default.human_recon")[1]:
        raise SystemExit("the extension did not enable")


# The picture is rendered no larger than about this (longer side, pixels): a 12 MP phone photo's render
# at full size took two minutes.
RENDER_SIDE = 1920


def render_over_photo(scene, photo: Path, out_png: Path, samples: int = 16) -> None:
    """Cycles CPU render with a transparent background, composited over the photo (at most
    about RENDER_SIDE large; the saved scene keeps the photo's resolution)."""
    import numpy as np
    from PIL import Image

    longer = max(scene.render.resolution_x, scene.render.resolution_y)
    scene.render.resolution_percentage = min(100, math.ceil(100 * RENDER_SIDE / longer))
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.render.film_transparent = True
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    if scene.world is None:
        import bpy

        scene.world = bpy.data.worlds.new("World")
    _add_lights(scene)
    with tempfile.TemporaryDirectory() as tmp:
        scene.render.filepath = os.path.join(tmp, "body.png")
        import bpy

        bpy.ops.render.render(write_still=True)
        body = Image.open(scene.render.filepath).convert("RGBA")
    from inference.io.images import load_image

    base = Image.fromarray(load_image(photo)).convert("RGBA").resize(body.size)
    alpha = np.asarray(body)[..., 3:4].astype(np.float32) / 255.0 * 0.85
    mix = np.asarray(body)[..., :3] * alpha + np.asarray(base)[..., :3] * (1 - alpha)
    Image.fromarray(mix.astype(np.uint8)).save(out_png)


def _add_lights(scene) -> None:
    import bpy

    cam = scene.camera
    for energy, offset in ((3.0, (0.5, 0.5, 0.0)), (1.5, (-0.8, -0.2, 0.0))):
        light = bpy.data.lights.new("Key", "SUN")
        light.energy = energy
        obj = bpy.data.objects.new("Light", light)
        scene.collection.objects.link(obj)
        obj.matrix_world = cam.matrix_world
        obj.rotation_euler[0] += offset[0]
        obj.rotation_euler[1] += offset[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photo")
    ap.add_argument("out_dir")
    ap.add_argument("--samples", type=int, default=16)
    args = ap.parse_args(argv)
    photo, out = Path(args.photo).resolve(), Path(args.out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # The extension zip and the private Blender user folder it installs into (about 120 MB)
    # live only as long as the job.
    with tempfile.TemporaryDirectory(prefix="human_recon_job_") as scratch:
        os.environ.setdefault("BLENDER_USER_RESOURCES", os.path.join(scratch, "blender"))
        os.environ.setdefault("HUMAN_RECON_PYTHON", sys.executable)  # this venv has torch
        return _job(photo, out, Path(scratch) / "zip", args.samples)


def _job(photo: Path, out: Path, zip_dir: Path, samples: int) -> int:
    import build_addon

    zip_path = build_addon.build(zip_dir)
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    install_extension(zip_path)
    try:
        res = bpy.ops.human_recon.reconstruct_image(filepath=str(photo), result_dir=str(out))
    except RuntimeError as exc:  # the operator's error report
        print(f"error: {str(exc).removeprefix('Error: ').strip()}", file=sys.stderr)
        return 1
    if res != {"FINISHED"}:
        print(f"error: reconstruction of {photo} was cancelled", file=sys.stderr)
        return 1
    stem = photo.stem
    scene = bpy.context.scene
    bpy.context.preferences.filepaths.save_version = 0  # a rerun replaces the .blend, leaving no .blend1
    bpy.ops.wm.save_as_mainfile(filepath=str(out / f"{stem}.blend"))
    bpy.ops.export_scene.gltf(filepath=str(out / f"{stem}.glb"), export_format="GLB", use_selection=False)
    render_over_photo(scene, photo, out / f"{stem}.png", samples)
    for ext in ("npz", "blend", "glb", "png"):
        print(out / f"{stem}.{ext}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
