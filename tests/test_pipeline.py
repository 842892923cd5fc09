"""The photo pipeline on real photos: whom to reconstruct (``--people``), the bodies' height, the camera."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from inference.errors import ReconError
from inference.io.images import reads_heif
from inference.pipeline import choose_people, people_wanted

from .conftest import PERSON


def test_people_option_values():
    assert people_wanted("all") is None and people_wanted("largest") == 1
    assert people_wanted(3) == 3 and people_wanted("2") == 2
    for bad in ("none", 0, "-1"):
        with pytest.raises(ReconError) as exc:
            people_wanted(bad)
        assert exc.value.code == "bad_argument"


@pytest.fixture(scope="module")
def canvas_people(reconstructor):
    """The person in full on the left; on the right a copy of their upper 45% standing on the
    photo's bottom edge, so only head, shoulders and arms show."""
    from inference.detect import find_people

    photo = Image.open(PERSON).convert("RGB")
    w, h = photo.size
    canvas = Image.new("RGB", (2 * w, h), (120, 130, 140))
    canvas.paste(photo, (0, 0))
    top = photo.crop((0, 0, w, int(h * 0.45)))
    canvas.paste(top, (w, h - top.size[1]))
    rgb = np.asarray(canvas)
    return rgb, find_people(reconstructor.detector, rgb)


def test_people_cut_off_or_hidden_are_skipped_and_noted(canvas_people, reconstructor):
    rgb, found = canvas_people
    assert len(found) == 2  # the detector sees both
    h, w = rgb.shape[:2]
    chosen, notes = choose_people(found, "all", w, h)
    assert len(chosen) == 1 and chosen[0].box[2] < w / 2  # the whole person
    (note,) = notes
    assert "skipped" in note and "cut by the frame edge" in note and "of 13 body joints visible" in note
    # The whole pipeline says the same in the result.
    result = reconstructor.reconstruct(rgb, name="cut")
    assert len(result.people) == 1 and result.people_found == 2 and list(result.notes) == [note]


def test_people_count_keeps_the_most_prominent(canvas_people):
    rgb, found = canvas_people
    h, w = rgb.shape[:2]
    chosen, notes = choose_people(found[:1] + found[:1], 1, w, h)  # the same person twice: room for one
    assert len(chosen) == 1 and notes == [f"person at x={int((found[0].box[0] + found[0].box[2]) / 2)} px "
                                          "skipped: --people 1"]  # fmt: skip


def test_bodies_scaled_to_the_standing_height_look_the_same(reconstructor, body, tmp_path):
    """One photo does not tell size from distance: the body is scaled about the camera to the
    height asked for (an average adult's by default), which changes nothing in the picture."""
    import torch

    from inference.assemble import standing_height
    from inference.io.result import DEFAULT_HEIGHT_M, ReconResult

    fitted = reconstructor.reconstruct(PERSON, height=None).people[0]
    default = reconstructor.reconstruct(PERSON).people[0]
    tall_result = reconstructor.reconstruct(PERSON, height=1.90)
    tall = tall_result.people[0]
    assert fitted.body_scale == 1.0
    for person, want in ((default, DEFAULT_HEIGHT_M), (tall, 1.90)):
        tall_now = standing_height(body, torch.tensor(person.rest_vertices)[None])
        assert tall_now == pytest.approx(want, abs=1e-3)
        s = person.body_scale
        assert s == pytest.approx(want / standing_height(body, torch.tensor(fitted.rest_vertices)[None]), rel=1e-4)
        # Everything in camera space scales about the camera; the picture stays the same.
        assert np.allclose(person.keypoints3d_cam, fitted.keypoints3d_cam * s, atol=1e-4)
        assert np.allclose(person.vertices_cam, fitted.vertices_cam * s, atol=1e-4)
        assert np.allclose(person.root_translation, fitted.root_translation * s, atol=1e-5)
        assert np.allclose(person.bone_rest_heads, fitted.bone_rest_heads * s, atol=1e-5)
        assert np.allclose(person.bone_rest_matrices[:, :3, 3], fitted.bone_rest_matrices[:, :3, 3] * s, atol=1e-5)
        assert np.allclose(person.bone_rotations, fitted.bone_rotations)
        assert np.abs(person.keypoints2d_fit - fitted.keypoints2d_fit).max() < 0.01  # pixels
        assert person.silhouette_iou == pytest.approx(fitted.silhouette_iou, abs=1e-3)
    back = ReconResult.load(tall_result.save(tmp_path / "tall.npz")).people[0]
    assert back.body_scale == pytest.approx(tall.body_scale)


