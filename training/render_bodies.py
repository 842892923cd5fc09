"""Held-out synthetic bodies rendered as photos, with their 3D truth: a test set on which
the regressor benchmark runs the real detector (MediaPipe) instead of simulated keypoints.

    .venv/bin/python -m training.render_bodies OUT_DIR [--count 100]
    .venv/bin/python -m benchmarks regressor --samples 0 --renders OUT_DIR

Each body is a seed of ``training.synth`` (by default the benchmark's held-out seeds
from ``synth.TEST_SEED0``, never trained on): its phenotype, pose and camera. It is dressed
(shirt, trousers and shoes, by each vertex's main bone), rendered with Cycles on the CPU
(sun and sky light) and composited over a background photo from Debian's opencv-doc.
Writes ``OUT_DIR/<seed>.png`` and ``OUT_DIR/<seed>.npz`` (intrinsics, the 21 keypoints and
the vertices in camera space, the phenotype). About 2 s per body on 2 cores.

The bodies have no hair, faces without eyes, and the synthetic set's poses and cameras
(any turn, tilt and a few rolls, some cut off by the frame), so the detector finds them
harder than most photos: read the numbers as a lower bound of what it does on photos.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

BACKGROUNDS = Path("/usr/share/doc/opencv-doc/examples/data")
# Photos without people in them (apt-get install opencv-doc).
BACKGROUND_NAMES = [
    "leuvenA.jpg", "leuvenB.jpg", "aloeL.jpg", "starry_night.jpg", "board.jpg", "fruits.jpg", "building.jpg",
    "aero1.jpg", "aero3.jpg", "licenseplate_motion.jpg", "home.jpg", "stuff.jpg", "apple.jpg", "orange.jpg",
]  # fmt: skip
SKIN = [(0.8, 0.6, 0.5), (0.55, 0.38, 0.28), (0.35, 0.22, 0.15), (0.9, 0.72, 0.6), (0.7, 0.5, 0.4)]
CLOTH = [(0.1, 0.1, 0.3), (0.35, 0.05, 0.05), (0.04, 0.04, 0.04), (0.6, 0.6, 0.55), (0.1, 0.25, 0.1), (0.5, 0.4, 0.2)]
SHOE = [(0.01, 0.01, 0.01), (0.7, 0.7, 0.7), (0.04, 0.015, 0.005)]  # linear RGB: black, white, brown
SHIRT = ("spine", "clavicle", "upperarm", "breast", "pectoral", "shoulder")
TROUSERS = ("upperleg", "lowerleg", "pelvis", "root")
SHOES = ("foot", "toe")
# A rendered body counts as well detected when the detector's median keypoint is this close
# to the truth (% of the body's extent in the image); the others are mostly wrong detections.
WELL_DETECTED_PCT = 3.0


def garment_of_vertices(bone_names: list[str], skin_idx: np.ndarray, skin_w: np.ndarray) -> np.ndarray:
    """0 skin, 1 shirt, 2 trousers, 3 shoes for each vertex, by the bone that moves it most."""
    kind = np.zeros(len(bone_names), np.int64)
    for i, name in enumerate(bone_names):
        for k, prefixes in ((1, SHIRT), (2, TROUSERS), (3, SHOES)):
            if name.startswith(prefixes):
                kind[i] = k
    return kind[skin_idx[np.arange(len(skin_idx)), skin_w.argmax(1)]]


def material(bpy, name: str, color) -> object:
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (*color, 1.0)
    bsdf.inputs["Roughness"].default_value = 0.6
    return mat


def cycles_scene(bpy, samples: int):
    """An empty Cycles CPU scene with a transparent film, sky and sun, and a camera at the origin
    looking down -Z (OpenCV camera space with y and z negated)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False
    scene.render.film_transparent = True
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.world = bpy.data.worlds.new("Sky")
    scene.world.use_nodes = True
    scene.world.node_tree.nodes["Background"].inputs[1].default_value = 0.6
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(cam)
    scene.camera = cam  # at the origin looking down -Z: OpenCV camera space with y and z negated
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    sun.data.energy = 3.0
    sun.rotation_euler = (0.4, 0.5, 0.0)
    scene.collection.objects.link(sun)
    return scene


