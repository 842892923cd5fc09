"""Real 3D accuracy on the multi-view kit: ``python -m benchmarks real [--kit DIR] [--clips]``.

The kit (``../shared/realbench``; its README says how it was made) holds 80 photos of two
people (4 calibrated cameras x 20 moments), their four 100-frame clips (60 fps) and
triangulated 3D joints in every camera's frame, with a scorer (``eval.py``). This runs the
photo pipeline on every photo (the most prominent person, as a user gets it) and, with
``--clips``, the clip pipeline on every clip, writes the kit's prediction files, scores them
with the kit's own scorer and reports PA-MPJPE and root-aligned MPJPE (mm): mean, median and
standard error, overall, per camera and per person, with people found, missed, false positives
and mirrored bodies; for clips also the jitter. ``--compare OLD.json`` adds the paired
difference to an earlier report (person by person: the fair way to compare two methods on
this kit, whose ground truth has ~2 cm of noise of its own).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from inference import keypoints as kpl
from inference.camera import project_np

ROOT = Path(__file__).resolve().parent.parent
# The kit: $HUMAN_RECON_REALBENCH, else ../shared/realbench beside the repository.
DEFAULT_KIT = Path(os.environ.get("HUMAN_RECON_REALBENCH") or ROOT.parent / "shared" / "realbench")
# The kit's 13 joints in our keypoint layout: COCO-17 without the eyes and ears.
KIT_JOINTS = [kpl.NAMES.index(n) for n in (
    "nose", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")]  # fmt: skip
CAMERAS = ("cam01", "cam02", "cam03", "cam04")
GT_FRAMES = range(0, 100, 5)  # clip frames with ground truth
METRICS = ("pa_mpjpe_mm", "mpjpe_mm")


def _check_kit(kit: Path) -> None:
    from inference.errors import ReconError

    if not (kit / "eval.py").is_file() or not (kit / "frames").is_dir():
        raise ReconError("not_found", f"{kit} is not the multi-view kit (no eval.py and frames/); pass --kit DIR.")


def _prediction(joints3d: np.ndarray, K: np.ndarray, offsets: np.ndarray | None, box: np.ndarray | None = None
                ) -> dict:  # fmt: skip
    """One person in the kit's format from the body model's (17+, 3) camera-space keypoints,
    moved to where MediaPipe puts them (``offsets``: the body model's ``detector_offsets``): the
    kit's joints are MediaPipe's keypoints triangulated. ``joints3d_body`` keeps the body model's
    own keypoints (``score(..., own=True)``)."""
    own = np.asarray(joints3d, np.float64)
    kit = kpl.in_detector_convention(own, None if offsets is None else offsets[: len(own)])[KIT_JOINTS]
    person = {"joints3d_cam": kit.round(5).tolist(), "joints2d": project_np(kit, K).round(2).tolist(),
              "joints3d_body": own[KIT_JOINTS].round(5).tolist()}  # fmt: skip
    if box is not None:
        person["box2d"] = [round(float(v), 1) for v in box]
    return person


def predict_photos(rec, kit: Path, out_dir: Path, true_focal: bool = False, photos: str = "cam*_f*.jpg",
                   people: str | int = "all", depths: dict | None = None,
                   exif_focal: bool = False) -> dict:  # fmt: skip
    """Run the photo pipeline on the kit's photos (``photos``: a glob); one prediction file each,
    with every person reconstructed (``people``: as ``--people``). ``depths`` gets, per photo,
    each prediction's root depth (m). ``true_focal``: the pipeline is given the cameras' focal
    lengths; ``exif_focal``: it reads them from copies of the photos that record them as a
    camera does (``with_exif_focal``)."""
    from inference.errors import ReconError

    calib = json.loads((kit / "calibration.json").read_text())["cameras"]
    seconds, failed, counts = [], {}, []
    files = sorted((kit / "frames").glob(photos))
    if not files:
        raise ReconError("not_found", f"No photo of the kit matches {photos!r}; pass a glob such as 'cam02_*.jpg'.")
    copies = tempfile.TemporaryDirectory() if exif_focal else None
    for photo in files:
        focal = float(calib[photo.name[:5]]["K"][0][0]) if true_focal else None
        source = with_exif_focal(photo, calib[photo.name[:5]], Path(copies.name)) if copies else photo
        t = time.perf_counter()
        try:
            r = rec.reconstruct(source, focal_px=focal, name=photo.name, people=people)
            found = [_prediction(p.keypoints3d_cam, r.camera_K, rec.body.detector_offsets, p.person_box)
                     for p in r.people]
            if depths is not None:
                depths[photo.stem] = [float(kpl.pelvis(p.keypoints3d_cam)[0, 2]) for p in r.people]
        except ReconError as err:
            found, failed[photo.name] = [], err.code
        seconds.append(time.perf_counter() - t)
        counts.append(len(found))
        (out_dir / f"{photo.stem}.json").write_text(json.dumps({"people": found}))
    if copies:
        copies.cleanup()
    by_count = {str(n): round(statistics.median([s for s, c in zip(seconds, counts) if c == n]), 3)
                for n in sorted(set(counts))}  # fmt: skip
    return {"photos": len(seconds), "failed": failed, "seconds_per_photo": round(statistics.median(seconds), 3),
            "seconds_per_photo_by_people": by_count}  # fmt: skip


def with_exif_focal(photo: Path, camera: dict, folder: Path) -> Path:
    """A copy of the JPEG ``photo`` in ``folder`` whose EXIF records the camera's focal length as
    phones and cameras do (the 35 mm equivalent, whole millimetres); the pixels stay the same
    (the EXIF segment is inserted after the JPEG's start marker, nothing is re-encoded)."""
    from PIL import Image

    from inference.lens import FULL_FRAME_DIAGONAL_MM

    exif = Image.Exif()
    diagonal = math.hypot(*camera["image_size"])
    exif.get_ifd(0x8769)[0xA405] = round(camera["K"][0][0] / diagonal * FULL_FRAME_DIAGONAL_MM)
    payload = exif.tobytes()  # b"Exif\0\0" and the TIFF structure: an APP1 segment's body
    data = photo.read_bytes()
    dest = folder / photo.name
    dest.write_bytes(data[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + data[2:])
    return dest


def predict_clips(rec, kit: Path, out_dir: Path, tracks: dict, track_model: str | None = None,
                  step: int = 1, focal_mm: float | None = None) -> dict:  # fmt: skip
    """Run the clip pipeline on every clip; one prediction file per frame with ground truth,
    holding each person followed who is in that frame (``tracks`` gets, per file, which person
    each prediction is). Also each person's smoothness (``clip.motion_metrics``).
    ``track_model``: the model that follows people (``--track-model``; None: the default);
    ``step``: every how many of the clip's frames to read (2: the 60 fps clips as 30 fps ones,
    scored on the ground-truth frames they hold)."""
    from inference.errors import ReconError
    from inference.io.frames import open_frames
    from inference.sequence import SequenceOptions, SequenceReconstructor

    options = SequenceOptions(focal_mm=focal_mm)
    if track_model is not None:
        options.detector = track_model

    from .clip import motion_metrics

    out = {}
    for cam in CAMERAS:
        source = open_frames(kit / "clips" / f"{cam}.mp4", step=step)
        t = time.perf_counter()
        try:
            r = SequenceReconstructor(rec, options).run(source, out_fps=source.fps / step)
        except ReconError as err:
            out[cam] = {"failed": err.code}
            continue
        secs = time.perf_counter() - t
        index = {int(f): i for i, f in enumerate(r.frame_indices)}
        for f in (f for f in GT_FRAMES if f % step == 0):
            here = [k for k, p in enumerate(r.people) if f in index and p.frame_present[index[f]]]
            found = [_prediction(r.people[k].frame_keypoints3d_cam[index[f]], r.camera_K, rec.body.detector_offsets)
                     for k in here]
            tracks[f"{cam}_f{f:03d}"] = here
            (out_dir / f"{cam}_f{f:03d}.json").write_text(json.dumps({"people": found}))
        out[cam] = {"frames": len(r.frame_indices), "people": len(r.people),
                    "frames_per_second": round(len(r.frame_indices) / secs, 2),
                    "per_person": [{"frames_present": int(p.frame_present.sum()), "frames_filled": int(p.frames_filled)}
                                   | motion_metrics(p, r.fps) for p in r.people]}  # fmt: skip
    return out


def both_found(records: list[dict]) -> dict:
    """Photos whose ground truth has two people, and in how many both were found."""
    by_image: dict[str, list[bool]] = {}
    for r in records:
        by_image.setdefault(r["image"], []).append(bool(r["found"]))
    two = [v for v in by_image.values() if len(v) == 2]
    return {"photos_with_two": len(two), "both_found": sum(all(v) for v in two)}


def depth_order(kit: Path, records: list[dict], depths: dict) -> dict:
    """Of the photos where both people were found, in how many the nearer one (the ground truth's
    pelvis depth in that camera) is the nearer one in the reconstruction too; only pairs whose
    true depths differ by more than 0.2 m count (closer pairs have no clear order)."""
    gt = json.loads((kit / "gt.json").read_text())["frames"]
    pairs = right = 0
    by_image: dict[str, list[dict]] = {}
    for r in records:
        if r["found"]:
            by_image.setdefault(r["image"], []).append(r)
    for image, recs in by_image.items():
        if len(recs) != 2:
            continue
        cam, frame = image[:5], str(int(image.split("_f")[1]))
        true = []
        for r in recs:
            joints = gt[frame]["people"][r["person"]]["cams"][cam]
            hips = [joints[7], joints[8]]
            if any(h is None for h in hips):
                break
            true.append((hips[0][2] + hips[1][2]) / 2)
        if len(true) != 2 or abs(true[0] - true[1]) < 0.2:
            continue
        ours = [depths[Path(image).stem][r["pred"]] for r in recs]
        pairs += 1
        right += (true[0] < true[1]) == (ours[0] < ours[1])
    return {"pairs": pairs, "right": right}


def identity_switches(records: list[dict], tracks: dict) -> dict:
    """Per clip: how often a followed person's match changes from one ground-truth person to the
    other over the frames with ground truth, and how many followed people each ground-truth
    person was split across (1 is right)."""
    out = {}
    for cam in CAMERAS:
        recs = sorted((r for r in records if r["cam"] == cam and r["found"]), key=lambda r: r["image"])
        matched: dict[int, list[str]] = {}
        for r in recs:
            matched.setdefault(tracks[Path(r["image"]).stem][r["pred"]], []).append(r["person"])
        switches = sum(sum(a != b for a, b in zip(seq, seq[1:])) for seq in matched.values())
        split = {g: len({t for t, seq in matched.items() if g in seq}) for g in sorted({r["person"] for r in recs})}
        out[cam] = {"switches": switches, "tracks_per_person": split}
    return out


def score(kit: Path, pred_dir: Path, own: bool = False) -> dict:
    """The kit's scorer on ``pred_dir``: its summary and its per-person records. ``own``: the
    body model's own keypoints scored instead (``joints3d_body``; the people matched as before)."""
    with tempfile.TemporaryDirectory() as tmp:
        if own:
            for f in pred_dir.glob("*.json"):
                people = json.loads(f.read_text())["people"]
                for p in people:
                    p["joints3d_cam"] = p["joints3d_body"]
                (Path(tmp) / f.name).write_text(json.dumps({"people": people}))
            pred_dir = Path(tmp)
        out = Path(tmp) / "scores.json"
        subprocess.run([sys.executable, str(kit / "eval.py"), str(pred_dir), "--json", str(out)], check=True,
                       capture_output=True, text=True)  # fmt: skip
        return json.loads(out.read_text())


# The limb chains in the kit's joint order (shoulder, elbow, wrist; hip, knee, ankle): their two
# segments are what the add-on's Flip in depth turns (addon/human_recon/posefix.py).
FLIP_CHAINS = [(1, 3, 5), (2, 4, 6), (7, 9, 11), (8, 10, 12)]


def _pa_mm(pred: np.ndarray, truth: np.ndarray) -> float:
    """PA-MPJPE (mm) of one person over the joints the truth has (similarity Procrustes)."""
    ok = ~np.isnan(truth[:, 0])
    x, y = pred[ok] - pred[ok].mean(0), truth[ok] - truth[ok].mean(0)
    u, s, vt = np.linalg.svd(x.T @ y)
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    r = u @ d @ vt
    scale = (s * np.diag(d)).sum() / (x**2).sum()
    return float(np.linalg.norm(scale * x @ r - y, axis=1).mean() * 1000.0)


def flipped_in_depth(joints: np.ndarray, chain: tuple[int, ...], k: int) -> np.ndarray:
    """``joints`` (camera frame, the camera at the origin) with segment ``k`` of ``chain`` turned
    the other way in depth as Flip in depth turns it: its end to the other point of its camera
    ray at the segment's length from its start, the joints further on each on their own ray a
    bone's length from the joint before (the root nearer where it was)."""
    out = joints.copy()
    a, b = chain[k], chain[k + 1]
    u = joints[b] / np.linalg.norm(joints[b])
    out[b] = u * (2.0 * joints[a] @ u - joints[b] @ u)
    for i in range(k + 1, len(chain) - 1):
        p, q = chain[i], chain[i + 1]
        u = joints[q] / np.linalg.norm(joints[q])
        mid = out[p] @ u
        half = math.sqrt(max(np.sum((joints[q] - joints[p]) ** 2) - np.sum((u * mid - out[p]) ** 2), 0.0))
        out[q] = u * min((mid - half, mid + half), key=lambda t: abs(t - joints[q] @ u))
    return out


def flip_reach(kit: Path, pred_dir: Path, people: list[dict]) -> dict:
    """What an artist can mend with Flip in depth (an oracle): each found person's limb
    segments, root first, turned the other way where that lowers their PA-MPJPE by over 1 mm,
    as one who sees the wrong bend would. Not what the pipeline does: the truth chooses."""
    gt = json.loads((kit / "gt.json").read_text())["frames"]
    after, flips = [], []
    for rec in people:
        if not rec["found"]:
            continue
        image = rec["image"]
        truth = gt[str(int(image[-3:]))]["people"][rec["person"]]["cams"][image[:5]]
        truth = np.array([[np.nan] * 3 if j is None else j for j in truth], np.float64)
        pred = json.loads((pred_dir / f"{image}.json").read_text())["people"][rec["pred"]]
        joints, n = np.array(pred["joints3d_cam"], np.float64), 0
        error = _pa_mm(joints, truth)
        for chain in FLIP_CHAINS:
            for k in range(len(chain) - 1):
                turned = flipped_in_depth(joints, chain, k)
                if (turned_error := _pa_mm(turned, truth)) < error - 1.0:
                    joints, error, n = turned, turned_error, n + 1
        after.append(error)
        flips.append(n)
    return {"pa_mpjpe_mm": _stats(after), "people_helped": sum(n > 0 for n in flips), "flips": sum(flips),
            "most_flips_per_person": max(flips, default=0)}  # fmt: skip


def _stats(values: list[float]) -> dict:
    n = len(values)
    if not n:
        return {"n": 0}
    se = statistics.stdev(values) / math.sqrt(n) if n > 1 else float("nan")
    return {"n": n, "mean": round(statistics.mean(values), 1), "median": round(statistics.median(values), 1),
            "se": round(se, 1)}  # fmt: skip


def summarise(scores: dict) -> dict:
    """Mean, median and standard error per group (overall, each camera, each person), with the
    scorer's counts (found, missed, false positives, mirrored)."""
    people = scores["people"]
    groups = {"overall": people} | {c: [p for p in people if p["cam"] == c] for c in CAMERAS}
    for name in sorted({p["person"] for p in people}):
        groups[name] = [p for p in people if p["person"] == name]
    out = {}
    for g, recs in groups.items():
        found = [r for r in recs if r["found"]]
        s = scores["summary"].get(g, {})
        out[g] = {"gt_people": len(recs), "found": len(found), "missed": len(recs) - len(found),
                  "false_positives": s.get("false_positives"),
                  "mirrored": sum(r["mirrored"] for r in found)}  # fmt: skip
        out[g] |= {m: _stats([r[m] for r in found]) for m in METRICS}
    return out


def paired_difference(new: list[dict], old: list[dict]) -> dict:
    """New minus old, person by person, over the people both found: mean, median, standard error."""
    before = {(r["image"], r["person"]): r for r in old if r["found"]}
    both = [(r, before[(r["image"], r["person"])]) for r in new if r["found"] and (r["image"], r["person"]) in before]
    return {m: _stats([a[m] - b[m] for a, b in both]) for m in METRICS}


def compared(new: dict, old: dict, kind: str) -> dict:
    """``paired_difference`` of two reports' ``kind`` ("photo" or "clip") people: the joints
    scored in the kit's convention, and the body model's own keypoints (``body_keypoints``). An
    older report, without ``{kind}_people_body_keypoints``, scored only the latter."""
    own = f"{kind}_people_body_keypoints"
    out = {"body_keypoints": paired_difference(new[own], old.get(own, old[f"{kind}_people"]))}
    if own in old:
        out |= paired_difference(new[f"{kind}_people"], old[f"{kind}_people"])
    return out


def run_real_benchmark(kit: str | Path | None = None, clips: bool = False, true_focal: bool = False,
                       cache_dir: str | None = None, compare: str | None = None, photos: str = "cam*_f*.jpg",
                       reconstructor=None, people: str | int = "all",
                       track_model: str | None = None, hands: bool = True, clip_step: int = 1,
                       exif_focal: bool = False, clip_focal_mm: float | None = None) -> dict:  # fmt: skip
    """``true_focal`` / ``exif_focal``: the photos' focal lengths given / recorded in EXIF
    (``predict_photos``); ``clip_focal_mm``: the clips' lens given (35 mm equivalent), as a user
    who knows their camera gives it (``--focal-mm``);
    ``photos``: a glob of the kit's photos to run (the others count as missed);
    ``reconstructor``: a warm ``Reconstructor`` to use instead of a new one; ``people``: whom to
    reconstruct in each photo (as ``--people``); ``track_model``: the clips' ``--track-model``;
    ``clip_step``: the clips read at every this-many-th frame (2: at 30 fps; frames without ground
    truth then are not scored, not counted as missed);
    ``hands``: fit the fingers (``--hands``)."""
    from inference import __version__
    from inference.pipeline import Reconstructor
    from inference.sequence import SequenceOptions

    kit = Path(kit) if kit else DEFAULT_KIT
    _check_kit(kit)
    old = json.loads(Path(compare).read_text()) if compare else None
    t0 = time.perf_counter()
    rec = reconstructor or Reconstructor(cache_dir=cache_dir, hands=hands)
    report: dict = {"benchmark": "real", "version": __version__, "kit": str(kit), "true_focal": true_focal,
                    "exif_focal": exif_focal, "clip_focal_mm": clip_focal_mm, "hands": hands}  # fmt: skip
    try:
        if photos:  # "": clips only
            with tempfile.TemporaryDirectory() as tmp:
                depths: dict = {}
                report["photo_run"] = predict_photos(rec, kit, Path(tmp), true_focal, photos, people, depths,
                                                     exif_focal)  # fmt: skip
                scores = score(kit, Path(tmp))
                own = score(kit, Path(tmp), own=True)
                report["photo_flip_reach"] = flip_reach(kit, Path(tmp), scores["people"])
            report["photos"] = summarise(scores)
            report["photos_body_keypoints"] = summarise(own)["overall"]
            report["photo_people_body_keypoints"] = own["people"]
            report["photo_both_found"] = both_found(scores["people"])
            report["photo_depth_order"] = depth_order(kit, scores["people"], depths)
            report["photo_people"] = scores["people"]
            report["photo_false_positives"] = scores["false_positives"]
        if clips:
            with tempfile.TemporaryDirectory() as tmp:
                tracks: dict = {}
                report["clip_run"] = predict_clips(rec, kit, Path(tmp), tracks, track_model, clip_step, clip_focal_mm)
                report["clip_track_model"] = track_model or SequenceOptions().detector
                report["clip_step"] = clip_step
                scores, own = score(kit, Path(tmp)), score(kit, Path(tmp), own=True)
                for s in (scores, own):
                    s["people"] = [p for p in s["people"] if int(p["image"][-3:]) % clip_step == 0]
            report["clips"] = summarise(scores)
            report["clips_body_keypoints"] = summarise(own)["overall"]
            report["clip_people_body_keypoints"] = own["people"]
            report["clip_identities"] = identity_switches(scores["people"], tracks)
            report["clip_people"] = scores["people"]
            report["clip_false_positives"] = scores["false_positives"]
    finally:
        if reconstructor is None:
            rec.close()
    if old:
        report["compared_with"] = compare
        for kind, run in (("photo", photos), ("clip", clips)):
            if run and f"{kind}_people" in old:
                report[f"{kind}s_vs_old"] = compared(report, old, kind)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report
