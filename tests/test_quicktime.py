"""The lens a video's QuickTime metadata records (iPhones' ``camera.focal_length.35mm_equivalent``)."""

from __future__ import annotations

import math
import struct

import cv2
import numpy as np
import pytest

from inference.io.frames import open_frames
from inference.io.quicktime import FOCAL_KEY, recorded_focal_mm
from inference.sequence import SequenceReconstructor

from .conftest import moving_person


def _atom(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _meta(value: bytes, data_type: int, iso: bool = False) -> bytes:
    """A ``meta`` atom with one ``mdta`` item, laid out as iPhones write it (``iso``: as a full box)."""
    hdlr = _atom(b"hdlr", bytes(8) + b"mdta" + bytes(13))
    key = struct.pack(">I4s", 8 + len(FOCAL_KEY), b"mdta") + FOCAL_KEY
    keys = _atom(b"keys", bytes(4) + struct.pack(">I", 1) + key)
    data = _atom(b"data", struct.pack(">I", data_type) + bytes(4) + value)
    ilst = _atom(b"ilst", _atom(struct.pack(">I", 1), data))
    return _atom(b"meta", (bytes(4) if iso else b"") + hdlr + keys + ilst)


def _video(path, frames: list[np.ndarray], meta: bytes | None = None, in_track: bool = True) -> None:
    """An MP4 written by OpenCV, with ``meta`` added to its first track (or to the movie)."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (w, h))
    for f in frames:
        writer.write(np.ascontiguousarray(f[:, :, ::-1]))
    writer.release()
    if meta is None:
        return
    buf = bytearray(path.read_bytes())
    off = 0
    while buf[off + 4 : off + 8] != b"moov":
        off += struct.unpack(">I", buf[off : off + 4])[0]
    assert off + struct.unpack(">I", buf[off : off + 4])[0] == len(buf)  # the movie's index comes last
    at = len(buf)
    grown = [off]  # atoms whose size grows: the movie, and the track
    if in_track:
        t = off + 8
        while buf[t + 4 : t + 8] != b"trak":
            t += struct.unpack(">I", buf[t : t + 4])[0]
        grown.append(t)
        at = t + struct.unpack(">I", buf[t : t + 4])[0]
    for a in grown:
        buf[a : a + 4] = struct.pack(">I", struct.unpack(">I", buf[a : a + 4])[0] + len(meta))
    buf[at:at] = meta
    path.write_bytes(bytes(buf))


@pytest.mark.parametrize(
    ("value", "data_type", "iso", "in_track", "mm"),
    [
        (struct.pack(">h", 26), 21, False, True, 26.0),  # an iPhone's main camera, in the video track's items
        (b"50.00mm", 1, False, False, 50.0),  # as text, in the movie's items
        (struct.pack(">f", 13.0), 23, True, False, 13.0),  # a float, in an ISO-style meta box
    ],
)
def test_the_lens_a_video_records(tmp_path, value, data_type, iso, in_track, mm):
    path = tmp_path / "clip.mp4"
    frames = [np.full((120, 160, 3), 40 * i, np.uint8) for i in range(4)]
    _video(path, frames, _meta(value, data_type, iso), in_track)
    assert recorded_focal_mm(path) == pytest.approx(mm)
    cap = cv2.VideoCapture(str(path))  # the video still plays
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4 and cap.read()[0]
    cap.release()


def test_no_lens_recorded_or_not_a_movie(tmp_path):
    plain = tmp_path / "plain.mp4"
    _video(plain, [np.zeros((120, 160, 3), np.uint8)] * 3)
    assert recorded_focal_mm(plain) is None
    (tmp_path / "junk.mp4").write_bytes(b"\x00\x00\x00\x10moov" + b"\xff" * 40)  # a size past its end
    assert recorded_focal_mm(tmp_path / "junk.mp4") is None
    nested = b"".join(struct.pack(">I4s", 8 * (5000 - i), b"udta") for i in range(5000))  # atoms in atoms
    (tmp_path / "deep.mp4").write_bytes(struct.pack(">I4s", 8 + len(nested), b"moov") + nested)
    assert recorded_focal_mm(tmp_path / "deep.mp4") is None
    (tmp_path / "text.mp4").write_text("not a movie at all")
    assert recorded_focal_mm(tmp_path / "text.mp4") is None
    # Implausible values are not a lens: the clip keeps the default guess.
    odd = tmp_path / "odd.mp4"
    _video(odd, [np.zeros((120, 160, 3), np.uint8)] * 3, _meta(struct.pack(">h", 3), 21))
    assert recorded_focal_mm(odd) == 3.0 and open_frames(odd).recorded_focal(160, 120) is None


def test_a_phone_videos_lens_is_the_clips_camera(reconstructor, tmp_path):
    """A clip from a phone that records its lens (26 mm equivalent): the camera's focal length is
    that lens, and the result says where it came from."""
    path = tmp_path / "phone.mp4"
    frames = [np.asarray(f) for f in moving_person(4)]
    _video(path, frames, _meta(struct.pack(">h", 26), 21))
    r = SequenceReconstructor(reconstructor).run(open_frames(path))
    h, w = frames[0].shape[:2]
    assert r.camera_K[0, 0] == pytest.approx(26 / math.hypot(36, 24) * math.hypot(w, h), rel=1e-4)
    assert r.notes[0].startswith("focal length from the video's metadata: 26 mm full-frame equivalent")
    assert len(r.people) == 1 and r.people[0].frame_detected.all()
