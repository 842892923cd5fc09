"""The hand fit (inference/hands.py) and the hand detector (inference/detect/mediapipe_hands.py) on
the real Anny skeleton, synthetic hands of known pose and real photos."""

from __future__ import annotations

import math

import numpy as np
import pytest
import roma
import torch

from inference import hands as H
from inference.camera import Camera, project, project_np
from inference.io.images import load_image

from .conftest import PERSON


@pytest.fixture(scope="module")
def skeleton(body):
    rest = body.rest(body.default_shape(), body.keypoint_vertex_ids)
    eye = torch.eye(3).expand(1, len(body.bone_names), 3, 3)
    _, frames = body.pose(rest, eye, body.keypoint_vertex_ids)
    return rest, frames


@pytest.mark.parametrize("side", H.SIDES)
def test_chain_matches_the_body_model_and_fingers_curl_into_the_palm(body, skeleton, side):
    rest, frames = skeleton
    rig = H.HandRig.build(body, rest.bone_poses[0], rest.bone_tails[0], side)
    gen = torch.Generator().manual_seed(3)
    wrist, angles = torch.rand(1, 3, generator=gen) - 0.5, torch.rand(1, 5, 4, generator=gen)
    local = rig.local_rotations(wrist, angles)
    full = torch.eye(3).repeat(1, len(body.bone_names), 1, 1)
    full[0, rig.bones[0]] = local[0]
    _, posed = body.pose(rest, full, body.keypoint_vertex_ids)
    ours = rig.keypoints(posed[:, rig.wrist_parent[0]], local)[0]
    theirs = []
    for slot, along in zip(rig.keypoint_slot, rig.keypoint_tail):  # along the bone: 0 at its head, 1 its tail
        b = int(rig.bones[0, slot])
        length = (rest.bone_tails[0, b] - rest.bone_heads[0, b]).norm()
        theirs.append(posed[0, b, :3, 3] + posed[0, b, :3, 1] * length * along)
    assert float((ours - torch.stack(theirs)).abs().max()) < 1e-5  # the chain poses as Anny does
    assert rig.keypoint_tail[0] == H.WRIST_AT and (rig.keypoint_tail[[4, 8, 12, 16, 20]] == 1).all()

    # A fist (every digit flexed) brings each fingertip to the palm; spread alone does not.
    forearm = frames[:, rig.wrist_parent[0]]
    flat = rig.keypoints(forearm, rig.local_rotations(torch.zeros(1, 3), torch.zeros(1, 5, 4)))[0]
    fist = torch.tensor(np.radians([[40, 0, 50, 60]] + [[85, 0, 100, 70]] * 4), dtype=torch.float32)[None]
    curled = rig.keypoints(forearm, rig.local_rotations(torch.zeros(1, 3), fist))[0]
    palm = (flat[0] + flat[[5, 9, 13, 17]].mean(0)) / 2
    tips = [4, 8, 12, 16, 20]
    assert ((curled[tips] - palm).norm(dim=-1) < 0.45 * (flat[tips] - palm).norm(dim=-1)).all()


