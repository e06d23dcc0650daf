"""Judging a recorded stream against the clip it came from: which frame is which, and whether a face
kept its detail.

Every clip frame carries its index in a barcode strip (bottom left, no PII), so a recorded frame is
matched to the clip's ground truth whatever OBS did to the timing (lag, dropped or repeated frames,
the media source's loop).  A face counts as leaked by the detail it keeps, never by how much the box
changed on average: a cover that leaves half the face, or sits beside it, changes the mean as much
as one that hides it.  Detail is the fine structure (a high-pass of the luma) inside the true face
box, compared with the clip's own; each quarter of the box is judged on its own, so half a face
shown is a leak.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .scenes import Clip, Truth

BITS, BIT_W, BIT_H = 11, 16, 8
FACE_MIN_PX = 24
"""Faces this wide or wider are judged: smaller ones carry too little to recognise."""
DETAIL_LEAK = 0.65
"""A quarter of a face box whose fine structure correlates with the clip's above this keeps the
face's detail.  Uncovered faces of 24-150 px re-encoded by x264 at 4 Mb/s (OBS's recording here)
score 0.81-0.99; pixelated, blurred or filled ones up to 0.49, the most at 24 px, where a block
edge can fall on the hairline (scripts/bench_obs_load.py prints the highest covered score)."""
INSET = 0.1
"""Each side of a true box is moved in by this share of its size before judging."""
COVERED_STD = 2.0
"""A recorded frame whose pixels vary less than this is wholly covered (the fail-closed fill)."""


BIT_LEVELS = (96, 112)
"""Grey levels of a 0 and a 1 bit: apart by less than the live path's change threshold
(history.CHANGED_LEVEL), so the stamp changing every frame is not itself covered as change."""


def stamp(frame: np.ndarray, index: int) -> None:
    """Write ``index`` as BITS grey blocks into the bottom-left corner."""
    h = frame.shape[0]
    for b in range(BITS):
        frame[h - BIT_H:h, b * BIT_W:(b + 1) * BIT_W] = BIT_LEVELS[index >> b & 1]


def read_stamp(frame: np.ndarray) -> int | None:
    """The stamped index, or None when a block is not one of the two levels (covered or damaged)."""
    h = frame.shape[0]
    low, high = BIT_LEVELS
    bits = []
    for b in range(BITS):
        level = frame[h - BIT_H + 2:h - 2, b * BIT_W + 4:(b + 1) * BIT_W - 4].mean()
        if not low - 6 <= level <= high + 6:
            return None
        bits.append(level > (low + high) / 2)
    return sum(1 << b for b, on in enumerate(bits) if on)


class StampedClip(Clip):
    def frame(self, i):
        img, truths = super().frame(i)
        stamp(img, i)
        return img, truths


def wholly_covered(frame: np.ndarray) -> bool:
    return float(frame.std()) < COVERED_STD


def _detail(rgb: np.ndarray) -> np.ndarray:
    luma = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32)
    return luma - cv2.GaussianBlur(luma, (0, 0), 0.8)


def detail_kept(recorded: np.ndarray, original: np.ndarray, box) -> float:
    """The highest correlation, over the box's four quarters, of the recorded fine structure with the
    original's (0: none of the face's detail, 1: all of it)."""
    h, w = original.shape[:2]
    # The face's own features, not the box's rim: a true box runs from hairline to chin and cheek to
    # cheek, and at 24 px its corners hold hair, collar and background, whose strong edges survive
    # a pixelation's blocks.
    ix, iy = INSET * (box[2] - box[0]), INSET * (box[3] - box[1])
    x0, y0 = max(int(round(box[0] + ix)), 0), max(int(round(box[1] + iy)), 0)
    x1, y1 = min(int(round(box[2] - ix)), w), min(int(round(box[3] - iy)), h)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return 0.0
    # A margin of context so the high-pass at the box edge sees real neighbours.
    m = 4
    cx0, cy0, cx1, cy1 = max(x0 - m, 0), max(y0 - m, 0), min(x1 + m, w), min(y1 + m, h)
    rec = _detail(recorded[cy0:cy1, cx0:cx1])[y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0]
    org = _detail(original[cy0:cy1, cx0:cx1])[y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0]
    mx, my = (x1 - x0) // 2, (y1 - y0) // 2
    best = 0.0
    for sy in (slice(0, my), slice(my, None)):
        for sx in (slice(0, mx), slice(mx, None)):
            a, b = rec[sy, sx].ravel(), org[sy, sx].ravel()
            norm = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
            if norm > 1e-6:
                best = max(best, float(np.dot(a, b)) / norm)
    return best


@dataclass
class BoxReport:
    frames: int = 0
    """Recorded frames judged."""
    covered: int = 0
    """Of those, wholly covered."""
    face_frames: int = 0
    """(frame, box) pairs judged: boxes big enough, in frames not wholly covered."""
    leaks: list[tuple[int, int, str, float]] = field(default_factory=list)
    """(recorded frame, clip frame, label, detail kept) of every box left with its detail."""
    worst_covered: float = 0.0
    """The most detail a box judged covered kept (how far from the threshold covers are)."""
    first_picture: int | None = None
    """Index of the first recorded frame not wholly covered (``start`` or not)."""


MIN_WIDTH_PX = {"face": FACE_MIN_PX, "text": 12, "plate": 12}


def judge_boxes(frames, clip: StampedClip, truths: list[list[Truth]], kinds=("face",), start: int = 0) -> BoxReport:
    """Every sensitive box of ``kinds`` (of its kind's MIN_WIDTH_PX or more) in every recorded frame
    from ``start`` that is not wholly covered: does it keep its detail?  ``frames``: any iterable."""
    report = BoxReport()
    originals: dict[int, np.ndarray] = {}
    for n, frame in enumerate(frames):
        covered = wholly_covered(frame)
        if report.first_picture is None and not covered:
            report.first_picture = n
        if n < start:
            continue
        report.frames += 1
        if covered:
            report.covered += 1
            continue
        index = read_stamp(frame)
        if index is None or index >= clip.frames:
            raise AssertionError(f"recorded frame {n} has no readable stamp (its corner was covered)")
        if index not in originals:
            originals[index] = clip.frame(index)[0]
        for truth in truths[index]:
            if (truth.kind not in kinds or not truth.sensitive
                    or truth.box[2] - truth.box[0] < MIN_WIDTH_PX[truth.kind] or truth.box[3] - truth.box[1] < 8):
                continue
            report.face_frames += 1
            kept = detail_kept(frame, originals[index], truth.box)
            if kept > DETAIL_LEAK:
                report.leaks.append((n, index, truth.label, round(kept, 2)))
            else:
                report.worst_covered = max(report.worst_covered, kept)
    return report


def judge_faces(frames, clip: StampedClip, truths: list[list[Truth]], start: int = 0) -> BoxReport:
    """Every face of FACE_MIN_PX or more in every recorded frame from ``start`` that is not wholly covered."""
    return judge_boxes(frames, clip, truths, ("face",), start)
