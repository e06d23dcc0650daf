"""What a cover looks like: the numbers both renderers draw from.

`masking.py` (numpy: `redact`, the demo) computes its covers from these functions, and the OBS
filter sends their results for each region to its shader (`obs_plugin/effects/privastream.effect`),
which holds no number of its own.  Standard library only: OBS's embedded Python imports it.

Sizes follow the region, not the frame: a cell or a blur window is a share of the region's longer
side, so a large face is as coarse, relative to its size, as a small one, and a long line of text
never keeps a row of cells as tall as its letters.
"""

from __future__ import annotations

import math

FILL_LEVEL = 16
"""Grey level (0-255) of the solid fill and of the fail-closed cover."""
FILL_RGB = (FILL_LEVEL, FILL_LEVEL, FILL_LEVEL)

ELLIPSE_KINDS = ("face", "mouth")
"""Region kinds covered by an ellipse: the one through their box's corners (cover_box), so the whole
box is covered, and the cheek, ear or chin a detector's box cuts off beside it too.  The rest are
covered by their box."""

SETTING_KIND = {"face": "face", "mouth": "face", "text": "text", "plate": "plate", "change": "text"}
"""Whose style and strength a region kind takes: a mouth is part of a face; unvouched change may be
new text, so it is covered as strongly as text."""

CELLS_ACROSS = (10.0, 4.0)
"""Pixelation cells across the region's longer side at strength 0 and at strength 1."""
MIN_CELL_PX = 4.0
"""No cell is smaller than this, however small the region."""
PIXELATE_TAPS = 4
"""A cell shows the mean of this many pixels per side, spread evenly over it."""
BLUR_RADIUS_CELLS = 1.5
"""Blur averages a square window reaching this many cell sizes from each pixel."""
BLUR_TAPS = 8
"""Samples per side of the blur window: the window is read on this grid, not pixel by pixel, so
fine detail between the samples is gone rather than attenuated (nothing to deconvolve)."""


def cover_box(box: tuple[float, float, float, float], kind: str,
              ellipse_faces: bool = True) -> tuple[float, float, float, float]:
    """The area a region's cover takes: its box, or for an ellipse kind the box of the ellipse through
    its box's corners (the ellipse is the one inscribed in this area), grown to whole pixels: a pixel
    the area only partly holds is covered whole, since half of it may still show half a feature."""
    x0, y0, x1, y1 = box
    if is_ellipse(kind, ellipse_faces):
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        hw, hh = (x1 - x0) / 2 * math.sqrt(2), (y1 - y0) / 2 * math.sqrt(2)
        x0, y0, x1, y1 = cx - hw, cy - hh, cx + hw, cy + hh
    return float(math.floor(x0)), float(math.floor(y0)), float(math.ceil(x1)), float(math.ceil(y1))


def on_frame(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """A cover box (whole pixels) cut to the frame: the pixels its draw touches."""
    return max(0, int(box[0])), max(0, int(box[1])), min(width, int(box[2])), min(height, int(box[3]))


def is_ellipse(kind: str, ellipse_faces: bool = True) -> bool:
    return ellipse_faces and kind in ELLIPSE_KINDS


def cell_px(box: tuple[float, float, float, float], strength: float) -> float:
    """Side of a pixelation cell, in pixels, for a region's box at a strength (0..1)."""
    lo, hi = CELLS_ACROSS
    cells = lo + (hi - lo) * min(max(strength, 0.0), 1.0)
    return max(MIN_CELL_PX, max(box[2] - box[0], box[3] - box[1]) / cells)


def blur_radius_px(box: tuple[float, float, float, float], strength: float) -> float:
    """Half the side of the blur window, in pixels."""
    return BLUR_RADIUS_CELLS * cell_px(box, strength)
