"""Person detection on real photos."""

from __future__ import annotations

import numpy as np
import pytest

from inference.errors import ReconError
from inference.io.images import load_image

from .conftest import PERSON, opencv_photo


def test_person_found_with_box_keypoints_and_mask(reconstructor):
    rgb = load_image(PERSON)
    det = reconstructor.detector.detect(rgb)
    x0, y0, x1, y1 = det.box
    # The jumping man fills most of the crop's height.
    assert det.height > 0.6 * rgb.shape[0]
    assert det.keypoints2d.shape == (21, 3) and det.landmarks3d.shape == (21, 3)
    vis = det.keypoints2d[:, 2] > 0.5
    assert vis.sum() >= 15
    inside = (det.keypoints2d[vis, 0] >= x0 - 2) & (det.keypoints2d[vis, 0] <= x1 + 2)
    assert inside.all()
    mask = det.mask > 0.5
    assert mask.shape == rgb.shape[:2] and 0.05 < mask.mean() < 0.5
    # Arms are raised: both wrists above the nose.
    assert det.keypoints2d[9, 1] < det.keypoints2d[0, 1] and det.keypoints2d[10, 1] < det.keypoints2d[0, 1]


def test_small_person_found_through_crops(reconstructor):
    # Shrink the person to a small part of a big canvas: the whole-image pass misses, crops find it.
    import cv2

    rgb = load_image(PERSON)
    canvas = np.full((1400, 1800, 3), 110, np.uint8)
    small = cv2.resize(rgb, (230, 270))  # a fifth of the frame's height
    canvas[900:1170, 1500:1730] = small
    assert reconstructor.detector.detect_whole(canvas) is None  # the whole-image pass misses it
    det = reconstructor.detector.detect(canvas)
    cx = (det.box[0] + det.box[2]) / 2
    assert 1500 < cx < 1730 and det.box[1] > 880


def test_no_person_is_reported():
    from inference.detect import PoseDetector

    det = PoseDetector()
    with pytest.raises(ReconError) as exc:
        det.detect(load_image(opencv_photo("fruits.jpg")))
    assert exc.value.code == "no_person"


def test_a_dithered_palette_picture_still_shows_its_person(tmp_path, reconstructor):
    """The bundled photo saved as a GIF-style web-palette PNG (dithered): the landmarker finds no
    one in its pixel noise, so the picture is read again smoothed."""
    from PIL import Image

    from inference.detect import find_people

    path = tmp_path / "web_palette.png"
    Image.open(PERSON).convert("P", palette=Image.Palette.WEB, dither=Image.Dither.FLOYDSTEINBERG).save(path)
    rgb = load_image(path)
    assert not reconstructor.detector.detect_all(rgb)  # the plain reading finds nobody
    (person,) = find_people(reconstructor.detector, rgb)
    cx = (person.box[0] + person.box[2]) / 2
    assert 150 < cx < 320 and person.height > 350  # the person, standing in the middle
    assert person.mask[int(person.box[1] + 0.4 * person.height), int(cx)] > 0.5


def test_keypoints_move_to_annys_convention_symmetrically(reconstructor):
    """MediaPipe's keypoints, moved to where Anny's lie: its hips sit higher and narrower than
    Anny's, so they move down the torso and apart; the shift is the same for the mirrored labels."""
    from inference.detect import mirrored, to_body_convention
    from inference.keypoints import body_axes_2d

    det = reconstructor.detector.detect(load_image(PERSON))
    offsets = reconstructor.body.detector_offsets
    moved = to_body_convention(det, offsets)
    up, width = body_axes_2d(det.keypoints2d)
    shift = moved.keypoints2d[:, :2] - det.keypoints2d[:, :2]
    hips = shift[[11, 12]].mean(0)
    assert -0.05 < hips @ up / (up @ up) < -0.02  # down the torso by 2-5% of it
    assert (shift[12] - shift[11]) @ width / (width @ width) > 0.05  # the hips apart
    assert np.abs(shift).max() < 0.2 * np.linalg.norm(up)  # a correction, not a new pose
    np.testing.assert_allclose(
        to_body_convention(mirrored(det), offsets).keypoints2d, mirrored(moved).keypoints2d, atol=1e-4
    )
    assert to_body_convention(det, None) is det
    np.testing.assert_array_equal(moved.keypoints2d[:, 2], det.keypoints2d[:, 2])


