"""The trained regressor: loads, runs on a real photo's crop, beats a neutral guess."""

from __future__ import annotations

import numpy as np
import pytest
import roma
import torch

from inference.errors import ReconError
from inference.regress import WEIGHTS, NetworkRegressor
from training.synth import TEST_SEED0, SyntheticData
from training.train import BodyLoss, run_net

from .conftest import PERSON

pytestmark = pytest.mark.skipif(not WEIGHTS.exists(), reason="no trained regressor weights in weights/")
RENDERED_SEED = 32  # a held-out body (TEST_SEED0 + 32) that the detector finds well once rendered


@pytest.fixture(scope="module")
def regressor(body):
    return NetworkRegressor(body)


def test_weights_file_is_small_and_half_precision():
    from safetensors import safe_open

    assert WEIGHTS.stat().st_size < 100e6
    with safe_open(str(WEIGHTS), framework="pt") as f:
        assert f.get_tensor("net.conv1.weight").dtype == torch.float16


def test_runs_on_a_real_photos_crop(reconstructor, regressor):
    from inference.camera import Camera
    from inference.detect import find_people, prominence
    from inference.io.images import load_image

    rgb = load_image(PERSON)
    det = max(find_people(reconstructor.detector, rgb), key=prominence)
    camera = Camera.for_image(rgb.shape[1], rgb.shape[0])
    p = regressor([det], camera)
    assert p.pose.shape == (1, len(reconstructor.body.bone_names), 3)
    assert torch.isfinite(p.pose).all() and torch.isfinite(p.transl).all()
    # The body stands in front of the camera, upright (the man jumps with his head up).
    assert 1.0 < float(p.transl[0, 2]) < 30.0
    up = roma.rotvec_to_rotmat(p.global_rot)[0] @ torch.tensor([0.0, 0.0, 1.0])  # model up in the camera
    assert float(up[1]) < -0.7  # camera y points down
    # Its keypoints land near the detected ones (fraction of the person's height; the start is
    # placed on the detected keypoints: 0.024 measured, 0.031 with the network's own camera).
    from inference.camera import project_np

    rest = reconstructor.body.rest(p.shape)
    v, _ = reconstructor.body.pose(rest, roma.rotvec_to_rotmat(p.pose))
    v = torch.einsum("ij,vj->vi", roma.rotvec_to_rotmat(p.global_rot)[0], v[0]) + p.transl[0]
    kp = reconstructor.body.keypoints(v[None])[0].detach().numpy()
    uv = project_np(kp, camera.K)
    vis = det.keypoints2d[:, 2] > 0.5
    err = np.linalg.norm(uv[vis] - det.keypoints2d[vis, :2], axis=1).mean() / det.height
    assert err < 0.06


def test_beats_a_neutral_guess_on_held_out_bodies(body, regressor):
    data = SyntheticData(body)
    loss = BodyLoss(body)
    b = data.batch(np.arange(TEST_SEED0, TEST_SEED0 + 16))
    with torch.no_grad():
        p = regressor.net.decode(run_net(regressor.net, b))
        kp_t, _ = loss(b.shape, b.pose, b.global_rot)
        kp, _ = loss(p.shape, p.pose, p.global_rot)
        # Neutral guess: rest pose, average shape, with the true global rotation (a generous baseline).
        eye = torch.eye(3).expand_as(b.pose)
        kp0, _ = loss(body.default_shape(16), eye, b.global_rot)
    err = (kp - kp_t).norm(dim=-1).mean()
    err0 = (kp0 - kp_t).norm(dim=-1).mean()
    assert float(err) < 0.6 * float(err0)  # measured: 0.144 m vs 0.292 m (0.49x)


def test_damaged_or_foreign_weights_get_one_line(tmp_path, body):
    bad = tmp_path / "w.safetensors"
    bad.write_bytes(b"not weights")
    with pytest.raises(ReconError) as e:
        NetworkRegressor(body, bad)
    assert e.value.code == "bad_weights" and "\n" not in e.value.message
    with pytest.raises(ReconError) as e:
        NetworkRegressor(body, tmp_path / "missing.safetensors")
    assert e.value.code == "no_weights"


def test_cli_starts_from_the_network_when_asked(tmp_path, cache_dir):
    import json

    from .conftest import run_cli

    out = tmp_path / "r.npz"
    r = run_cli("reconstruct", str(PERSON), "-o", str(out), "--init", "network", "--json-progress", cache_dir=cache_dir)
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    result = [e for e in events if e["event"] == "result"][0]
    assert out.exists() and result["silhouette_iou"][0] > 0.6


