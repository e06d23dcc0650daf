"""Whether covers hide boxes: the one place tests and evaluations judge box against box.

A box is (x0, y0, x1, y1) in pixels; a region is anything with such a ``.box`` (the engine's
Region).  IoU and the share of one box under another are the engine's own
(inference_server.regions): tests judge with the measure the product decides with.
"""

from __future__ import annotations

from typing import Iterable, Protocol, Sequence

import numpy as np

from inference_server.regions import iou, overlap_share

Box = Sequence[float]

__all__ = ["Box", "covered", "covered_share", "inside", "iou", "overlap_share"]


class HasBox(Protocol):
    box: Box


def inside(inner: Box, outer: Box, tolerance: float = 0.0) -> bool:
    """Whether ``inner`` lies wholly inside ``outer``, to within ``tolerance`` px on each side."""
    return (outer[0] <= inner[0] + tolerance and outer[1] <= inner[1] + tolerance
            and outer[2] >= inner[2] - tolerance and outer[3] >= inner[3] - tolerance)


def covered(box: Box, regions: Iterable[HasBox], tolerance: float = 0.0) -> bool:
    """Whether one of the regions holds all of ``box`` (what a cover drawn over that region hides)."""
    return any(inside(box, r.box, tolerance) for r in regions)


def covered_share(box: Box, regions: Iterable[HasBox], size: tuple[int, int]) -> float:
    """The share of ``box`` under the union of the regions' boxes, on a frame of ``size`` (w, h)."""
    w, h = size
    mask = np.zeros((h, w), bool)
    for r in regions:
        x0, y0, x1, y1 = (int(round(v)) for v in r.box)
        mask[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return float(mask[y0:y1, x0:x1].mean())
