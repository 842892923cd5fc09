"""Bad input, faults and cancels, through the real CLI and pipeline (see README: guarantees)."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
from PIL import Image

from inference.errors import EXIT_INPUT
from inference.io.result import ReconResult

from .conftest import PERSON, ROOT, opencv_photo, run_cli


def _one_line_error(proc, code_word):
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and code_word in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_tiny_and_bomb_images_via_cli(tmp_path, cache_dir):
    Image.new("RGB", (1, 1)).save(tmp_path / "one.png")
    Image.new("L", (8, 8)).save(tmp_path / "small.png")
    data = bytearray((tmp_path / "small.png").read_bytes())
    data[16:24] = struct.pack(">II", 100_000, 100_000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    (tmp_path / "bomb.png").write_bytes(bytes(data))
    for name, word in (("one.png", "pixels"), ("bomb.png", "too large")):
        out = tmp_path / f"{name}.npz"
        proc = run_cli("reconstruct", str(tmp_path / name), "-o", str(out), cache_dir=cache_dir)
        assert proc.returncode == EXIT_INPUT
        _one_line_error(proc, word)
        assert not out.exists()


def test_odd_pixel_formats_reconstruct(reconstructor, tmp_path):
    src = Image.open(PERSON)
    variants = {
        "gray.png": src.convert("L"),
        "cmyk.tif": src.convert("CMYK"),
        "rgba.png": src.convert("RGBA"),
        "p16.png": Image.fromarray((np.asarray(src.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)),
    }
    for name, img in variants.items():
        img.save(tmp_path / name)
        (r,) = reconstructor.reconstruct(tmp_path / name).people
        assert r.silhouette_iou > 0.6, name


def test_exif_rotated_photo_is_upright(reconstructor, tmp_path):
    src = Image.open(PERSON)
    exif = Image.Exif()
    exif[0x0112] = 8  # stored on its side; viewers turn it upright
    path = tmp_path / "IMG_0001.jpg"
    src.transpose(Image.Transpose.ROTATE_270).save(path, exif=exif.tobytes(), quality=95)
    r = reconstructor.reconstruct(path)
    assert tuple(r.image_size) == (460, 540)
    kp = r.people[0].keypoints2d
    nose_y, ankles_y = kp[0, 1], kp[15:17, 1].mean()
    assert nose_y < ankles_y - 200  # head above feet: the body stands, not lies


def test_person_cut_off_at_the_frame_edge(reconstructor, tmp_path):
    Image.open(PERSON).crop((0, 0, 460, 330)).save(tmp_path / "upper.jpg")  # legs cut off at the knees
    (r,) = reconstructor.reconstruct(tmp_path / "upper.jpg").people
    vis = r.keypoints2d[:, 2] > 0.5
    assert vis[:13].sum() >= 11  # head, arms and hips are seen
    err = np.linalg.norm(r.keypoints2d_fit[vis] - r.keypoints2d[vis, :2], axis=1).mean()
    assert err < 0.05 * (r.person_box[3] - r.person_box[1])


def test_several_people_each_rigged_left_to_right_in_depth_order(tmp_path, cache_dir):
    # Two copies of the person side by side, the left one at 70% size (so farther away): both are
    # reconstructed, named left to right, the smaller one behind; --people largest takes the bigger.
    big = Image.open(PERSON)
    small = big.resize((322, 378))
    canvas = Image.new("RGB", (722, 540), (120, 130, 140))
    canvas.paste(small, (0, 162))
    canvas.paste(big, (262, 0))
    path = tmp_path / "two people é.jpg"  # spaces and non-ASCII in the path
    canvas.save(path, quality=95)
    out = tmp_path / "résultat 1.npz"
    proc = run_cli("reconstruct", str(path), "-o", str(out), "--json-progress", cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stderr
    assert '"people_found": 2' in proc.stdout and '"people": 2' in proc.stdout
    r = ReconResult.load(out)
    assert r.people_found == 2 and len(r.people) == 2
    left, right = r.people
    assert (left.person_box[0] + left.person_box[2]) / 2 < 200 < 400 < (right.person_box[0] + right.person_box[2]) / 2
    assert left.silhouette_iou > 0.6 and right.silhouette_iou > 0.6
    # The same body at 70% of the size in the photo stands about 1/0.7 times as far.
    depth = left.root_translation[0, 2] / right.root_translation[0, 2]
    assert 1.2 < depth < 1.7, depth
    proc = run_cli("reconstruct", str(path), "-o", str(out), "--overwrite", "--people", "largest", cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stderr
    r = ReconResult.load(out)
    assert len(r.people) == 1 and (r.people[0].person_box[0] + r.people[0].person_box[2]) / 2 > 400
    assert any("--people largest" in n for n in r.notes), r.notes


def test_killed_run_leaves_no_file(tmp_path, cache_dir):
    out = tmp_path / "r.npz"
    env = dict(os.environ, PYTHONPATH=str(ROOT), HUMAN_RECON_CACHE_DIR=cache_dir)
    cmd = [sys.executable, "-m", "inference", "reconstruct", str(PERSON), "-o", str(out), "--json-progress"]
    for delay in (2.0, 6.0):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        if delay < 3:  # still loading models: certainly nothing written
            assert proc.returncode == 130 and not out.exists()
        if out.exists():  # the signal came after the rename: then the file is whole
            assert ReconResult.load(out).people[0].vertices_cam.shape[0] > 0
            out.unlink()
        assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


# The command line with a pipeline that drops the first interrupt, as Python does with an
# exception raised while a finalizer (__del__, a weakref callback) happens to run.
DROPS_AN_INTERRUPT = """
import pathlib, runpy, sys, time
from inference import pipeline

