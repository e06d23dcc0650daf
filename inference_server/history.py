"""The recent frames of a live stream, as small grey images, and what changed between two of them.

A detection run vouches for the frame it ran on: every face (or line of text) in it was found.
Between runs, the picture that has not changed since the newest run is still vouched for by it;
what changed can hold something new.  So a live estimate covers the tracked regions, plus every
part of the picture that changed since the newest run and that no track explains (a face that
moved changes the cells it left and the cells it entered, and both are explained by its boxes then
and now).  Work and cover then grow with the change in the picture, not with the frames: a static
screen is vouched for by one run, however long ago it was (up to the kind's age limit).

The images are the luma of every n-th pixel (about 640x360 whatever the frame size), kept in
memory for a few seconds and never written anywhere.
"""

from __future__ import annotations

import bisect
import collections

import cv2
import numpy as np

HISTORY_WIDTH, HISTORY_HEIGHT = 640, 360
"""At least this many pixels across and down: a 24 px face in a 1080p frame is 8 px here."""
CELL = 16
"""Change is judged on cells of this many history pixels (about 32 frame pixels at 720p)."""
CHANGED_LEVEL = 20
"""A pixel whose luma moved by more than this changed (sensor and codec noise stay below)."""
CHANGED_SHARE = 0.03
"""A cell with more than this share of changed pixels changed (a 24 px face entering a cell changes
far more of it; 3 % of a cell is the size of a couple of noisy pixels' neighbourhood)."""
KEEP_S = 13.0
"""Seconds of frames kept: the change since the newest run of a kind is measured against that run's
frame, up to the longest live estimate reach (scheduler.LIVE_POLICIES) plus the longest D."""
SHIFT_SLACK_PX = 3
PICTURE_MOTION_SHARE = 0.25
"""The whole picture's motion explains change only when it explains at least this share of the
picture's cells away from the followed faces (``_picture_moved``)."""
_SLACK = np.ones((2 * SHIFT_SLACK_PX + 1, 2 * SHIFT_SLACK_PX + 1), np.uint8)


