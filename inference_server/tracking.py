"""Following a detected face from frame to frame between detection runs, by template matching.

Detection runs are expensive and sparse (a few per second on a busy CPU).  A box extrapolated from
a face's last two detections, with a margin growing with time and speed, still drifts off a face
that turns, stops or speeds up.  So the face's own pixels at its last detection are looked for in
every later frame (the stream's FrameHistory), near where it was last seen and at three scales,
and each frame is covered from the face's measured position.  A match below MIN_SCORE ends the
following: the face turned away, left or was hidden, and the next detection run decides.  A wrong
match never uncovers a face: in a live estimate, the cells the face really left and entered
changed and no measured box explains them (history.unexplained_cells), and in a settled answer a
measured box only widens the interpolation between two detections (coverage.py).
"""

from __future__ import annotations

import cv2
import numpy as np

from .history import FrameHistory

MIN_SCORE = 0.6
"""Normalised correlation below which a match is no match."""
MIN_TEMPLATE_PX = 6
"""A face smaller than this in the history image is too small to follow."""
MIN_TEXTURE = 4.0
"""A template flatter than this (luma standard deviation) matches anywhere."""
SCALES = (0.94, 1.0, 1.06)
"""Faces grow or shrink by at most 6 % from one frame to the next."""
SEARCH = 0.5
"""The search window reaches this share of the face's size beyond its last box (and at least
SEARCH_MIN_PX history pixels): 0.5 x 30 fps follows a face moving 15 face widths a second."""
SEARCH_MIN_PX = 6
MATCH_PX = 48
"""Faces larger than this (history pixels) are matched at this size, window and all: the cost of a
match grows with the template's area times the window's, and a 100 px face cost 20-50 ms a frame
at full size; the box's error stays below its margin."""


def _to_history(box, scale) -> tuple[float, float, float, float]:
    sx, sy = scale
    return (box[0] / sx, box[1] / sy, box[2] / sx, box[3] / sy)


def _to_frame(box, scale) -> tuple[float, float, float, float]:
    sx, sy = scale
    return (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)


def template(history: FrameHistory, t: float, box) -> np.ndarray | None:
    """The face's pixels at its detection (the frame at t), or None when they cannot be followed."""
    image = history.at(t)
    if image is None:
        return None
    x0, y0, x1, y1 = (int(round(v)) for v in _to_history(box, history.scale))
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, image.shape[1]), min(y1, image.shape[0])
    if x1 - x0 < MIN_TEMPLATE_PX or y1 - y0 < MIN_TEMPLATE_PX:
        return None
    patch = image[y0:y1, x0:x1]
    return patch if float(patch.std()) >= MIN_TEXTURE else None


def measure(history: FrameHistory, t: float, face: np.ndarray, last_box) -> tuple[tuple, float] | None:
    """The face's box in the frame at t (frame pixels) and the match score, searched around
    ``last_box`` (frame pixels, its box in an earlier frame); None when no place matches well enough."""
    image = history.at(t)
    if image is None:
        return None
    x0, y0, x1, y1 = _to_history(last_box, history.scale)
    w, h = x1 - x0, y1 - y0
    reach = max(SEARCH * max(w, h), SEARCH_MIN_PX)
    shrink = min(1.0, MATCH_PX / max(w, h))
    best: tuple[float, tuple] | None = None
    for scale in SCALES:
        tw, th = max(int(round(w * scale)), MIN_TEMPLATE_PX), max(int(round(h * scale)), MIN_TEMPLATE_PX)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        sx0, sy0 = max(int(cx - tw / 2 - reach), 0), max(int(cy - th / 2 - reach), 0)
        sx1, sy1 = min(int(cx + tw / 2 + reach) + 1, image.shape[1]), min(int(cy + th / 2 + reach) + 1, image.shape[0])
        if sx1 - sx0 <= tw or sy1 - sy0 <= th:
            continue
        window = image[sy0:sy1, sx0:sx1]
        mw, mh = max(int(round(tw * shrink)), MIN_TEMPLATE_PX), max(int(round(th * shrink)), MIN_TEMPLATE_PX)
        if shrink < 1.0:
            window = cv2.resize(window, (max(int(round(window.shape[1] * shrink)), mw + 1),
                                         max(int(round(window.shape[0] * shrink)), mh + 1)), interpolation=cv2.INTER_AREA)
        resized = cv2.resize(face, (mw, mh), interpolation=cv2.INTER_AREA)
        scores = cv2.matchTemplate(window, resized, cv2.TM_CCOEFF_NORMED)
        _, score, _, (mx, my) = cv2.minMaxLoc(scores)
        if np.isfinite(score) and (best is None or score > best[0]):
            fx, fy = (sx1 - sx0) / window.shape[1], (sy1 - sy0) / window.shape[0]
            left, top = sx0 + mx * fx, sy0 + my * fy
            best = (float(score), (left, top, left + tw, top + th))
    if best is None or best[0] < MIN_SCORE:
        return None
    return _to_frame(best[1], history.scale), best[0]