real = pipeline.Reconstructor.reconstruct
ready = pathlib.Path(sys.argv.pop(1))

def reconstruct(self, *args, **kwargs):
    ready.touch()
    try:
        time.sleep(60)
    except KeyboardInterrupt:
        pass
    return real(self, *args, **kwargs)

pipeline.Reconstructor.reconstruct = reconstruct
runpy.run_module("inference", run_name="__main__")
"""


def test_a_cancel_that_a_library_dropped_still_cancels(tmp_path, cache_dir):
    out, ready = tmp_path / "r.npz", tmp_path / "ready"
    env = dict(os.environ, PYTHONPATH=str(ROOT), HUMAN_RECON_CACHE_DIR=cache_dir)
    cmd = [sys.executable, "-c", DROPS_AN_INTERRUPT, str(ready), "reconstruct", str(PERSON), "-o", str(out),
           "--json-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    deadline = time.monotonic() + 120
    while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists(), proc.communicate()[1]
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout  # cancelled at the next progress report, not 60 s later
    assert '"cancelled"' in stdout.strip().splitlines()[-1]
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_two_runs_at_once(tmp_path, cache_dir):
    env = dict(os.environ, PYTHONPATH=str(ROOT), HUMAN_RECON_CACHE_DIR=cache_dir)
    photos = [PERSON, opencv_photo("messi5.jpg")]
    procs = [
        subprocess.Popen([sys.executable, "-m", "inference", "reconstruct", str(p), "-o", str(tmp_path / f"{i}.npz")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for i, p in enumerate(photos)
    ]  # fmt: skip
    for p in procs:
        p.communicate(timeout=300)
        assert p.returncode == 0
    a, b = ReconResult.load(tmp_path / "0.npz"), ReconResult.load(tmp_path / "1.npz")
    assert a.image_path.endswith("person.jpg") and b.image_path.endswith("messi5.jpg")
    assert tuple(a.image_size) != tuple(b.image_size)


def test_output_into_a_file_path_or_missing_folder(tmp_path, cache_dir):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out in (blocker / "r.npz", tmp_path / "missing" / "r.npz"):
        proc = run_cli("reconstruct", str(PERSON), "-o", str(out), cache_dir=cache_dir)
        assert proc.returncode == 5
        _one_line_error(proc, "does not exist")