def test_resnet_branch_is_trained_and_used(body, regressor):
    """The shipped network reads the mask and heatmaps: its ResNet branch is not the
    zero it starts from, and its answer moves when the image is taken away."""
    net = regressor.net
    assert float(net.image_proj.weight.detach().abs().max()) > 0.0
    b = SyntheticData(body).batch(np.arange(TEST_SEED0, TEST_SEED0 + 4))
    with torch.no_grad():
        with_image = run_net(net, b, images=True)
        without = run_net(net, b, images=False)
    assert float((with_image - without).abs().max()) > 1e-3


def test_benchmark_compares_both_starts_on_photos_and_clip_frames(cache_dir):
    from benchmarks.regressor import run_regressor_benchmark

    from .conftest import ROOT

    clip = ROOT / "tests" / "data" / "demo.mp4"
    if not clip.exists():
        pytest.skip("tests/data/demo.mp4 missing: run scripts/fetch_test_data.sh")
    report = run_regressor_benchmark(samples=0, clip=str(clip), clip_step=200, cache_dir=cache_dir)
    assert [p["image"] for p in report["photos"]] == ["person.jpg", "demo.mp4#0", "demo.mp4#200"]
    summary = report["photos_summary"]
    assert summary["photos"] == 3
    for key in ("b", "c", "c_full"):
        assert 0.6 < summary[key]["silhouette_iou"] <= 1.0 and 0.0 < summary[key]["keypoint_error_pct"] < 10.0
    # The network's start runs fewer iterations than the landmark start; c_full runs as many.
    row = report["photos"][0]
    assert row["c"]["fit_iterations"] < row["b"]["fit_iterations"] == row["c_full"]["fit_iterations"]
    assert 0 < report["regressor_ms_per_crop"] < 1000


def test_fit_from_the_true_body_stays_near_it_and_beats_the_network_start(cache_dir):
    """The benchmark's row (d): (c)'s fit started from the sample's true body. The fit sees
    noisy 2D keypoints and so drifts a little (in size and distance too, which one view cannot
    tell apart: hence PA-MPJPE), but far less than the fit from the network's start ends off."""
    from benchmarks.regressor import SyntheticBench

    bench = SyntheticBench(cache_dir, str(WEIGHTS))
    rows = [bench.sample(seed, False) for seed in (TEST_SEED0, TEST_SEED0 + 1)]
    for row in rows:
        assert row["d"]["pa_mpjpe_mm"] < 50.0
        assert row["d"]["pa_mpjpe_mm"] < row["c"]["pa_mpjpe_mm"] < row["a"]["pa_mpjpe_mm"] + 10.0


def test_auto_start_is_the_network_for_anny(reconstructor, body):
    from inference.fit import FitOptions
    from inference.regress import LandmarkRegressor, make_regressor

    # The session's default reconstructor (init "auto") starts from the network, with its fit.
    assert isinstance(reconstructor.regressor, NetworkRegressor)
    assert reconstructor.fitter.options == FitOptions().for_trained_start(0.5)
    assert isinstance(make_regressor(body, "landmarks"), LandmarkRegressor)


def test_benchmark_runs_the_real_detector_on_a_rendered_held_out_body(tmp_path, cache_dir):
    """training.render_bodies renders a held-out synthetic body (Cycles, dressed, over a photo)
    with its truth; the benchmark runs the whole photo pipeline on it, MediaPipe included. The
    detector's keypoints land on the true body's projection (the render's camera is the truth's),
    and both starts' fits recover the pose to within what a photo allows."""
    import subprocess
    import sys

    from benchmarks.regressor import run_regressor_benchmark


    pytest.importorskip("bpy")
    seed = TEST_SEED0 + RENDERED_SEED
    subprocess.run(
        [sys.executable, "-m", "training.render_bodies", str(tmp_path), "--count", "1", "--first-seed", str(seed),
         "--cache-dir", cache_dir],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{seed}.npz", f"{seed}.png"]
    report = run_regressor_benchmark(samples=0, renders=str(tmp_path), cache_dir=cache_dir)
    (row,) = report["rendered"]
    assert row["detector_kp_error_pct"] < 3.0
    for key in ("b", "c"):
        assert row[key]["pa_mpjpe_mm"] < 100.0 and row[key]["silhouette_iou"] > 0.7, row
    summary = report["rendered_summary"]
    assert summary["rendered"] == summary["detected"] == summary["well_detected"] == 1
    assert summary["c_detected"]["pa_mpjpe_mm"] == row["c"]["pa_mpjpe_mm"]