def test_a_photos_exif_focal_length_is_the_cameras(reconstructor, tmp_path):
    """A phone photo's (HEIC) EXIF focal length (a 26 mm full-frame equivalent: wider than the image
    diagonal the camera otherwise gets) becomes the camera's, and the result says so; the body,
    of the same height, stands nearer the wider lens. A focal length given (pixels or a 35 mm
    equivalent) wins."""
    src = Image.open(PERSON).convert("RGB")
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 26  # FocalLengthIn35mmFilm
    assert reads_heif()  # Pillow writes HEIC too, once pillow-heif has taught it
    phone = tmp_path / "IMG_0001.HEIC"  # an iPhone's
    src.save(phone, exif=exif.tobytes(), quality=95)
    diagonal = float(np.hypot(*src.size))
    default, from_exif = reconstructor.reconstruct(PERSON), reconstructor.reconstruct(phone)
    assert default.camera_K[0, 0] == pytest.approx(diagonal)
    # Blender reads no HEIC: the result carries the photo as JPEG for the camera's background.
    assert default.background_jpeg.size == 0
    behind = np.asarray(Image.open(io.BytesIO(from_exif.background_jpeg.tobytes())).convert("RGB"), np.float64)
    assert behind.shape == (540, 460, 3) and np.abs(behind - np.asarray(src, np.float64)).mean() < 8
    assert from_exif.camera_K[0, 0] == pytest.approx(26 / 43.2666 * diagonal, rel=1e-4)
    assert any("EXIF: 26 mm" in n for n in from_exif.notes) and not any("EXIF" in n for n in default.notes)
    nearer = from_exif.people[0].root_translation[0, 2] / default.people[0].root_translation[0, 2]
    assert nearer == pytest.approx(26 / 43.2666, rel=0.15)
    given = reconstructor.reconstruct(phone, focal_px=700.0)
    assert given.camera_K[0, 0] == pytest.approx(700.0) and not any("EXIF" in n for n in given.notes)
    given = reconstructor.reconstruct(phone, focal_mm=50.0)  # as a 35 mm equivalent
    assert given.camera_K[0, 0] == pytest.approx(50 / 43.2666 * diagonal, rel=1e-4)
    assert given.notes[0].startswith("focal length given: 50 mm")


def test_a_phone_sized_photo_is_worked_on_smaller_and_answered_in_its_own_pixels(reconstructor, tmp_path):
    """A photo larger than WORK_SIDE (here 2760 x 3240, stored sideways as phones do) is detected and
    fitted on a smaller copy (here decoded at half its size), and its result is the photo's: its size, its camera (the
    focal length its diagonal), keypoints and boxes in its pixels, where the fitted body projects
    through that camera; the body the one the photo at its small size gives."""
    src = Image.open(PERSON).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 8
    path = tmp_path / "IMG_0003.jpg"
    src.resize((460 * 6, 540 * 6), Image.Resampling.BICUBIC).transpose(Image.Transpose.ROTATE_270).save(
        path, exif=exif.tobytes(), quality=92
    )
    small, big = reconstructor.reconstruct(PERSON), reconstructor.reconstruct(path)
    assert tuple(big.image_size) == (2760, 3240)
    assert big.camera_K[0, 0] == pytest.approx(np.hypot(2760, 3240)) and big.camera_K[1, 2] == pytest.approx(1620)
    (a,), (b,) = small.people, big.people
    height = b.person_box[3] - b.person_box[1]
    assert height == pytest.approx(6 * (a.person_box[3] - a.person_box[1]), rel=0.05)
    seen = (a.keypoints2d[:, 2] > 0.5) & (b.keypoints2d[:, 2] > 0.5)
    assert seen.sum() >= 12
    assert np.abs(b.keypoints2d[seen, :2] - 6 * a.keypoints2d[seen, :2]).max() < 0.04 * height
    projected = b.keypoints3d_cam @ big.camera_K.T
    assert np.abs(projected[:, :2] / projected[:, 2:] - b.keypoints2d_fit).max() < 1.0  # pixels of the photo
    assert np.linalg.norm(b.keypoints2d_fit[seen] - b.keypoints2d[seen, :2], axis=1).mean() < 0.03 * height
    assert b.silhouette_iou > 0.7
    # The same body: its keypoints, centred on the pelvis, within a few centimetres.
    ka, kb = (p.keypoints3d_cam - p.keypoints3d_cam[11:13].mean(0) for p in (a, b))
    assert np.linalg.norm(ka - kb, axis=1).mean() < 0.05
