"""What a cover looks like: the numbers both renderers draw from.

`masking.py` (numpy: `redact`, the demo) computes its covers from these functions, and the OBS
filter sends their results for each region to its shader (`obs_plugin/effects/privastream.effect`),
which holds no number of its own.  Standard library only: OBS's embedded Python imports it.

Sizes follow the region, not the frame: a cell or a blur window is a share of the region's longer
side, so a large face is as coarse, relative to its size, as a small one, and a long line of text
never keeps a row of cells as tall as its letters.
"""

from __future__ import annotations

FILL_LEVEL = 16
"""Grey level (0-255) of the solid fill and of the fail-closed cover."""
FILL_RGB = (FILL_LEVEL, FILL_LEVEL, FILL_LEVEL)

ELLIPSE_KINDS = ("face", "mouth")
"""Region kinds covered by an ellipse (the rest by their box)."""
ELLIPSE_SCALE = 1.2
"""The ellipse's half-axes as a share of the box's half-size, clipped to the box: it covers the
whole face and leaves only the box's corners (hair, background), and never reaches outside the
box, so a region's cover stays within the box its draw is limited to."""

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


def cell_px(box: tuple[float, float, float, float], strength: float) -> float:
    """Side of a pixelation cell, in pixels, for a region's box at a strength (0..1)."""
    lo, hi = CELLS_ACROSS
    cells = lo + (hi - lo) * min(max(strength, 0.0), 1.0)
    return max(MIN_CELL_PX, max(box[2] - box[0], box[3] - box[1]) / cells)


def blur_radius_px(box: tuple[float, float, float, float], strength: float) -> float:
    """Half the side of the blur window, in pixels."""
    return BLUR_RADIUS_CELLS * cell_px(box, strength)


def ellipse_scale(kind: str, ellipse_faces: bool = True) -> float:
    """The ellipse's scale for a region kind; 0 for a box cover."""
    return ELLIPSE_SCALE if ellipse_faces and kind in ELLIPSE_KINDS else 0.0
