"""The camera's focal length as people and files give it: a 35 mm (full-frame) equivalent.

EXIF records a lens that way and artists think in it (Blender's cameras take millimetres on a
36 mm sensor); the fit needs pixels. Kept free of torch: the command line checks a user's
numbers before it loads any model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# A 35 mm equivalent is the lens's focal length scaled to a 36 x 24 mm frame by the diagonal
# (CIPA DC-008): the picture's diagonal spans this many of its millimetres.
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)
EQUIVALENT_MM = (8.0, 1200.0)  # plausible 35 mm equivalents, fisheye to long telephoto


@dataclass(frozen=True)
class FocalLength:
    """A lens's focal length as its 35 mm equivalent, and where it came from."""

    equivalent_mm: float
    source: str = "given"  # for the result's notes: "given", "from the photo's EXIF"

    @classmethod
    def from_px(cls, px: float, width: int, height: int, source: str = "given") -> "FocalLength":
        """The 35 mm equivalent of a focal length of ``px`` pixels in a ``width`` x ``height`` picture."""
        return cls(px / math.hypot(width, height) * FULL_FRAME_DIAGONAL_MM, source)

    def px(self, width: int, height: int) -> float:
        """In pixels of a ``width`` x ``height`` picture (the whole frame the lens saw)."""
        return self.equivalent_mm / FULL_FRAME_DIAGONAL_MM * math.hypot(width, height)

    def note(self, width: int, height: int) -> str:
        return (f"focal length {self.source}: {self.equivalent_mm:g} mm full-frame equivalent "
                f"({self.px(width, height):.0f} px)")  # fmt: skip