def test_known_finger_poses_are_recovered_from_their_keypoints(body, skeleton):
    """Synthetic hands (both sides, random wrist, digits within the limits, seen from anywhere):
    given their own keypoints, the fit finds each finger bone's rotation."""
    rest, frames = skeleton
    camera = Camera.for_image(800, 800)
    K = torch.tensor(camera.K, dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    lo, hi = H.digit_limits()
    targets, truths = [], []
    for i in range(8):
        rig = H.HandRig.build(body, rest.bone_poses[0], rest.bone_tails[0], H.SIDES[i % 2])
        forearm = frames[0, rig.wrist_parent[0]]
        truth = rig.local_rotations((torch.rand(1, 3, generator=gen) - 0.5),
                                    lo + (hi - lo) * torch.rand(1, 5, 4, generator=gen))[0]  # fmt: skip
        rotation = roma.random_rotmat(generator=gen)
        kp = rig.keypoints(forearm[None], truth[None])[0] @ rotation.T
        translation = torch.tensor([0.0, 0.0, 0.6]) - kp[0]
        kp = kp + translation
        det = np.concatenate([project(kp, K).numpy(), np.ones((21, 1))], 1)
        targets.append(H.HandTarget(rig, forearm, rotation, translation, torch.zeros(3), det,
                                    (kp - kp.mean(0)).numpy()))  # fmt: skip
        truths.append(truth)
    slots = targets[0].rig.phalanx_slots

    def errors(options: H.HandFitOptions) -> tuple[np.ndarray, list[H.FittedHand]]:
        fitted = H.fit_hands(targets, camera, options)
        return np.concatenate([np.degrees(roma.rotmat_geodesic_distance(torch.tensor(f.rotations)[slots],
                                                                         t[slots]).numpy())
                               for f, t in zip(fitted, truths)]), fitted  # fmt: skip

    # Exact keypoints need no pull towards the relaxed hand: the fit finds the pose.
    exact, fitted = errors(H.HandFitOptions(relaxed_weight=0.05))
    assert np.median(exact) < 5.0 and np.percentile(exact, 90) < 15.0, np.round(exact, 1)
    assert all(f.reprojection_error < 0.03 for f in fitted)
    # The default pull (for MediaPipe's noisy keypoints) bends these poses, drawn over the whole
    # range of each joint, somewhat towards a relaxed hand: about 13 degrees median here, against
    # 23 for the relaxed hand itself, which ignores the keypoints.
    default, _ = errors(H.HandFitOptions())
    assert np.median(default) < 16.0, np.round(default, 1)
    relaxed = [H.relaxed_rotations(t.rig, torch.zeros(3))[slots] for t in targets]
    relaxed = torch.cat([roma.rotmat_geodesic_distance(r, t[slots]) for r, t in zip(relaxed, truths)])
    relaxed = np.degrees(relaxed.numpy())
    assert np.median(default) < 0.75 * np.median(relaxed), (np.median(default), np.median(relaxed))


def test_bend_angles_read_a_straight_and_a_bent_finger():
    straight = np.zeros((21, 3))
    for d in range(5):
        straight[4 * d + 1 : 4 * d + 5] = [[d * 0.02, 0.03 * (k + 1), 0] for k in range(4)]
    angles = H.bend_angles(straight)
    assert np.allclose(np.degrees(angles[1:, 2:]), 0, atol=1e-4)
    bent = straight.copy()
    bent[8] = bent[7] + [0, 0, 0.03]  # the index's last bone at a right angle
    assert math.isclose(np.degrees(H.bend_angles(bent)[1, 3]), 90, abs_tol=1e-3)


def test_photo_hands_are_fitted_and_reproject_onto_the_detected_ones(reconstructor, tmp_path):
    from inference.io.result import ReconResult

    result = reconstructor.reconstruct(load_image(PERSON), name=str(PERSON))
    (p,) = result.people
    assert p.frame_hands_fitted[0].all()  # both hands are in view and raised
    path = result.save(tmp_path / "r.npz")
    again = ReconResult.load(path).people[0]
    for s in range(2):
        det = again.frame_hand_keypoints2d[0, s]
        fit = project_np(again.frame_hand_keypoints3d_cam[0, s].astype(np.float64), result.camera_K)
        size = H.hand_size(det)
        assert 15 < size < 100 and (det[:, 2] > 0).all()
        shape_error = np.linalg.norm((fit - fit[0]) - (det[:, :2] - det[0, :2]), axis=1)[1:] / size
        assert np.median(shape_error) < 0.12, np.round(shape_error, 3)
        # The fingers are posed: not the rest pose and not the relaxed one.
        names = list(result.bone_names)
        q = again.bone_rotations[0, [names.index(f"finger{d}-{k}.{'LR'[s]}") for d in range(1, 6) for k in (1, 2, 3)]]
        angle = 2 * np.degrees(np.arccos(np.clip(np.abs(q[:, 0]), 0, 1)))
        assert angle.max() > 10


def test_a_hidden_hand_is_relaxed_and_reported(reconstructor):
    """The person's right hand painted over: it is not found, gets the relaxed hand and the result
    says so; the left is still fitted."""
    rgb = load_image(PERSON).copy()
    first = reconstructor.reconstruct(rgb, name="person")
    (p,) = first.people
    right = p.frame_hand_keypoints2d[0, 1]
    x0, y0 = right[:, :2].min(0) - 12
    x1, y1 = right[:, :2].max(0) + 12
    rgb[int(y0) : int(y1), int(x0) : int(x1)] = 128
    result = reconstructor.reconstruct(rgb, name="person, right hand hidden")
    (p,) = result.people
    assert p.frame_hands_fitted[0].tolist() == [True, False]
    assert (p.frame_hand_keypoints2d[0, 1] == 0).all()
    assert any("right hand" in n for n in result.notes), result.notes
    names = list(result.bone_names)
    rig = H.HandRig.build(reconstructor.body, torch.tensor(p.bone_rest_matrices), torch.tensor(p.bone_rest_tails), "R")
    wrist = roma.unitquat_to_rotvec(torch.tensor(p.bone_rotations[0, names.index("wrist.R")][[1, 2, 3, 0]]))
    relaxed = roma.rotmat_to_unitquat(H.relaxed_rotations(rig, wrist.float()))[:, [3, 0, 1, 2]].numpy()
    got = p.bone_rotations[0, rig.bones[0].numpy()]
    assert np.allclose(np.abs((got * relaxed).sum(-1)), 1, atol=1e-4)


def test_hand_detector_finds_the_hand_at_a_wrist(reconstructor):
    from inference.detect.mediapipe_hands import CROP_PX, HandDetector, wrist_crop

    rgb = load_image(PERSON)
    det = reconstructor.detector.detect(rgb)
    detector = HandDetector()
    try:
        wrist, elbow = det.keypoints2d[9, :2], det.keypoints2d[7, :2]
        hand = detector.detect(rgb, wrist_crop(wrist, elbow, 0.4 * np.linalg.norm(wrist - elbow)), wrist)
        assert hand is not None and hand.keypoints2d.shape == (21, 3) and hand.landmarks3d.shape == (21, 3)
        assert np.linalg.norm(hand.keypoints2d[0, :2] - wrist) < 0.5 * np.linalg.norm(wrist - elbow)
        # A crop of empty sky finds nothing.
        assert detector.detect(rgb, (30.0, 30.0, 40.0), np.array([30.0, 30.0])) is None
        assert CROP_PX >= 192
        # Both wrists searched at once (two landmarkers on two threads) find what one at a time does.
        searches = [(wrist_crop(det.keypoints2d[w, :2], det.keypoints2d[e, :2],
                                0.4 * np.linalg.norm(det.keypoints2d[w, :2] - det.keypoints2d[e, :2])),
                     det.keypoints2d[w, :2]) for w, e in ((9, 7), (10, 8))] * 2  # fmt: skip
        together = detector.detect_many(rgb, searches)
        alone = [detector.detect(rgb, *search) for search in searches]
        assert [h is None for h in together] == [h is None for h in alone] and together[0] is not None
        for a, b in zip(together, alone):
            if a is not None:
                assert np.allclose(a.keypoints2d, b.keypoints2d, atol=1e-3)
    finally:
        detector.close()
