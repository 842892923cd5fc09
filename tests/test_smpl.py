"""SMPL as a body model, with a synthetic SMPL-format file (no SMPL data is used)."""

from __future__ import annotations

import pickle
import sys
import types

import numpy as np
import pytest
import roma
import torch

from inference.bodymodels.smpl_file import load_smpl_file
from inference.camera import Camera, project_np
from inference.detect import Detection
from inference.errors import ReconError
from inference.fit import FitOptions, Fitter
from inference.regress import LandmarkRegressor

from .smpl_fixture import make_smpl_arrays, write_smpl_npz, write_smpl_pkl


@pytest.fixture(scope="module")
def smpl_path(tmp_path_factory):
    p = tmp_path_factory.mktemp("smpl") / "SMPL_NEUTRAL.pkl"
    write_smpl_pkl(p)
    return p


@pytest.fixture(scope="module")
def smpl(smpl_path):
    from inference.bodymodels import load_body_model

    return load_body_model("smpl", smpl_model=str(smpl_path))


def test_auto_start_is_the_landmarks_for_smpl(smpl):
    from inference.regress import LandmarkRegressor, make_regressor

    assert isinstance(make_regressor(smpl), LandmarkRegressor)  # the network is trained for Anny only


def test_pkl_and_npz_load_the_same(tmp_path, smpl_path):
    write_smpl_npz(tmp_path / "SMPL_FEMALE.npz")
    a, b = load_smpl_file(smpl_path), load_smpl_file(tmp_path / "SMPL_FEMALE.npz")
    assert a.gender == "neutral" and b.gender == "female"
    assert np.allclose(a.shapedirs, b.shapedirs) and np.allclose(a.J_regressor, b.J_regressor)


def test_chumpy_and_sparse_objects_become_arrays(tmp_path):
    """Official files hold chumpy arrays and a scipy sparse regressor; neither is imported."""
    import scipy.sparse

    arrays = make_smpl_arrays()
    chumpy = types.ModuleType("chumpy.ch")
    sys.modules["chumpy"] = types.ModuleType("chumpy")

    class Ch:  # what chumpy pickles: an object whose state holds the array in 'x'
        def __init__(self, x):
            self.x = x

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    chumpy.Ch = Ch
    sys.modules["chumpy.ch"] = chumpy
    try:
        data = dict(
            arrays, shapedirs=Ch(arrays["shapedirs"]), J_regressor=scipy.sparse.csc_matrix(arrays["J_regressor"])
        )
        (tmp_path / "official.pkl").write_bytes(pickle.dumps(data, protocol=2))
    finally:
        del sys.modules["chumpy.ch"], sys.modules["chumpy"]
    d = load_smpl_file(tmp_path / "official.pkl")
    assert np.allclose(d.shapedirs, arrays["shapedirs"][:, :, :10]) and np.allclose(
        d.J_regressor, arrays["J_regressor"]
    )


def test_forbidden_global_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"v_template": Evil()}, protocol=2))
    with pytest.raises(ReconError) as exc:
        load_smpl_file(tmp_path / "evil.pkl")
    assert exc.value.code == "smpl_model_refused" and "system" in exc.value.message
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["missing", "empty", "jpeg", "truncated", "wrong_keys", "wrong_shape"])
def test_bad_model_files(tmp_path, smpl_path, kind):
    p = tmp_path / "model.pkl"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "jpeg":
        p.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 100)
    elif kind == "truncated":
        p.write_bytes(smpl_path.read_bytes()[:5000])
    elif kind == "wrong_keys":
        with open(p, "wb") as fh:
            np.savez(fh, something=np.zeros(3))
    elif kind == "wrong_shape":
        arrays = make_smpl_arrays()
        arrays["weights"] = arrays["weights"][:, :10]
        p.write_bytes(pickle.dumps(arrays, protocol=2))
    with pytest.raises(ReconError) as exc:
        load_smpl_file(p)
    assert exc.value.code == ("smpl_model_missing" if kind == "missing" else "smpl_model_bad")
    assert "\n" not in exc.value.message


def test_pose_matches_smplx(smpl, smpl_path):
    import smplx
    from smplx.utils import Struct

    data = make_smpl_arrays()
    model = smplx.SMPL(str(smpl_path), data_struct=Struct(**data), num_betas=10)
    torch.manual_seed(0)
    betas = torch.randn(1, 10) * 0.5
    aa = torch.randn(1, 24, 3) * 0.3
    aa[:, 0] = 0
    ref = model(betas=betas, body_pose=aa[:, 1:].reshape(1, -1), global_orient=aa[:, :1].reshape(1, 3)).vertices
    ours, _ = smpl.pose(smpl.rest(betas), roma.rotvec_to_rotmat(aa))
    assert (ours - ref).abs().max() < 1e-5


def _synthetic_detection(smpl, pose_sub, betas, camera):
    """Noise-free keypoints of a known body, as the detector would report them."""
    fitter = Fitter(smpl)
    lim = fitter.limits
    pose = torch.zeros(1, 24, 3).index_copy(1, lim.index, pose_sub)
    v, _ = smpl.pose(smpl.rest(betas), roma.rotvec_to_rotmat(pose))
    R = roma.rotvec_to_rotmat(torch.tensor([[np.pi, 0.0, 0.0]]))  # SMPL's Y up -> camera's Y down, facing it
    cam = torch.einsum("bij,bvj->bvi", R, v) + torch.tensor([0.0, 0.1, 4.0])
    kp = smpl.keypoints(cam)[0].numpy().astype(np.float64)
    uv = project_np(kp, camera.K)
    kp2d = np.concatenate([uv, np.ones((len(uv), 1))], 1)
    lm = kp - kp[[11, 12]].mean(0)
    box = np.array([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()])
    mask = np.zeros((camera.height, camera.width), np.float32)
    det = Detection(box=box, keypoints2d=kp2d, landmarks3d=lm, mask=mask, score=1.0)
    return det, torch.tensor(kp, dtype=torch.float32), pose