def test_a_fitted_bodys_keypoints_move_back_to_the_detectors_convention_in_3d(reconstructor):
    """The bundled photo's fitted keypoints in 3D, moved to where MediaPipe puts them (how the
    real multi-view kit's joints are scored): projected, they undo the 2D shift to Anny's
    convention; the hips move up and together, as MediaPipe's sit higher and narrower."""
    from inference.camera import project_np
    from inference.keypoints import HIPS, body_axes_2d, in_detector_convention

    offsets = reconstructor.body.detector_offsets[:17]
    result = reconstructor.reconstruct(PERSON)
    person = result.people[0]
    own = person.keypoints3d_cam
    moved = in_detector_convention(own, offsets)
    np.testing.assert_array_equal(in_detector_convention(own, None), own)
    uv_own, uv_moved = project_np(own, result.camera_K), project_np(moved, result.camera_K)
    up, width = body_axes_2d(uv_moved)
    back = uv_moved - offsets[:, :1] * up - offsets[:, 1:] * width  # detect.to_body_convention's shift
    assert np.abs(back - uv_own).max() < 0.015 * np.linalg.norm(up)  # perspective: about 1%
    hip_shift = (moved[HIPS] - own[HIPS]).mean(0)
    torso = own[[5, 6]].mean(0) - own[HIPS].mean(0)
    assert 0.02 < hip_shift @ torso / (torso @ torso) < 0.05  # up the torso by 2-5% of it
    hip_width = lambda k: np.linalg.norm(k[HIPS[1]] - k[HIPS[0]])  # noqa: E731
    assert 0.8 * hip_width(own) < hip_width(moved) < 0.97 * hip_width(own)  # and closer together


def _frame_of(clip_name: str, index: int) -> np.ndarray:
    """Frame ``index`` of a test clip in tests/data (fetched by scripts/fetch_test_data.sh)."""
    from inference.io.frames import open_frames

    from .conftest import ROOT

    clip = ROOT / "tests" / "data" / clip_name
    if not clip.exists():
        pytest.skip("run scripts/fetch_test_data.sh for the test clips")
    ((_, rgb, _),) = list(open_frames(clip, start=index, end=index + 1))
    return rgb


def _demo_frame(index: int) -> np.ndarray:
    return _frame_of("demo.mp4", index)


def test_two_people_from_one_detector_call(reconstructor):
    """Frame 60 of the sports2d demo: the man on the box and the woman walking on the right.
    One call finds both, each with their own box, keypoints and mask, most prominent first."""
    people = reconstructor.detector.detect_all(_demo_frame(60))
    assert len(people) == 2, [p.box for p in people]
    centres = sorted((p.box[0] + p.box[2]) / 2 for p in people)
    assert centres[1] - centres[0] > 300  # two places, not one person twice
    for p in people:
        assert p.keypoints2d.shape == (21, 3) and (p.keypoints2d[:, 2] > 0.5).sum() >= 10
        assert (p.mask > 0.5).sum() > 1000
    a, b = people[0].mask > 0.5, people[1].mask > 0.5
    assert (a & b).sum() < 0.1 * min(a.sum(), b.sum())  # each mask is its own person's
    from inference.detect import prominence

    assert prominence(people[0]) >= prominence(people[1])


def test_several_small_people_are_found_and_the_result_says_so(reconstructor):
    """OpenCV's vtest.avi (a real street scene): people a sixth of the frame high, too small for
    the whole-image pass, are found by the crop search; with ``people="largest"`` the most
    prominent one is reconstructed and the result says who was left out and why."""
    from inference.io.frames import open_frames

    ((_, rgb, _),) = list(open_frames(opencv_photo("vtest.avi"), start=600, end=601))
    result = reconstructor.reconstruct(rgb, name="vtest#600", people="largest")
    assert result.people_found >= 2 and len(result.people) == 1
    skipped = [n for n in result.notes if "skipped" in n]
    assert len(skipped) == result.people_found - 1, result.notes
    (p,) = result.people
    assert p.silhouette_iou > 0.5 and p.person_box[3] - p.person_box[1] < 0.35 * rgb.shape[0]


