"""Covering regions of a frame: pixelate, blur or solid fill (numpy/OpenCV).

Used by the offline redactor and the demo publisher; the OBS filter draws the
same styles with its own shader, whose sizes and shades differ (docs/architecture.md,
"Two cover renderers").  Every style destroys information rather than
hiding it: pixelation blocks scale with the region (a large face gets blocks
as large as a small one's relative to its size), blur starts from a
downsampled copy so it cannot be deconvolved, and text defaults to solid fill
because even strongly blurred text can be read back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from .regions import Region

STYLES = ("pixelate", "blur", "fill")
DEFAULT_STYLES = {"face": "pixelate", "text": "fill", "plate": "fill", "mouth": "pixelate", "change": "fill"}
FILL_COLOR = (16, 16, 16)


@dataclass
class MaskOptions:
    styles: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_STYLES))
    strength: float = 1.0
    """0..1: 1 gives about 6 blocks across a region, 0 about 12."""
    ellipse_faces: bool = True

    @classmethod
    def from_settings(cls, settings: dict) -> "MaskOptions":
        styles = dict(DEFAULT_STYLES)
        for kind in ("face", "text", "plate", "mouth"):
            style = settings.get(f"style_{kind}")
            if style is not None:
                if style not in STYLES:
                    raise ValueError(f"style_{kind} must be one of {', '.join(STYLES)} (got {style!r})")
                styles[kind] = style
        styles["change"] = styles["text"]  # unvouched change may be new text: as strong a cover as text
        strength = float(settings.get("strength", 1.0))
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be between 0 and 1 (got {strength})")
        return cls(styles=styles, strength=strength)

    def blocks_across(self) -> int:
        return int(round(12 - 6 * self.strength))


def _shape_box(region: Region, ellipse: bool):
    """The area a region's cover occupies: its box, or for an ellipse the box it passes through the corners of."""
    x0, y0, x1, y1 = region.box
    if not ellipse:
        return x0, y0, x1, y1
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2 * math.sqrt(2), (y1 - y0) / 2 * math.sqrt(2)
    return cx - hw, cy - hh, cx + hw, cy + hh


def _obscured(patch: np.ndarray, style: str, blocks: int) -> np.ndarray:
    h, w = patch.shape[:2]
    if style == "fill":
        out = np.empty_like(patch)
        out[...] = FILL_COLOR + (255,) * (patch.shape[2] - 3)
        return out
    cell = max(w, h) / blocks
    small = cv2.resize(patch, (max(1, round(w / cell)), max(1, round(h / cell))), interpolation=cv2.INTER_AREA)
    if style == "pixelate":
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    smooth = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    sigma = max(1.0, max(w, h) / blocks / 2)
    return cv2.GaussianBlur(smooth, (0, 0), sigma)


def apply_masks(frame: np.ndarray, regions: list[Region], options: MaskOptions | None = None) -> np.ndarray:
    """Cover every region of ``frame`` in place (HxWx3 or HxWx4 uint8) and return it."""
    options = options or MaskOptions()
    height, width = frame.shape[:2]
    blocks = options.blocks_across()
    for region in regions:
        ellipse = options.ellipse_faces and region.kind in ("face", "mouth")
        x0, y0, x1, y1 = _shape_box(region, ellipse)
        ix0, iy0 = max(0, math.floor(x0)), max(0, math.floor(y0))
        ix1, iy1 = min(width, math.ceil(x1)), min(height, math.ceil(y1))
        if ix1 <= ix0 or iy1 <= iy0:
            continue
        view = frame[iy0:iy1, ix0:ix1]
        # Blocks are sized on the whole shape, not its visible part, so a face half off-screen
        # is as coarse as a whole one.
        full = max(x1 - x0, y1 - y0)
        eff_blocks = max(1, round(blocks * max(ix1 - ix0, iy1 - iy0) / max(full, 1)))
        cover = _obscured(view, options.styles.get(region.kind, "fill"), eff_blocks)
        if ellipse:
            yy, xx = np.ogrid[iy0:iy1, ix0:ix1]
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            inside = ((xx + 0.5 - cx) / ((x1 - x0) / 2)) ** 2 + ((yy + 0.5 - cy) / ((y1 - y0) / 2)) ** 2 <= 1.0
            view[inside] = cover[inside]
        else:
            view[...] = cover
    return frame


def cover_all(frame: np.ndarray) -> np.ndarray:
    """Fail-closed cover of a whole frame: coarse, dark pixelation that shows only that video is flowing."""
    h, w = frame.shape[:2]
    small = cv2.resize(frame, (max(1, w // 80), max(1, h // 80)), interpolation=cv2.INTER_AREA)
    frame[...] = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST) // 4
    return frame
