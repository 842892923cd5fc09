"""Loading user photos: every pixel format becomes RGB; bad files get clear errors."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from inference.errors import ReconError
from inference.io.images import (
    MAX_PIXELS,
    WORK_SIDE,
    exif_focal,
    load_image,
    load_picture,
    reads_heif,
    resampled,
    working_size,
)
from inference.lens import FocalLength

from .conftest import PERSON, ROOT


def _code(path) -> str:
    with pytest.raises(ReconError) as exc:
        load_image(path)
    assert "\n" not in exc.value.message
    return exc.value.code


def test_real_photo_loads_as_rgb():
    rgb = load_image(PERSON)
    assert rgb.dtype == np.uint8 and rgb.shape == (540, 460, 3)
    assert 40 < rgb.mean() < 220


def test_missing_folder_empty_and_unreadable(tmp_path):
    assert _code(tmp_path / "nope.jpg") == "not_found"
    assert _code(tmp_path) == "not_a_file"
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    assert _code(empty) == "empty_file"


def test_text_named_jpg_and_truncated_jpeg(tmp_path):
    fake = tmp_path / "notes.jpg"
    fake.write_text("this is not a photo\n")
    assert _code(fake) == "not_an_image"
    clip = tmp_path / "clip.mp4"  # a video given as a photo: the message says where it goes
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    with pytest.raises(ReconError) as exc:
        load_image(clip)
    assert exc.value.code == "not_an_image"
    assert exc.value.message == "clip.mp4 is a video: use Import sequence (command line: sequence)."
    data = PERSON.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 3])
    assert _code(cut) == "corrupt_image"


def test_tiny_and_bomb(tmp_path):
    Image.new("RGB", (1, 1)).save(tmp_path / "one.png")
    assert _code(tmp_path / "one.png") == "image_too_small"
    # A tiny PNG whose header declares 100k x 100k pixels: refused before decoding.
    Image.new("L", (8, 8)).save(tmp_path / "small.png")
    data = bytearray((tmp_path / "small.png").read_bytes())
    ihdr = 8  # after the PNG signature: length(4) 'IHDR'(4) width(4) height(4) ...
    data[ihdr + 8 : ihdr + 16] = struct.pack(">II", 100_000, 100_000)
    data[ihdr + 21 : ihdr + 25] = struct.pack(">I", zlib.crc32(bytes(data[ihdr + 4 : ihdr + 21])))
    (tmp_path / "bomb.png").write_bytes(bytes(data))
    assert 100_000 * 100_000 > MAX_PIXELS
    assert _code(tmp_path / "bomb.png") == "image_too_large"


@pytest.mark.parametrize("mode", ["L", "I;16", "CMYK", "RGBA", "P"])
def test_pixel_formats_become_rgb(tmp_path, mode):
    src = Image.open(PERSON)
    if mode == "I;16":
        a = (np.asarray(src.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
        img = Image.fromarray(a)
        path = tmp_path / "p16.png"
    else:
        img = src.convert(mode)
        path = tmp_path / ("p.tif" if mode == "CMYK" else "p.png")
    img.save(path)
    rgb = load_image(path)
    assert rgb.shape == (540, 460, 3) and rgb.dtype == np.uint8
    # Same brightness as the original (16-bit scaled down, not clipped to white).
    assert abs(float(rgb.mean()) - float(np.asarray(src.convert("RGB")).mean())) < 25


def test_exif_orientation_is_honoured(tmp_path):
    src = Image.open(PERSON)
    # Store the pixels rotated, with an EXIF tag saying "rotate back" (phone photos do this).
    stored = src.transpose(Image.Transpose.ROTATE_270)
    exif = Image.Exif()
    exif[0x0112] = 8  # orientation 8: the viewer must turn the stored pixels back
    path = tmp_path / "phone photo é.jpg"
    stored.save(path, exif=exif.tobytes(), quality=95)
    rgb = load_image(path)
    assert rgb.shape == (540, 460, 3)
    diff = np.abs(rgb.astype(int) - np.asarray(src.convert("RGB")).astype(int)).mean()
    assert diff < 12


def test_a_large_photo_is_decoded_smaller_and_its_own_size_is_known(tmp_path):
    """A phone-sized JPEG stored sideways comes decoded smaller (JPEG's DCT scaling: halved here,
    still over DRAFT_SHARE of ``max_side``) and upright, with its own upright size. Other formats
    come whole; a picture within WORK_SIDE is not touched."""
    src = Image.open(PERSON).convert("RGB").resize((460 * 8, 540 * 8))  # 3680 x 4320
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned a quarter: the viewer turns it back
    path = tmp_path / "IMG_0002.jpg"
    src.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif.tobytes(), quality=90)
    small, own = load_picture(path, max_side=WORK_SIDE)
    assert own == (3680, 4320) and small.shape == (2160, 1840, 3)  # halved
    whole = load_image(path)
    assert whole.shape == (4320, 3680, 3) and np.array_equal(load_picture(path)[0], whole)
    work = working_size(3680, 4320)
    assert work == (1636, 1920)
    a, b = resampled(small, work).astype(float), resampled(whole, work).astype(float)
    assert np.abs(a - b).mean() < 3  # the same picture, however it was decoded
    assert np.abs(a - np.asarray(src.resize(work), float)).mean() < 6  # upright
    src.resize((2600, 1700)).save(tmp_path / "wide.jpg", quality=90)  # halved: 1300 < 0.75 x 1920
    assert load_picture(tmp_path / "wide.jpg", max_side=WORK_SIDE)[0].shape == (1700, 2600, 3)
    png = tmp_path / "big.png"
    src.resize((2000, 2348)).save(png)
    rgb, own = load_picture(png, max_side=WORK_SIDE)
    assert rgb.shape == (2348, 2000, 3) and own == (2000, 2348)
    assert working_size(460, 540) == (460, 540) and resampled(whole, (3680, 4320)) is whole


def _with_exif(src: Image.Image, path, equivalent_mm: int, stored_size=None, orientation: int | None = None):
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    ifd = exif.get_ifd(0x8769)  # the EXIF sub-directory, where cameras record the lens
    ifd[0xA405] = equivalent_mm  # FocalLengthIn35mmFilm
    ifd[0xA002], ifd[0xA003] = stored_size or src.size  # PixelXDimension, PixelYDimension
    src.save(path, exif=exif.tobytes(), quality=95)
    return path


def test_exif_focal_length_in_pixels(tmp_path):
    """A phone's 26 mm (full-frame equivalent) lens spans 26 / 43.27 of the picture's diagonal;
    resizing keeps that, a crop or an implausible value leaves the default to the caller."""
    src = Image.open(PERSON).convert("RGB")
    w, h = src.size
    want = 26 / 43.2666 * np.hypot(w, h)
    got = exif_focal(_with_exif(src, tmp_path / "phone.jpg", 26), w, h)
    assert got == FocalLength(26.0, "from the photo's EXIF") and got.px(w, h) == pytest.approx(want, rel=1e-4)
    assert got.note(w, h) == f"focal length from the photo's EXIF: 26 mm full-frame equivalent ({want:.0f} px)"
    assert exif_focal(PERSON, w, h) is None  # no EXIF
    half = _with_exif(src.resize((w // 2, h // 2)), tmp_path / "half.jpg", 26, stored_size=src.size)
    assert exif_focal(half, w // 2, h // 2).px(w // 2, h // 2) == pytest.approx(want / 2, rel=0.01)
    cropped = _with_exif(src.crop((0, 0, w // 2, h)), tmp_path / "crop.jpg", 26, stored_size=src.size)
    assert exif_focal(cropped, w // 2, h) is None
    for odd in (0, 5000):
        assert exif_focal(_with_exif(src, tmp_path / f"odd{odd}.jpg", odd), w, h) is None
    # Stored turned with an orientation tag: the recorded size is the stored pixels'.
    turned = src.transpose(Image.Transpose.ROTATE_270)
    stored = _with_exif(turned, tmp_path / "turned.jpg", 26, orientation=8)
    assert load_image(stored).shape[:2] == (h, w)
    assert exif_focal(stored, w, h) == got
    assert exif_focal(tmp_path / "nope.jpg", w, h) is None


def test_heic_photos_load_with_their_exif(tmp_path):
    """iPhones save HEIC: a real photo saved so (with its lens in EXIF) loads like the JPEG."""
    src = Image.open(PERSON).convert("RGB")
    assert reads_heif()
    heic = _with_exif(src, tmp_path / "IMG_0001.HEIC", 26)
    assert Image.open(heic).format == "HEIF"
    rgb = load_image(heic)
    assert rgb.shape == (540, 460, 3)
    assert np.abs(rgb.astype(int) - np.asarray(src).astype(int)).mean() < 6
    assert exif_focal(heic, 460, 540) == FocalLength(26.0, "from the photo's EXIF")


def test_heic_without_pillow_heif_says_what_to_do(tmp_path):
    """An environment made before pillow-heif was required cannot read HEIC: one line says how to mend it."""
    heic = _with_exif(Image.open(PERSON).convert("RGB"), tmp_path / "photo.heic", 26)
    code = "\n".join([
        "import sys",
        "sys.modules['pillow_heif'] = None",  # as if it were not installed
        "from inference.errors import ReconError",
        "from inference.io.images import load_image",
        "try:",
        f"    load_image({str(heic)!r})",
        "except ReconError as e:",
        "    print(e.code, e.message)",
    ])  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60).stdout
    assert out.startswith("not_an_image photo.heic is a HEIC photo, which this environment cannot read; update it")
    assert len(out.strip().splitlines()) == 1


def test_exif_focal_length_from_the_sensor_when_no_35mm_equivalent(tmp_path):
    """Canon's cameras record no 35 mm equivalent, only the lens's focal length and the sensor's
    pixel pitch: a 50 mm lens on a 22.3 mm wide sensor spanning the picture's width."""
    from PIL.TiffImagePlugin import IFDRational

    src = Image.open(PERSON).convert("RGB")
    w, h = src.size

    def canon(image: Image.Image, name: str, focal=IFDRational(50, 1)) -> object:
        exif = Image.Exif()
        ifd = exif.get_ifd(0x8769)
        ifd[0x920A] = focal  # FocalLength, mm
        ifd[0xA20E] = IFDRational(round(w / 22.3 * 25.4 * 1000), 1000)  # FocalPlaneXResolution, pixels an inch
        ifd[0xA210] = 2  # FocalPlaneResolutionUnit: inch
        ifd[0xA002], ifd[0xA003] = w, h  # as shot
        image.save(tmp_path / name, exif=exif.tobytes(), quality=95)
        return tmp_path / name

    want = 50 * w / 22.3  # pixels
    got = exif_focal(canon(src, "IMG_0001.JPG"), w, h)
    assert got is not None and got.px(w, h) == pytest.approx(want, rel=1e-3)
    assert got.equivalent_mm == pytest.approx(50 * 43.2666 / np.hypot(22.3, 22.3 * h / w), abs=0.1)
    small = exif_focal(canon(src.resize((w // 2, h // 2)), "small.jpg"), w // 2, h // 2)
    assert small.px(w // 2, h // 2) == pytest.approx(want / 2, rel=0.01)
    assert exif_focal(canon(src, "nofocal.jpg", IFDRational(0, 1)), w, h) is None