def replace_mesh(bpy, scene, name: str, vertices_cam: np.ndarray, faces: np.ndarray):
    """The scene's mesh (with its data and materials) replaced by one of ``vertices_cam``
    (OpenCV camera space, for ``cycles_scene``'s camera), smooth-shaded; returns its mesh data
    (for materials)."""
    for ob in [o for o in scene.objects if o.type == "MESH"]:
        mesh, materials = ob.data, list(ob.data.materials)
        bpy.data.objects.remove(ob)
        bpy.data.meshes.remove(mesh)
        for mat in materials:
            bpy.data.materials.remove(mat)
    me = bpy.data.meshes.new(name)
    me.from_pydata((vertices_cam * np.array([1.0, -1.0, -1.0])).tolist(), [], np.asarray(faces).tolist())
    me.update()
    me.shade_smooth()
    scene.collection.objects.link(bpy.data.objects.new(name, me))
    return me


def render(out_dir: Path, seeds: list[int], samples: int = 12, cache_dir: str | None = None) -> list[Path]:
    import bpy
    import torch
    from PIL import Image

    from inference.bodymodels.anny import AnnyBody
    from inference.io.result import write_npz_atomic

    from .synth import SyntheticData

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    body = AnnyBody(cache_dir)
    data = SyntheticData(body)
    faces = np.asarray(body.faces)
    garment = garment_of_vertices(body.bone_names, *body.skin())
    face_garment = garment[faces].min(1)  # a face at a garment's edge shows skin: sleeves end at the elbow
    backgrounds = [BACKGROUNDS / n for n in BACKGROUND_NAMES if (BACKGROUNDS / n).is_file()]
    if not backgrounds:
        raise SystemExit(f"no background photos in {BACKGROUNDS}: apt-get install opencv-doc")
    scene = cycles_scene(bpy, samples)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        scene.render.filepath = os.path.join(tmp, "body.png")
        for seed in seeds:
            rng = np.random.default_rng([99, seed])
            s = data.batch([seed])
            v = s.vertices[0].numpy().astype(np.float64)
            w, h = (int(x) for x in s.image_size[0])
            f = float(s.K[0, 0, 0])

            me = replace_mesh(bpy, scene, "Body", v, faces)
            shirt, trousers = (CLOTH[i] for i in rng.choice(len(CLOTH), 2, replace=False))
            colors = [SKIN[rng.integers(len(SKIN))], shirt, trousers, SHOE[rng.integers(len(SHOE))]]
            for k, color in enumerate(colors):
                me.materials.append(material(bpy, f"m{k}", color))
            me.polygons.foreach_set("material_index", face_garment.astype(np.int32))

            cam = scene.camera.data
            cam.sensor_fit = "HORIZONTAL" if w >= h else "VERTICAL"
            cam.sensor_width = cam.sensor_height = 36.0
            cam.lens = f * 36.0 / max(w, h)  # principal point at the centre (synth's cameras)
            cam.clip_start, cam.clip_end = 0.05, 500.0
            scene.render.resolution_x, scene.render.resolution_y = w, h
            bpy.ops.render.render(write_still=True)

            fg = np.asarray(Image.open(scene.render.filepath).convert("RGBA"), dtype=np.float32)
            bg = np.asarray(
                Image.open(backgrounds[rng.integers(len(backgrounds))]).convert("RGB").resize((w, h)), np.float32
            )
            alpha = fg[..., 3:4] / 255.0
            png = out_dir / f"{seed}.png"
            Image.fromarray((fg[..., :3] * alpha + bg * (1 - alpha)).astype(np.uint8)).save(png)
            write_npz_atomic(out_dir / f"{seed}.npz", {
                "seed": np.int64(seed), "K": s.K[0].numpy().astype(np.float64),
                "keypoints3d": s.keypoints3d[0].numpy().astype(np.float64), "vertices": v.astype(np.float32),
                "shape": s.shape[0].numpy().astype(np.float32),
            })  # fmt: skip
            written.append(png)
            print(f"{png} ({w}x{h})", flush=True)
    return written


def main(argv: list[str] | None = None) -> int:
    from .synth import TEST_SEED0

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--first-seed", type=int, default=TEST_SEED0, help="default: the benchmark's held-out seeds")
    ap.add_argument("--samples", type=int, default=12, help="Cycles samples per pixel")
    ap.add_argument("--cache-dir", default=None)
    args = ap.parse_args(argv)
    render(Path(args.out_dir), list(range(args.first_seed, args.first_seed + args.count)), args.samples, args.cache_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
