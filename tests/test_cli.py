"""The command line as a program sees it: JSON events, exit codes, no half-written files."""

from __future__ import annotations

import json

import pytest

from inference.errors import EXIT_INPUT, EXIT_NO_PERSON, EXIT_OUTPUT

from .conftest import PERSON, opencv_photo, run_cli


def _events(proc):
    lines = [json.loads(line) for line in proc.stdout.splitlines()]  # every stdout line is JSON
    return lines


def _assert_one_clean_error(proc, code):
    errors = [e for e in _events(proc) if e["event"] == "error"]
    assert len(errors) == 1 and errors[0]["code"] == code, proc.stdout
    stderr = proc.stderr.strip().splitlines()
    assert len(stderr) == 1 and stderr[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_reconstruct_one_photo(tmp_path, cache_dir):
    out = tmp_path / "person.npz"
    proc = run_cli("reconstruct", str(PERSON), "--output", str(out), "--json-progress", cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stderr
    ev = _events(proc)
    assert ev[0]["event"] == "start" and ev[0]["schema_version"] == 2
    stages = [e["stage"] for e in ev if e["event"] == "progress"]
    assert {"detect", "regress", "fit"} <= set(stages)
    fractions = [e["fraction"] for e in ev if e["event"] == "progress"]
    assert fractions == sorted(fractions)
    res = [e for e in ev if e["event"] == "result"]
    assert len(res) == 1 and res[0]["path"] == str(out) and out.exists()
    assert ev[-1] == {"event": "done", "ok": 1, "failed": 0}
    assert [p.name for p in tmp_path.iterdir()] == ["person.npz"]  # no temporary left over

    # The same output again is refused, and the file is untouched.
    before = out.read_bytes()
    again = run_cli("reconstruct", str(PERSON), "--output", str(out), "--json-progress", cache_dir=cache_dir)
    assert again.returncode == EXIT_OUTPUT
    _assert_one_clean_error(again, "output_exists")
    assert out.read_bytes() == before


def _file(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make, code",
    [
        (lambda d: d / "missing.jpg", "not_found"),
        (lambda d: d, "not_a_file"),
        (lambda d: _file(d / "empty.jpg", b""), "empty_file"),
        (lambda d: _file(d / "text.jpg", b"hello"), "not_an_image"),
        (lambda d: _file(d / "cut.jpg", PERSON.read_bytes()[:4000]), "corrupt_image"),
    ],
    ids=["missing", "directory", "zero-bytes", "text-as-jpg", "truncated"],
)
def test_bad_input_one_line_no_file(tmp_path, cache_dir, make, code):
    src = tmp_path / "in"
    src.mkdir()
    image = make(src)
    out = tmp_path / "out.npz"
    proc = run_cli("reconstruct", str(image), "--output", str(out), "--json-progress", cache_dir=cache_dir)
    assert proc.returncode == EXIT_INPUT
    _assert_one_clean_error(proc, code)
    assert not out.exists()


def test_photo_without_person(tmp_path, cache_dir):
    out = tmp_path / "out.npz"
    proc = run_cli(
        "reconstruct", str(opencv_photo("fruits.jpg")), "-o", str(out), "--json-progress", cache_dir=cache_dir
    )
    assert proc.returncode == EXIT_NO_PERSON
    _assert_one_clean_error(proc, "no_person")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_batch_goes_on_past_a_bad_photo(tmp_path, cache_dir):
    bad = tmp_path / "broken.jpg"
    bad.write_text("not an image")
    outdir = tmp_path / "results"
    outdir.mkdir()
    proc = run_cli(
        "reconstruct", str(PERSON), str(bad), str(opencv_photo("basketball1.png")),
        "--output-dir", str(outdir), "--json-progress", cache_dir=cache_dir,
    )  # fmt: skip
    assert proc.returncode != 0
    ev = _events(proc)
    assert [e["index"] for e in ev if e["event"] == "result"] == [0, 2]
    assert [e["code"] for e in ev if e["event"] == "error"] == ["not_an_image"]
    assert ev[-1] == {"event": "done", "ok": 2, "failed": 1}
    assert sorted(p.name for p in outdir.iterdir()) == ["basketball1.npz", "person.npz"]


def test_height_option(capsys):
    """``--height``: metres within the range, 0 for the fit's own size; anything else is a
    one-line usage error."""
    from inference.cli import build_parser

    parse = lambda *a: build_parser().parse_args(["reconstruct", "a.jpg", "-o", "a.npz", *a])  # noqa: E731
    assert parse().height == 1.70 and parse("--height", "1.82").height == 1.82
    assert parse("--height", "0").height is None
    for bad in ("3", "0.2", "tall"):
        with pytest.raises(SystemExit):
            parse("--height", bad)
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("python -m inference reconstruct: error: argument --height: takes a height in metres")


def test_focal_length_options(capsys, tmp_path):
    """``--focal-mm`` (a 35 mm equivalent, photos and clips) and ``--focal-px`` (photos): a
    number out of range is a one-line usage error, and both at once one clear line."""
    from inference.cli import build_parser

    photo = lambda *a: build_parser().parse_args(["reconstruct", "a.jpg", "-o", "a.npz", *a])  # noqa: E731
    clip = lambda *a: build_parser().parse_args(["sequence", "c.mp4", "-o", "c.npz", *a])  # noqa: E731
    assert photo().focal_mm is None and photo().focal_px is None and clip().focal_mm is None
    assert photo("--focal-mm", "26").focal_mm == 26.0 and clip("--focal-mm", "13.5").focal_mm == 13.5
    assert photo("--focal-px", "1200").focal_px == 1200.0
    refused = (("--focal-mm", "3", "takes a 35 mm equivalent focal length, 8 to 1200 mm"),
               ("--focal-mm", "wide", "takes a 35 mm"), ("--focal-px", "-5", "takes a focal length in pixels"),
               ("--focal-px", "inf", "takes a focal length in pixels"))
    for option, bad, says in refused:
        with pytest.raises(SystemExit):
            photo(option, bad)
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith(f"python -m inference reconstruct: error: argument {option}: {says}")
    out = tmp_path / "a.npz"
    proc = run_cli("reconstruct", str(PERSON), "-o", str(out), "--focal-mm", "26", "--focal-px", "900")
    assert proc.returncode != 0 and not out.exists()
    once = "error: Give the focal length once: --focal-px (pixels) or --focal-mm (35 mm)."
    assert proc.stderr.strip().splitlines() == [once]


def test_hands_option():
    """``--hands``: on by default, off on request, for photos and clips alike."""
    from inference.cli import build_parser

    photo = lambda *a: build_parser().parse_args(["reconstruct", "a.jpg", "-o", "a.npz", *a])  # noqa: E731
    clip = lambda *a: build_parser().parse_args(["sequence", "c.mp4", "-o", "c.npz", *a])  # noqa: E731
    assert photo().hands == "on" and photo("--hands", "off").hands == "off"
    assert clip().hands == "on" and clip("--hands", "off").hands == "off"
    with pytest.raises(SystemExit):
        photo("--hands", "maybe")
    # Hands searched at most 30 times a second by default; 0: every frame; a negative rate is refused.
    assert clip().hand_rate == 30.0 and clip("--hand-rate", "0").hand_rate == 0.0
    with pytest.raises(SystemExit):
        clip("--hand-rate", "-5")