def test_known_pose_and_shape_recovered(smpl):
    camera = Camera.for_image(800, 1000)
    torch.manual_seed(1)
    lim = Fitter(smpl).limits
    pose_sub = lim.clamp(torch.randn(1, len(lim.index), 3) * 0.25)
    betas = torch.zeros(1, 10)
    betas[0, :3] = torch.tensor([0.8, -0.5, 0.3])
    det, true_joints, _ = _synthetic_detection(smpl, pose_sub, betas, camera)
    options = FitOptions(silhouette_weight=0.0, rigid_steps=40, pose_steps=150, full_steps=150, mirror_guard=False,
                         init_prior=0.0, shape_prior=0.0, landmarks3d_weight=1.0)  # fmt: skip
    fitter = Fitter(smpl, options)
    init = LandmarkRegressor(smpl)([det], camera)
    fit = fitter.fit([det], camera, init)
    p = fit.params
    v, _ = smpl.pose(smpl.rest(p.shape), roma.rotvec_to_rotmat(p.pose))
    cam = torch.einsum("bij,bvj->bvi", roma.rotvec_to_rotmat(p.global_rot), v) + p.transl[:, None]
    joints = smpl.keypoints(cam)[0]  # the 21 keypoints the photo constrains
    aligned = roma.rigid_points_registration(joints[None], true_joints[None], compute_scaling=True)
    R, t, s = aligned
    pa = (s[:, None, None] * torch.einsum("bij,bnj->bni", R, joints[None]) + t[:, None] - true_joints[None])
    pa_mpjpe = pa.norm(dim=-1).mean().item() * 1000
    print(f"PA-MPJPE {pa_mpjpe:.2f} mm")
    assert pa_mpjpe <= 10.0, pa_mpjpe


def test_amass_arrays_round_trip_through_smplx(tmp_path, smpl_path):
    """The result's poses/betas/trans, read as any SMPL tool would, rebuild our mesh."""
    import smplx
    from smplx.utils import Struct

    from inference.io.result import ReconResult
    from inference.pipeline import Reconstructor

    from .conftest import PERSON

    rec = Reconstructor(body_model="smpl", smpl_model=str(smpl_path), quality="fast")
    rec.reconstruct(PERSON).save(tmp_path / "r.npz")
    with np.load(tmp_path / "r.npz", allow_pickle=False) as z:
        assert int(z["person_count"]) == 1  # AMASS arrays per person: a leading person axis
        poses, betas, trans = z["poses"][0], z["betas"][0], z["trans"][0]
        assert poses.shape == (1, 72) and betas.shape == (10,) and trans.shape == (1, 3)
        assert str(z["gender"]) == "neutral" and float(z["mocap_framerate"]) > 0
    model = smplx.SMPL(str(smpl_path), data_struct=Struct(**make_smpl_arrays()), num_betas=10)
    out = model(
        betas=torch.tensor(betas)[None], global_orient=torch.tensor(poses[:, :3]),
        body_pose=torch.tensor(poses[:, 3:]), transl=torch.tensor(trans),
    )  # fmt: skip
    r = ReconResult.load(tmp_path / "r.npz")
    assert np.abs(out.vertices[0].detach().numpy() - r.people[0].vertices_cam).max() < 1e-4
    assert r.model_up_axis == "Y" and list(r.bone_names)[:2] == ["pelvis", "left_hip"]


def test_anny_result_converts_to_smpl(reconstructor, smpl):
    from inference.convert import anny_frames, anny_to_smpl

    from .conftest import PERSON

    result = reconstructor.reconstruct(PERSON)
    # What the conversion starts from is the result's body, scaled to its standing height.
    _, kps = anny_frames(result.people[0], reconstructor.body)
    assert result.people[0].body_scale != 1.0
    assert np.abs(kps[0, :17].numpy() - result.people[0].keypoints3d_cam).max() < 1e-3
    conv = anny_to_smpl(result, result.people[0], reconstructor.body, smpl, steps=120)
    assert conv.amass["poses"].shape == (1, 72) and conv.amass["trans"].shape == (1, 3)
    # The fit pulls SMPL's keypoints onto Anny's (the synthetic SMPL body is not human-shaped,
    # so its surface cannot match closely; a real SMPL file can).
    assert conv.keypoint_error_mm < 0.5 * conv.initial_keypoint_error_mm
    assert conv.keypoint_error_mm < 40 and np.isfinite(conv.surface_error_mm)


def test_smpl_clip_gives_amass_arrays_per_frame(smpl_path):
    from inference.io.frames import open_frames
    from inference.pipeline import Reconstructor
    from inference.sequence import SequenceReconstructor

    from .conftest import ROOT

    clip = ROOT / "tests" / "data" / "demo.mp4"
    if not clip.exists():
        pytest.skip("run scripts/fetch_test_data.sh for the test clip")
    rec = Reconstructor(body_model="smpl", smpl_model=str(smpl_path), quality="fast")
    r = SequenceReconstructor(rec).run(open_frames(clip, end=6))
    p = r.people[0]
    assert p.extra["poses"].shape == (6, 72) and p.extra["trans"].shape == (6, 3)
    assert float(r.extra["mocap_framerate"]) == pytest.approx(30.0)
    assert p.bone_rotations.shape == (6, 24, 4)
    # No finger bones: the hands are not fitted, and the result says so.
    assert not p.frame_hands_fitted.any() and not p.frame_hand_keypoints3d_cam.any()
    assert "Person 1: hands not fitted: the smpl body has no finger bones" in list(r.notes)