def test_bundles_are_the_documented_ones():
    """The committed .task bundles are what scripts/build_mediapipe_bundles.py rebuilds (its sha256s)."""
    import hashlib
    import importlib.util

    from inference.detect.mediapipe_hands import BUNDLE
    from inference.detect.mediapipe_pose import MODELS, WEIGHTS_DIR

    from .conftest import ROOT

    script_path = ROOT / "scripts" / "build_mediapipe_bundles.py"
    spec = importlib.util.spec_from_file_location("build_mediapipe_bundles", script_path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    for name in [*MODELS.values(), BUNDLE]:
        assert hashlib.sha256((WEIGHTS_DIR / name).read_bytes()).hexdigest() == script.OUTPUT_SHA256[name], name


def test_missing_or_damaged_bundle_gets_one_line_naming_it(tmp_path, monkeypatch):
    from inference.detect import PoseDetector, VideoPoseDetector, mediapipe_pose

    monkeypatch.setattr(mediapipe_pose, "WEIGHTS_DIR", tmp_path)
    for content, code in ((None, "detector_model_missing"), (b"not a zip", "detector_model_bad")):
        if content is not None:
            (tmp_path / "pose_landmarker_heavy.task").write_bytes(content)
        for make in (PoseDetector, VideoPoseDetector):  # the video landmarker opens at the first frame, but checks now
            with pytest.raises(ReconError) as exc:
                make("heavy")
            msg = exc.value.message
            assert exc.value.code == code and "\n" not in msg
            assert "pose_landmarker_heavy.task" in msg and "scripts/build_mediapipe_bundles.py" in msg
    with pytest.raises(ReconError) as exc:
        PoseDetector("tiny")
    assert exc.value.code == "bad_argument"


def test_a_newcomer_is_found_when_the_video_landmarker_has_no_room(reconstructor):
    """The video landmarker has room for the people followed only, and its person detector does
    not run while it is full: someone who comes in is found by the whole-frame search every
    NEWCOMER_CHECK frames, then given room and followed by the landmarker itself. Sports2d: the
    man alone on the box at frame 45, the woman walking in from the right from about frame 50."""
    from inference.detect import VideoPoseDetector
    from inference.detect.track import NEWCOMER_CHECK, Tracker
    from inference.io.frames import open_frames

    _demo_frame(45)  # skips without the clip
    from .conftest import ROOT

    frames = list(open_frames(ROOT / "tests" / "data" / "demo.mp4", start=45, end=46 + 2 * NEWCOMER_CHECK))
    video = VideoPoseDetector("heavy")
    try:
        tracker = Tracker(reconstructor.detector, video)
        index, rgb, _ = frames[0]
        (man,) = tracker.start(rgb, index / 30)
        tracker.follow(man, rgb)
        video.follow_at_most(1)  # full: room for the man alone
        came, woman, found_after = None, None, []
        for index, rgb, _ in frames[1:]:
            found, new = tracker.next(rgb, index / 30)
            if came is not None:
                found_after.append(woman in found and 0 in found)
            for d in new:  # followed as the clip pipeline does (false glimpses too: they get no room)
                pid = tracker.follow(d, rgb)
                if came is None and d.box[0] > rgb.shape[1] / 2 and d.score >= 0.8:  # her, walking in on the right
                    came, woman = tracker.frames, pid
                    assert video.max_people >= 2  # sure of her at first sight: given room at once
        assert came is not None and came <= NEWCOMER_CHECK  # found by the first search after she came in
        assert np.mean(found_after) > 0.9  # both followed from then on
    finally:
        video.close()


def test_a_glimpse_takes_no_one_back_by_look(reconstructor):
    """Someone followed for a few frames only (often a false find in foliage) has no known look:
    once lost, they take no one back by it; a person followed long enough does. On the
    sports2d clip such a glimpse took the back-flipping man when he landed."""
    from inference.detect import find_people
    from inference.detect.track import LOOK_KNOWN, REMEMBERED, Followed, Tracker, look

    rgb = _demo_frame(60)
    man, woman = sorted(find_people(reconstructor.detector, rgb), key=lambda d: d.box[0])
    tracker = Tracker(reconstructor.detector)
    glimpse, other = Followed(0, man.box.copy()), Followed(1, woman.box.copy())
    tracker.people = [glimpse, other]
    for _ in range(LOOK_KNOWN):
        other.found(woman, look(rgb, woman))
    for _ in range(LOOK_KNOWN - 1):
        glimpse.found(man, look(rgb, man))
    glimpse.missed = REMEMBERED + 1  # gone long enough that only the look could take them back
    assert glimpse.known_look is None and tracker.cost(glimpse, man, look(rgb, man)) is None
    glimpse.found(man, look(rgb, man))
    glimpse.missed = REMEMBERED + 1
    cost = tracker.cost(glimpse, man, look(rgb, man))
    assert cost is not None and cost < 0.05  # the same look: taken back
    assert tracker.cost(glimpse, woman, look(rgb, woman)) is None  # and not someone else
    # Nor is a newcomer's glimpse that the landmarker is unsure of searched for once lost (a
    # heavy crop pass each frame) until found in a few frames; a person followed from the first
    # frame always is, and so is a newcomer the landmarker is sure of (the woman, 0.9 or more).
    from dataclasses import replace

    from inference.detect.track import SEARCH_KNOWN, SURE_NEWCOMER

    tracker.frames = 5
    unsure = replace(woman, score=SURE_NEWCOMER - 0.2)
    newcomer = tracker.people[tracker.follow(unsure, rgb)]
    assert newcomer.newcomer and not newcomer.searched_when_lost
    for _ in range(SEARCH_KNOWN - 1):
        newcomer.found(unsure, look(rgb, unsure))
    assert newcomer.searched_when_lost and glimpse.searched_when_lost and not glimpse.newcomer
    assert woman.score >= SURE_NEWCOMER and tracker.people[tracker.follow(woman, rgb)].searched_when_lost


def test_overlapping_people_are_read_again_apart(reconstructor):
    """Sports2d frame 120: the woman walks past below the man on the box and their boxes
    overlap. Each is read again with the other painted over: she comes back where she was; read
    apart, the man's crop gives her again (his mask leaves her half unpainted), which is not
    taken for him, so he keeps his own reading and the two stay two. A photo of one person is
    left as the landmarker read it."""
    from inference.detect import find_people
    from inference.detect.track import SAME_PLACE, place_cost

    detector = reconstructor.detector
    rgb = _demo_frame(120)
    first, found = detector.detect_all(rgb), find_people(detector, rgb)
    assert len(found) == len(first) == 2
    moved = [place_cost(b, [a.keypoints2d]) for a, b in zip(first, found)]
    assert all(m is not None and m < SAME_PLACE for m in moved)  # each is still themselves
    man, woman = sorted(found, key=lambda d: d.box[1])  # he stands on the box, above her
    assert man.box[1] < 300 < woman.box[1]
    assert place_cost(man, [woman.keypoints2d]) > 0.15  # not her twice
    alone = _demo_frame(116)
    (a,), (b,) = detector.detect_all(alone), find_people(detector, alone)
    assert np.array_equal(a.keypoints2d, b.keypoints2d)


def test_people_the_whole_image_passes_miss_are_found_in_parts_of_the_first_box(reconstructor):
    """Sports2d frame 150: against the sun the whole-image passes give a loose skeleton over the
    scene and the walking woman, but not the man mid-jump above her; the two parts of the first
    box find him. Frame 0: the man on the box, against the sun, which the whole-image pass
    reads as a loose skeleton reaching into the box below him, is read once, clearly: the loose
    skeleton lay on his joints and is dropped."""
    from inference import keypoints as kpl
    from inference.detect import find_people
    from inference.detect.track import whole_body_seen

    detector = reconstructor.detector
    rgb = _demo_frame(150)
    in_man = lambda d: 700 < (d.box[0] + d.box[2]) / 2 < 900 and d.box[3] < 520  # noqa: E731
    assert not any(in_man(d) for d in detector.detect_all(rgb))
    found = find_people(detector, rgb)
    man = [d for d in found if in_man(d)]
    assert len(man) == 1 and whole_body_seen(man[0])
    woman = [d for d in found if d.box[0] < 450 and d.box[1] > 450]
    assert len(woman) == 1 and whole_body_seen(woman[0])

    rgb = _demo_frame(0)
    (first,) = detector.detect_all(rgb)
    assert not whole_body_seen(first)
    (man,) = find_people(detector, rgb)
    seen = man.keypoints2d[kpl.BODY, 2] > 0.5
    assert seen.sum() >= 10 and man.box[3] < 500  # his feet on the box's top, not inside it
    assert man.box[0] >= first.box[0] and man.box[2] <= first.box[2]


def test_each_person_read_once(reconstructor):
    """Sports2d frames where the landmarker gives one person two skeletons (the man against the
    sun, each read apart as him; the woman below the man on the box): each person is reported
    once. Frame 18: the man alone (she walks in at about frame 58); 126 and 186: the two."""
    from inference.detect import find_people

    detector = reconstructor.detector
    for frame, count in ((18, 1), (126, 2), (186, 2)):
        found = find_people(detector, _demo_frame(frame))
        assert len(found) == count, (frame, [p.box.round() for p in found])
        for i, a in enumerate(found):
            for b in found[:i]:
                m, n = a.mask > 0.5, b.mask > 0.5
                assert (m & n).sum() < 0.5 * (m | n).sum()


def test_the_person_in_front_is_read_apart_from_whoever_is_behind(reconstructor):
    """Pose2Sim's cam02, frame 30: the woman stands in front (seen from behind), the man behind
    her. The first pass reads one skeleton over both (her hips on his legs); read again apart,
    in front of him, she comes out where she stands, her hips clear of his box, and he is found
    as well."""
    from inference.detect import find_people
    from inference.keypoints import HIPS

    detector = reconstructor.detector
    rgb = _frame_of("pose2sim_cam02.mp4", 30)
    first = detector.detect_all(rgb)
    assert len(first) == 2
    woman = max(first, key=lambda d: d.box[3])  # feet lowest: in front
    man = next(d for d in first if d is not woman)
    assert (woman.keypoints2d[HIPS, 0] > man.box[0]).all()  # her hips on him
    people = find_people(detector, rgb)
    assert len(people) == 2
    her = min(people, key=lambda d: d.box[0])
    assert (her.keypoints2d[HIPS, 0] < man.box[0]).all() and (her.keypoints2d[HIPS, 2] > 0.5).all()
    assert any(abs(p.box - man.box).max() < 0.05 * man.height for p in people)


def test_the_man_in_front_of_the_woman_is_read_apart_from_her(reconstructor):
    """The real multi-view kit's cam03 at frame 50: the man lunges in front of the woman, and
    MediaPipe mixes her into his skeleton (its mask of him covers her). Read with her painted
    over where his mask lies nearer her skeleton, his joints come out at under 0.6x the error
    of his reading with her painted over only outside his mask (against the kit's 2D joints)."""
    import json

    from benchmarks.real import DEFAULT_KIT, KIT_JOINTS
    from inference.detect import find_people

    if not (DEFAULT_KIT / "gt.json").is_file():
        pytest.skip(f"{DEFAULT_KIT} (the multi-view kit) is not on this machine")
    truth = json.loads((DEFAULT_KIT / "gt.json").read_text())["frames"]["50"]["people"]["man"]["joints2d"]["cam03"]
    where = np.array([p if p is not None else [np.nan, np.nan] for p in truth])
    error = lambda d: np.nanmean(np.linalg.norm(d.keypoints2d[KIT_JOINTS, :2] - where, axis=1)) / d.height  # noqa: E731
    rgb = load_image(DEFAULT_KIT / "frames" / "cam03_f050.jpg")
    detector = reconstructor.detector
    first = detector.detect_all(rgb)
    him = min(first, key=error)
    others = [d for d in first if d is not him]
    assert all(him.box[3] > o.box[3] for o in others)  # in front
    plain = min(detector.detect_apart(rgb, him, others), key=error)
    found = min(find_people(detector, rgb), key=error)
    assert error(found) < 0.6 * error(plain)


def test_a_frame_read_ahead_gets_the_answer_it_would_have_got():
    """``VideoPoseDetector.read_ahead`` starts on the next frame on a worker thread while the
    tracker finishes this one; the answers are those of reading frame by frame, also where the
    landmarker starts afresh between (room for fewer people, then more: the frame read ahead
    is read again on the new landmarker). Sports2d, frames 45-58: the woman walks in at ~50."""
    from inference.detect import VideoPoseDetector
    from inference.io.frames import open_frames

    _demo_frame(45)  # skips without the clip
    from .conftest import ROOT

    frames = [(i / 30, rgb) for i, rgb, _ in open_frames(ROOT / "tests" / "data" / "demo.mp4", start=45, end=59)]
    room = {4: 1, 8: 2}  # after these frames, room for this many people

    def answers(ahead: bool) -> list[list[np.ndarray]]:
        video, out = VideoPoseDetector("full"), []
        try:
            video.follow_at_most(2)
            for k, (t, rgb) in enumerate(frames):
                out.append([d.keypoints2d for d in video.detect_all(rgb, t)])
                if ahead and k + 1 < len(frames):
                    video.read_ahead(frames[k + 1][1], frames[k + 1][0])
                    assert video.reading_ahead
                if k in room:
                    video.follow_at_most(room[k])
                    assert not video.reading_ahead  # dropped with the landmarker it was read on
        finally:
            video.close()
        return out

    plain, ahead = answers(False), answers(True)
    assert [len(p) for p in plain] == [len(a) for a in ahead]
    assert sum(len(p) > 0 for p in plain) >= 8 and max(map(len, plain)) == 2  # answers to compare
    for p, a in zip(plain, ahead):
        for kp, ka in zip(p, a):
            np.testing.assert_array_equal(kp, ka)
