"""Scene-cut detection on tiny thumbnails: cheap enough to run on every frame."""

from __future__ import annotations

import cv2
import numpy as np


class SceneCutDetector:
    """A cut is a frame whose colour histogram and layout both differ sharply from the previous one.

    Two cues together keep false cuts rare: a fast pan changes the layout but
    not the colours, a lighting change the colours but not the layout.
    """

    def __init__(self, hist_threshold: float = 0.5, diff_threshold: float = 30.0):
        self.hist_threshold = hist_threshold
        self.diff_threshold = diff_threshold
        self._prev: tuple[np.ndarray, np.ndarray] | None = None

    def reset(self) -> None:
        self._prev = None

    def is_cut(self, frame: np.ndarray) -> bool:
        """True when ``frame`` starts a new scene (the first frame ever does not)."""
        # Stride before copying: on a 1080p frame a whole-frame copy costs more than the rest of the
        # test, and a cut shows in every 8th-ish pixel as well as in all of them.
        step = max(1, min(frame.shape[0] // 144, frame.shape[1] // 256))
        thumb = cv2.resize(np.ascontiguousarray(frame[::step, ::step, :3]), (64, 36), interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(thumb, cv2.COLOR_RGB2HSV)
        hist = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256])
        cv2.normalize(hist, hist)
        gray = cv2.cvtColor(thumb, cv2.COLOR_RGB2GRAY).astype(np.float32)
        prev, self._prev = self._prev, (hist, gray)
        if prev is None:
            return False
        similarity = cv2.compareHist(prev[0], hist, cv2.HISTCMP_CORREL)
        diff = float(np.mean(np.abs(prev[1] - gray)))
        return similarity < self.hist_threshold and diff > self.diff_threshold
