"""The photo pipeline's choice of whom to reconstruct (``--people``), on real detections."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from inference.errors import ReconError
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
