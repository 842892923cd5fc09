#!/usr/bin/env bash
# Test clips, extracted into tests/data/ (not committed):
# - demo.mp4: Sports2D/Demo/demo.mp4 from the PyPI package sports2d (BSD-3-Clause): two people,
#   230 frames, 30 fps.
# - pose2sim_cam02.mp4: Pose2Sim/Demo_MultiPerson/videos/cam02.mp4 from the PyPI package pose2sim
#   (BSD-3-Clause, perfanalytics), halved to 544x960 as in ../shared/realbench: two people, 100
#   frames, 60 fps; the man turns round.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=tests/data
mkdir -p "$DEST"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# A package's wheel in $TMP, downloaded once for all the files taken from it.
wheel() {
  ls "$TMP/${1%%==*}"-*.whl >/dev/null 2>&1 ||
    .venv/bin/python -m pip download -q --disable-pip-version-check --no-deps "$1" -d "$TMP"
}
if [ ! -f "$DEST/demo.mp4" ]; then
  wheel sports2d==0.8.34
  .venv/bin/python - "$TMP" "$DEST" <<'PY'
import sys, zipfile, glob, shutil
whl = glob.glob(sys.argv[1] + "/sports2d-*.whl")[0]
with zipfile.ZipFile(whl) as z, z.open("Sports2D/Demo/demo.mp4") as src, open(sys.argv[2] + "/demo.mp4", "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
fi
if [ ! -f "$DEST/pose2sim_cam02.mp4" ]; then
  wheel pose2sim==0.10.49
  .venv/bin/python - "$TMP" "$DEST" <<'PY'
import sys, zipfile, glob, os
import cv2
whl = glob.glob(sys.argv[1] + "/pose2sim-*.whl")[0]
raw, out = os.path.join(sys.argv[1], "cam02.mp4"), os.path.join(sys.argv[2], "pose2sim_cam02.mp4")
with zipfile.ZipFile(whl) as z, open(raw, "wb") as dst:
    dst.write(z.read("Pose2Sim/Demo_MultiPerson/videos/cam02.mp4"))
cap = cv2.VideoCapture(raw)
fps, writer = cap.get(cv2.CAP_PROP_FPS) or 60.0, None
while True:
    ok, frame = cap.read()
    if not ok:
        break
    frame = cv2.resize(frame, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    if writer is None:
        writer = cv2.VideoWriter(out + ".part.mp4", cv2.VideoWriter_fourcc(*"mp4v"), fps, frame.shape[1::-1])
    writer.write(frame)
writer.release()
os.replace(out + ".part.mp4", out)  # no half-written clip if this stops midway
PY
fi
# - pose2sim_cam04_f000.jpg: the first frame of Pose2Sim/Demo_MultiPerson/videos/cam04.mp4 from the
#   same wheel, halved to 544x960 as in ../shared/realbench: a lab whose walls, windows and
#   treadmill show the lens (calibrated focal length 837.6 px at this size, Calib.qca.txt).
if [ ! -f "$DEST/pose2sim_cam04_f000.jpg" ]; then
  wheel pose2sim==0.10.49
  .venv/bin/python - "$TMP" "$DEST" <<'PY'
import sys, zipfile, glob, os
import cv2
whl = glob.glob(sys.argv[1] + "/pose2sim-*.whl")[0]
raw, out = os.path.join(sys.argv[1], "cam04.mp4"), os.path.join(sys.argv[2], "pose2sim_cam04_f000.jpg")
with zipfile.ZipFile(whl) as z, open(raw, "wb") as dst:
    dst.write(z.read("Pose2Sim/Demo_MultiPerson/videos/cam04.mp4"))
ok, frame = cv2.VideoCapture(raw).read()
assert ok, "cam04.mp4 unreadable"
frame = cv2.resize(frame, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
cv2.imwrite(out + ".part.jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
os.replace(out + ".part.jpg", out)
PY
fi
