"""Covering regions of a frame: pixelate, blur or solid fill (numpy).

Used by the offline redactor and the demo publisher.  Every number comes from `cover_spec`, and
the arithmetic is the OBS shader's (`obs_plugin/effects/privastream.effect`): the same cells, the
same pixels read for each, the same ellipse; `tests/test_cover_parity.py` compares the two.  Every
style destroys information rather than hiding it: a pixelation cell or a blur window is a share of
the region's size, so a large face is as coarse as a small one; both read a sparse grid of pixels,
so the detail between them is gone rather than attenuated; and text defaults to solid fill because
even strongly blurred text can be read back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import cover_spec
from .regions import Region
from .settings import STYLE_KINDS, Settings

DEFAULT_STYLES = {kind: Settings().style(kind) for kind in STYLE_KINDS}
"""Per setting kind (cover_spec.SETTING_KIND says which one each region kind follows)."""


@dataclass
class MaskOptions:
    styles: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_STYLES))
    strength: float = 1.0
    """0..1: the share cover_spec.CELLS_ACROSS and the blur radius go by, for kinds not in ``strengths``."""
    strengths: dict[str, float] = field(default_factory=dict)
    """Per setting kind, as OBS has them."""
    ellipse_faces: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> "MaskOptions":
        """The covers of ``settings`` (already checked)."""
        return cls(styles={kind: settings.style(kind) for kind in STYLE_KINDS},
                   strengths={kind: settings.strength(kind) for kind in STYLE_KINDS})

    def style(self, kind: str) -> str:
        return self.styles.get(cover_spec.SETTING_KIND.get(kind, "face"), "fill")

    def strength_of(self, kind: str) -> float:
        return self.strengths.get(cover_spec.SETTING_KIND.get(kind, "face"), self.strength)


def _centres(lo: int, hi: int) -> np.ndarray:
    return np.arange(lo, hi, dtype=np.float64) + 0.5


def _reads(at: np.ndarray, size: int) -> np.ndarray:
    """Whole-pixel indexes read at positions ``at`` (the shader's load_clamped)."""
    return np.clip(np.floor(at), 0, size - 1).astype(np.intp)


def _pixelate_axis(box_lo: float, box_hi: float, lo: int, hi: int, cell: float, size: int,
                   taps: int) -> tuple[np.ndarray, np.ndarray]:
    """For pixels lo..hi-1 on one axis: the pixels each cell they lie in reads (cells, taps), and
    each pixel's cell.  Cells are taken once each: every pixel of a cell reads the same pixels."""
    index = np.floor((_centres(lo, hi) - box_lo) / cell)
    start = box_lo + np.arange(index[0], index[-1] + 1) * cell  # contiguous pixels: every cell between
    first = np.maximum(start, 0.0)
    last = np.minimum(np.minimum(start + cell, box_hi), size)
    share = (np.arange(taps) + 0.5) / taps
    return _reads(first[:, None] + share[None, :] * (last - first)[:, None], size), (index - index[0]).astype(np.intp)


def _mean_of_reads(frame: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """out[y, x] = mean over i, j of frame[rows[y, j], cols[x, i]] (the grid is separable)."""
    across = np.zeros((rows.shape[0], rows.shape[1], cols.shape[0], frame.shape[2]), np.float32)
    for i in range(cols.shape[1]):
        across += frame[rows[:, :, None], cols[None, None, :, i]]
    return across.sum(axis=1) / (rows.shape[1] * cols.shape[1])


def _pixelated(frame: np.ndarray, box, cell: float, area: tuple[int, int, int, int]) -> np.ndarray:
    ix0, iy0, ix1, iy1 = area
    height, width = frame.shape[:2]
    taps = cover_spec.PIXELATE_TAPS
    cols, col_cell = _pixelate_axis(box[0], box[2], ix0, ix1, cell, width, taps)
    rows, row_cell = _pixelate_axis(box[1], box[3], iy0, iy1, cell, height, taps)
    return _mean_of_reads(frame, rows, cols)[row_cell][:, col_cell]


def _blurred(frame: np.ndarray, radius: float, area: tuple[int, int, int, int]) -> np.ndarray:
    """The window's reads are the pixel shifted by the same whole pixels everywhere, clamped to
    the frame (the shader's load_clamped): sums of shifted slices of an edge-padded copy."""
    ix0, iy0, ix1, iy1 = area
    height, width = frame.shape[:2]
    taps = cover_spec.BLUR_TAPS
    shifts = np.floor(0.5 + ((np.arange(taps) + 0.5) / taps * 2.0 - 1.0) * radius).astype(int)
    r = int(np.abs(shifts).max())
    y0, y1, x0, x1 = max(iy0 - r, 0), min(iy1 + r, height), max(ix0 - r, 0), min(ix1 + r, width)
    padded = np.pad(frame[y0:y1, x0:x1].astype(np.float32),
                    ((r - (iy0 - y0), r - (y1 - iy1)), (r - (ix0 - x0), r - (x1 - ix1)), (0, 0)), mode="edge")
    w, h = ix1 - ix0, iy1 - iy0
    across = np.zeros((padded.shape[0], w, frame.shape[2]), np.float32)
    for s in shifts:
        across += padded[:, r + s:r + s + w]
    out = np.zeros((h, w, frame.shape[2]), np.float32)
    for s in shifts:
        out += across[r + s:r + s + h]
    return out / (taps * taps)


def _covered(frame: np.ndarray, box, style: str, strength: float, area: tuple[int, int, int, int]) -> np.ndarray:
    """The cover's pixels over ``area`` (ix0, iy0, ix1, iy1) of ``frame``."""
    ix0, iy0, ix1, iy1 = area
    channels = frame.shape[2]
    if style == "fill":
        out = np.empty((iy1 - iy0, ix1 - ix0, channels), frame.dtype)
        out[...] = cover_spec.FILL_RGB + (255,) * (channels - 3)
        return out
    if style == "pixelate":
        mean = _pixelated(frame, box, cover_spec.cell_px(box, strength), area)
    else:
        mean = _blurred(frame, cover_spec.blur_radius_px(box, strength), area)
    out = np.rint(mean).astype(frame.dtype)
    if channels == 4:
        out[..., 3] = frame[iy0:iy1, ix0:ix1, 3]  # the frame's alpha stays, as OBS's blending keeps it
    return out


def cover_shape(box, ellipse: bool, area: tuple[int, int, int, int]) -> np.ndarray:
    """Which pixels of ``area`` a region's cover takes: their centres inside its cover box
    (cover_spec.cover_box) and, for an ellipse, inside the ellipse inscribed in it."""
    ix0, iy0, ix1, iy1 = area
    x0, y0, x1, y1 = box
    xs, ys = _centres(ix0, ix1)[None, :], _centres(iy0, iy1)[:, None]
    inside = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
    if ellipse:
        hw, hh = max((x1 - x0) / 2, 1e-6), max((y1 - y0) / 2, 1e-6)
        inside &= ((xs - (x0 + x1) / 2) / hw) ** 2 + ((ys - (y0 + y1) / 2) / hh) ** 2 <= 1.0
    return inside


def apply_masks(frame: np.ndarray, regions: list[Region], options: MaskOptions | None = None) -> np.ndarray:
    """Cover every region of ``frame`` in place (HxWx3 or HxWx4 uint8) and return it.

    Each cover reads the frame as it was before any region was drawn, as OBS's per-region draws
    read the uncovered frame: overlapping regions give the same result in either order."""
    options = options or MaskOptions()
    height, width = frame.shape[:2]
    source = frame.copy() if len(regions) > 1 else frame
    for region in regions:
        box = cover_spec.cover_box(region.box, region.kind, options.ellipse_faces)
        area = cover_spec.on_frame(box, width, height)
        if area[2] <= area[0] or area[3] <= area[1]:
            continue
        inside = cover_shape(box, cover_spec.is_ellipse(region.kind, options.ellipse_faces), area)
        cover = _covered(source, box, options.style(region.kind), options.strength_of(region.kind), area)
        view = frame[area[1]:area[3], area[0]:area[2]]
        np.copyto(view, cover, where=inside[:, :, None])
    return frame


def cover_all(frame: np.ndarray) -> np.ndarray:
    """Fail-closed cover of a whole frame: the solid fill, so not even the layout shows."""
    frame[..., :3] = cover_spec.FILL_RGB
    return frame
