"""The synthetic data generator: seeded, within joint limits, drawn where the body is."""

from __future__ import annotations

import numpy as np
import pytest
import roma
import torch

from inference.keypoints import NUM as NUM_KEYPOINTS
from inference.regress.netinput import INPUT_SIZE, Crop, heatmaps, photo_input
from training.synth import SyntheticData


@pytest.fixture(scope="module")
def data(body):
    return SyntheticData(body)


def test_same_seed_same_sample(data):
    a, b = data.batch([5, 6]), data.batch([5, 6])
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.pose, b.pose)
    assert not torch.equal(data.batch([7]).pose, a.pose[:1])


def test_poses_within_limits_and_varied(data):
    lim = data.limits
    b = data.batch(range(64))
    aa = roma.rotmat_to_rotvec(b.pose)
    assert bool((aa >= lim.lo - 1e-4).all() and (aa <= lim.hi + 1e-4).all())
    # Knees: straight and deeply bent both come up; bodies are seen from the back too.
    knee = aa[:, lim.names.index("lowerleg01.L"), 0]
    assert float(knee.min()) < 0.2 and float(knee.max()) > 1.5
    facing = b.global_rot[:, 2, 1]  # camera z of the body's back: > 0 faces the camera
    assert (facing > 0.3).any() and (facing < -0.3).any()
    shape = b.shape.numpy()
    assert shape.min() >= 0 and shape.max() <= 1 and shape.std(0).min() > 0.1


def test_input_shows_the_body_at_its_keypoints(data):
    b = data.batch(range(100, 116), augment=False)
    assert b.inputs.shape == (16, 1 + NUM_KEYPOINTS, INPUT_SIZE, INPUT_SIZE)
    mask = b.inputs[:, 0]
    assert float(mask.mean()) > 0.1
    xy = (b.keypoints2d[..., :2] - b.crop_center[:, None]) / (b.crop_side[:, None, None] / 2)
    ij = ((xy + 1) / 2 * INPUT_SIZE).long().clamp(0, INPUT_SIZE - 1)
    for i in range(16):
        vis = b.keypoints2d[i, :, 2] > 0.5
        hips_and_shoulders = [k for k in (5, 6, 11, 12) if vis[k]]
        on_body = [float(mask[i, ij[i, k, 1], ij[i, k, 0]]) for k in hips_and_shoulders]
        assert min(on_body) > 0.5  # torso keypoints lie on the drawn silhouette
        # Each visible keypoint's heatmap peaks where the keypoint is.
        for k in np.nonzero(vis.numpy())[0][:3]:
            hm = b.inputs[i, 1 + k]
            peak = divmod(int(hm.argmax()), INPUT_SIZE)
            assert abs(peak[0] - int(ij[i, k, 1])) <= 1 and abs(peak[1] - int(ij[i, k, 0])) <= 1
    # Pelvis target: where the true pelvis projects, inside the crop.
    assert bool((b.root_xy.abs() < 1).all())


def test_photo_input_matches_crop_geometry():
    crop = Crop.around(np.array([100.0, 50.0, 200.0, 350.0]))
    pts = np.array([[150.0, 200.0], [100.0, 50.0]])
    assert np.allclose(crop.to_image(crop.to_crop(pts)), pts)
    assert np.allclose(crop.to_crop(np.array([150.0, 200.0])), 0)
    mask = np.zeros((400, 300), np.float32)
    mask[50:350, 100:200] = 1
    kp = np.zeros((NUM_KEYPOINTS, 3))
    kp[:, :2] = [150, 200]
    kp[0] = [150, 60, 0.9]
    x, kp_in = photo_input(mask, kp, crop)
    assert kp_in.shape == (NUM_KEYPOINTS, 3) and float(kp_in[1, 2]) == 0.0 and float(kp_in[0, 2]) == pytest.approx(0.9)
    assert x.shape == (1 + NUM_KEYPOINTS, INPUT_SIZE, INPUT_SIZE)
    assert float(x[0, INPUT_SIZE // 2, INPUT_SIZE // 2]) == pytest.approx(1.0)
    assert float(x[0, 2, 2]) == 0.0  # outside the box
    assert float(x[2].max()) == 0.0  # confidence 0: no heatmap
    peak = divmod(int(x[1].argmax()), INPUT_SIZE)
    expect = (crop.to_crop(np.array([150.0, 60.0])) + 1) / 2 * INPUT_SIZE
    assert abs(peak[0] - expect[1]) <= 1 and abs(peak[1] - expect[0]) <= 1
    assert float(heatmaps(torch.zeros(1, 1, 2), torch.ones(1, 1)).max()) > 0.5


def test_keypoint_noise_scales_the_detector_like_error(data):
    """``keypoint_noise`` scales the keypoints' jitter about the true projection (training at
    MediaPipe's measured level); at 1 the samples are the benchmark's, draw for draw."""
    from training.synth import project_batch

    seeds = list(range(500, 532))
    louder = SyntheticData(data.body, keypoint_noise=2.0)

    def median_error(d):
        b = d.batch(seeds, images=False)
        uv = project_batch(b.keypoints3d, b.K)
        return float((b.keypoints2d[..., :2] - uv).norm(dim=-1).median())

    base = median_error(data)
    assert 1.6 * base < median_error(louder) < 2.4 * base
    np.testing.assert_array_equal(SyntheticData(data.body, 1.0).batch(seeds[:4], images=False).keypoints2d.numpy(),
                                  data.batch(seeds[:4], images=False).keypoints2d.numpy())


def test_made_from_draws_sample_by_sample(data):
    """The batched geometry keeps samples apart: draws made in two parts give the rows of the
    batch made whole, and a seed's sample does not depend on its neighbours in the batch."""
    seeds = np.arange(300, 312)
    whole = data.batch(seeds, images=False)
    parts = [data.make(data.draw(s, images=False)) for s in (seeds[:5], seeds[5:])]
    for field in ("keypoints_in", "camera_in", "keypoints3d", "keypoints2d", "root_xy", "log_depth"):
        joined = torch.cat([getattr(p, field) for p in parts])
        assert torch.allclose(joined, getattr(whole, field), atol=1e-4), field
    alone = data.batch(seeds[7:8], images=True)
    among = data.batch(seeds[4:9], images=True)
    assert torch.allclose(alone.inputs[0], among.inputs[3], atol=1e-5)
    # The draws hold only numbers from the seed (no geometry): drawing twice gives the same.
    a, b = data.draw(seeds[:3]), data.draw(seeds[:3])
    assert np.array_equal(a.jitter, b.jitter) and np.array_equal(a.occluder, b.occluder)
