"""Reading on-screen text again only where the picture changed since it was last read.

A stream's screen is mostly static: an overlay, a chat panel, a game's HUD.  OCR (the text
detector over the whole frame, then the recogniser) is the most expensive stage of the live
path, and reading the same static pixels every run finds the same text.  So the memory keeps,
for every part of the picture, its pixels as they were when they were last read (a composite of
the stream's history images, history.py) and the text found in the frame then.  The next run
reads only the rectangles around the cells that changed since (merged, and padded so that a word
is not cut at the rectangle's edge), and keeps the earlier answers everywhere else: an unchanged
part says what it said when it was read, text or no text.

Privacy: a run that read part of the picture vouches for all of it at its frame, as a run over
the whole frame would, because what it did not read has the pixels it had when it was read.
A text box is dropped only when the rectangles read again hold all of it; a rectangle that
reaches into an earlier box grows to hold it, so a box either is read again whole or stays.
Between runs nothing changes: what changed since the newest run and was not read yet is covered
by the change cover of live estimates (vision.py), and a settled answer is decided from runs on
both sides of its frame.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

from .history import CELL, changed_cells
from .regions import Region

PAD_CELLS = (1, 4)
"""Changed cells are read with this many cells around them (rows, columns), about 32 and 128
frame pixels at 720p: a line that changed in one word is read with its neighbours."""
FULL_READ_SHARE = 0.5
"""When the rectangles to read hold more of the picture than this, the whole frame is read: the
crops' overlap and per-call cost would exceed one read of it."""
MAX_AREAS = 8


Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class ReadPlan:
    """What one text run reads: ``areas`` (frame pixels) of the frame at t, or all of it (None)."""

    t: float
    image: np.ndarray | None
    scale: tuple[float, float]
    areas: list[Box] | None
    generation: int


class ReadMemory:
    """The picture as the text runs last read it, part by part, and what they found in it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._read: np.ndarray | None = None
        """History-sized grey image: each pixel as it was at the run that last read it."""
        self._regions: list[Region] = []
        self._generation = 0
        self._pending: ReadPlan | None = None

    def forget(self) -> None:
        """Read everything again on the next run (the settings that decide what is private changed)."""
        with self._lock:
            self._read, self._regions, self._pending = None, [], None
            self._generation += 1

    def plan(self, t: float, image: np.ndarray | None, scale: tuple[float, float]) -> list[Box] | None:
        """The rectangles (frame pixels) to read in the frame at t whose history image is
        ``image``: [] when nothing changed since it was read, None to read the whole frame (always
        when the image is not kept)."""
        with self._lock:
            areas = None if image is None or self._read is None or self._read.shape != image.shape else \
                _areas(changed_cells(self._read, image), scale, image.shape, self._regions)
            self._pending = ReadPlan(t, image, scale, areas, self._generation)
            return areas

    def remember(self, t: float, found: list[Region]) -> list[Region] | None:
        """What the run planned at t found in its areas, and the earlier answers elsewhere: the
        text of the whole frame at t; None when no plan for t is pending (the memory was reset
        since: nothing vouches for the parts it did not read)."""
        with self._lock:
            plan, self._pending = self._pending, None
            if plan is None or plan.t != t or plan.generation != self._generation:
                return None
            if plan.areas is None or self._read is None:
                self._read = plan.image.copy() if plan.image is not None else None
                self._regions = list(found)
                return list(found)
            kept = [r for r in self._regions if not any(_inside(r.box, a) for a in plan.areas)]
            for area in plan.areas:
                x0, y0, x1, y1 = _history_span(area, plan.scale, plan.image.shape)
                self._read[y0:y1, x0:x1] = plan.image[y0:y1, x0:x1]
            self._regions = kept + list(found)
            return list(self._regions)


def _inside(box: Box, area: Box) -> bool:
    return area[0] <= box[0] and area[1] <= box[1] and box[2] <= area[2] and box[3] <= area[3]


def _touches(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _union(a: Box, b: Box) -> Box:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def _history_span(area: Box, scale, shape) -> tuple[int, int, int, int]:
    """The history pixels that lie wholly inside ``area`` (frame pixels): those that were read."""
    sx, sy = scale
    return (max(int(np.ceil(area[0] / sx)), 0), max(int(np.ceil(area[1] / sy)), 0),
            min(int(area[2] / sx), shape[1]), min(int(area[3] / sy), shape[0]))


def _areas(cells: np.ndarray, scale, shape, regions: list[Region]) -> list[Box] | None:
    """Padded, merged frame rectangles around the changed cells, each grown to hold every earlier
    text box it reaches into; None when they are too many or too large to be worth cropping."""
    if not cells.any():
        return []
    rows, cols = PAD_CELLS
    padded = cv2.dilate(cells.astype(np.uint8), np.ones((2 * rows + 1, 2 * cols + 1), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(padded, connectivity=8)
    sx, sy = scale
    width, height = shape[1] * sx, shape[0] * sy
    areas: list[Box] = [
        (c * CELL * sx, r * CELL * sy, min((c + w) * CELL * sx, width), min((r + h) * CELL * sy, height))
        for c, r, w, h, _ in stats[1:count]]
    boxes = [r.box for r in regions]
    merged = True
    while merged:  # grow and merge until no rectangle reaches into another or into a text box
        merged = False
        for i, area in enumerate(areas):
            others = [b for b in boxes if _touches(area, b) and not _inside(b, area)]
            others += [a for j, a in enumerate(areas) if j != i and _touches(area, a)]
            if others:
                for other in others:
                    area = _union(area, other)
                areas = [a for j, a in enumerate(areas) if j != i and not _inside(a, area)] + [area]
                merged = True
                break
    share = sum((a[2] - a[0]) * (a[3] - a[1]) for a in areas) / max(width * height, 1.0)
    return None if share > FULL_READ_SHARE or len(areas) > MAX_AREAS else areas