def history_step(height: int, width: int) -> int:
    """The pixel step that keeps at least HISTORY_WIDTH x HISTORY_HEIGHT of a frame."""
    return max(1, min(height // HISTORY_HEIGHT, width // HISTORY_WIDTH))


class FrameHistory:
    """Grey images of the recent frames by time, and the frame size they stand for."""

    def __init__(self, keep_s: float = KEEP_S):
        self.keep_s = keep_s
        self._times: list[float] = []
        self._images: collections.deque[np.ndarray] = collections.deque()
        self.scale = (1.0, 1.0)
        """Frame pixels per history pixel, (x, y)."""

    def add(self, t: float, image: np.ndarray, size: tuple[int, int]) -> None:
        """A frame at t: ``image`` is its RGB(A), whole or every n-th pixel; ``size`` its (width, height)."""
        step = history_step(*image.shape[:2])
        image = image[::step, ::step]
        grey = cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)
        self.scale = (size[0] / grey.shape[1], size[1] / grey.shape[0])
        if self._times and t <= self._times[-1]:
            self.clear()  # the clock went back: what was kept belongs to another timeline
        self._times.append(t)
        self._images.append(grey)
        while self._times and self._times[0] < t - self.keep_s:
            self._times.pop(0)
            self._images.popleft()

    def clear(self) -> None:
        self._times.clear()
        self._images.clear()

    def at(self, t: float) -> np.ndarray | None:
        """The image of the frame at exactly t, if it is still kept."""
        i = bisect.bisect_left(self._times, t)
        return self._images[i] if i < len(self._times) and self._times[i] == t else None

    def times_between(self, start: float, end: float) -> list[float]:
        """Kept frame times in (start, end]."""
        return self._times[bisect.bisect_right(self._times, start):bisect.bisect_right(self._times, end)]

    def cell_box(self, row: int, col: int) -> tuple[float, float, float, float]:
        """A cell in frame pixels."""
        sx, sy = self.scale
        return (col * CELL * sx, row * CELL * sy, (col + 1) * CELL * sx, (row + 1) * CELL * sy)


def _cell_share(mask: np.ndarray) -> np.ndarray:
    """Per cell, the share of its pixels that are set (cells past the image's edge count as unset)."""
    rows, cols = -(-mask.shape[0] // CELL), -(-mask.shape[1] // CELL)
    padded = np.zeros((rows * CELL, cols * CELL), bool)
    padded[: mask.shape[0], : mask.shape[1]] = mask
    return padded.reshape(rows, CELL, cols, CELL).mean(axis=(1, 3))


def changed_cells(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The cells that changed between two same-sized images."""
    return _cell_share(cv2.absdiff(a, b) > CHANGED_LEVEL) > CHANGED_SHARE


def _shifted(images: np.ndarray, dx: int, dy: int) -> tuple[np.ndarray, np.ndarray]:
    """``images`` (..., height, width) moved by (dx, dy), and the cells of the result that came whole
    from inside them."""
    h, w = images.shape[-2:]
    out = np.zeros_like(images)
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., yd, xd] = images[..., ys, xs]
    rows, cols = np.arange(-(-h // CELL)) * CELL, np.arange(-(-w // CELL)) * CELL
    whole_rows = (rows - dy >= 0) & (np.minimum(rows + CELL, h) - dy <= h)
    whole_cols = (cols - dx >= 0) & (np.minimum(cols + CELL, w) - dx <= w)
    return out, whole_rows[:, None] & whole_cols[None, :]


def _cells_inside(box, history: FrameHistory, shape: tuple[int, int]) -> np.ndarray:
    """The cells wholly inside ``box`` (frame pixels) of an image of ``shape``; a box reaching the
    frame's edge also holds the edge's partial cells."""
    sx, sy = history.scale
    x0, y0, x1, y1 = box
    rows, cols = -(-shape[0] // CELL), -(-shape[1] // CELL)
    c0, r0 = max(int(np.ceil(x0 / sx / CELL)), 0), max(int(np.ceil(y0 / sy / CELL)), 0)
    c1 = cols if x1 >= shape[1] * sx else int(x1 / sx) // CELL
    r1 = rows if y1 >= shape[0] * sy else int(y1 / sy) // CELL
    inside = np.zeros((rows, cols), bool)
    if c1 > c0 and r1 > r0:
        inside[r0:r1, c0:c1] = True
    return inside


def unexplained_cells(history: FrameHistory, since: float, t: float, explained, motions=()) -> np.ndarray | None:
    """The cells changed from ``since`` to t that lie in no ``explained`` box (frame pixels) and that
    are not the picture at ``since`` moved: by a tracked face's motion near that face (``motions``:
    ((dx, dy), near) in frame pixels, a face's shift and the box within which it carries hair,
    shoulders and background with it), or by the whole picture's motion (``_picture_moved``).
    None when either frame is no longer kept."""
    a, b = history.at(since), history.at(t)
    if a is None or b is None or a.shape != b.shape:
        return None
    cells = changed_cells(a, b)
    for box in explained:
        # Only cells wholly inside the box: the part of a cell outside it is not covered by it, and a
        # face half in such a cell showed there when the cell counted as explained.
        cells &= ~_cells_inside(box, history, a.shape)
    if not cells.any():
        return cells
    # Far from a face, its shift explains nothing: another face that jumped by the same distance
    # (too fast to follow) would show there as the old picture moved.
    sx, sy = history.scale
    near_faces = np.zeros_like(cells)
    near_by_shift: dict[tuple[int, int], np.ndarray] = {}
    for (dx, dy), near in motions:
        shift = (int(round(dx / sx)), int(round(dy / sy)))
        inside = _cells_inside(near, history, a.shape)
        near_by_shift[shift] = near_by_shift.get(shift, near_faces) | inside
        near_faces |= inside
    # The shift is a tracked face's, measured to a pixel or two: each pixel is compared with the range
    # of its old neighbours within SHIFT_SLACK_PX, so that error does not count as change.  The
    # range is taken once, with room for the noise, and moved with each shift.
    lo = cv2.subtract(cv2.erode(a, _SLACK), CHANGED_LEVEL)
    hi = cv2.add(cv2.dilate(a, _SLACK), CHANGED_LEVEL)
    for (dx, dy), near in near_by_shift.items():
        if (cells & near).any():  # (0, 0) stays: a face that moved less than a pixel carries its surroundings
            cells &= ~(near & _moved_by(lo, hi, b, dx, dy))
    if cells.mean() >= PICTURE_MOTION_SHARE:
        cells &= ~_picture_moved(a, b, lo, hi, cells & ~near_faces)
    return cells


def _moved_by(lo: np.ndarray, hi: np.ndarray, b: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """The cells of ``b`` that are the old picture (its neighbour range ``lo``..``hi``) moved by
    (dx, dy) history pixels; only cells that came whole from inside the old picture count."""
    if abs(dx) >= b.shape[1] or abs(dy) >= b.shape[0]:
        return np.zeros((-(-b.shape[0] // CELL), -(-b.shape[1] // CELL)), bool)
    (moved_lo, moved_hi), whole = _shifted(np.stack([lo, hi]), dx, dy)
    return whole & (_cell_share((b < moved_lo) | (b > moved_hi)) <= CHANGED_SHARE)


def _picture_moved(a: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray, away: np.ndarray) -> np.ndarray:
    """The cells that the whole picture's motion from ``a`` to ``b`` (a camera that pans or shakes, a
    page that scrolls) explains, or none.  The motion is the strongest shift between the two
    (phase correlation), and it counts only when it explains PICTURE_MOTION_SHARE of all the cells
    among the changed cells ``away`` from every followed face: a face that jumped, or two faces
    moving alike over a plain wall, move too few cells to pass for the picture's motion."""
    (gx, gy), _ = cv2.phaseCorrelate(a.astype(np.float32), b.astype(np.float32))
    moved = _moved_by(lo, hi, b, int(round(gx)), int(round(gy)))
    return moved if (moved & away).sum() >= PICTURE_MOTION_SHARE * moved.size else np.zeros_like(moved)


def cell_boxes(history: FrameHistory, cells: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Frame-pixel boxes covering the marked cells: runs along each row, stacked where rows repeat them."""
    boxes: list[tuple[float, float, float, float]] = []
    open_runs: dict[tuple[int, int], int] = {}  # (first col, last col) -> index in boxes
    for row in range(cells.shape[0]):
        runs, col = [], 0
        while col < cells.shape[1]:
            if cells[row, col]:
                start = col
                while col < cells.shape[1] and cells[row, col]:
                    col += 1
                runs.append((start, col - 1))
            col += 1
        still_open = {}
        for run in runs:
            x0, y0, _, _ = history.cell_box(row, run[0])
            _, _, x1, y1 = history.cell_box(row, run[1])
            if run in open_runs:
                i = open_runs[run]
                boxes[i] = (boxes[i][0], boxes[i][1], boxes[i][2], y1)
            else:
                i = len(boxes)
                boxes.append((x0, y0, x1, y1))
            still_open[run] = i
        open_runs = still_open
    return boxes
