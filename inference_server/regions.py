"""What the engine says about a frame: regions to cover, as plain dataclasses.

Coordinates are frame pixels, (x0, y0) top-left inclusive, (x1, y1) exclusive.
A Region never carries the private text it covers, only its category.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol, Sequence

import numpy as np

TRACKED_KINDS = ("face", "text", "plate", "mouth")
KINDS = (*TRACKED_KINDS, "change")
""""change": a part of the picture that changed since the newest detection run and that no tracked
region explains; a live estimate covers it (history.py)."""
ORIGINS = ("detected", "tracked", "interpolated", "failclosed")


@dataclass(frozen=True)
class Region:
    kind: str
    """One of KINDS."""
    box: tuple[float, float, float, float]
    """x0, y0, x1, y1 in frame pixels."""
    score: float = 1.0
    label: str = ""
    """For text: the PII category (email, phone, card, iban, ssn, ip, address, person, custom, ...)."""
    landmarks: tuple[tuple[float, float], ...] = ()
    """Faces: left eye, right eye, nose, left mouth corner, right mouth corner."""
    origin: str = "detected"
    """One of ORIGINS: how the engine knows this region at this frame."""
    track_id: int = -1

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def center(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)

    def with_box(self, box, **changes) -> "Region":
        return replace(self, box=tuple(float(v) for v in box), **changes)

    def to_dict(self) -> dict:
        d = {"kind": self.kind, "box": [round(v, 1) for v in self.box], "score": round(self.score, 3),
             "origin": self.origin}
        if self.label:
            d["label"] = self.label
        if self.track_id >= 0:
            d["track"] = self.track_id
        return d


class Detector(Protocol):
    """The one interface every detector implements.

    ``frame`` is an HxWx3 RGB or HxWx4 RGBA uint8 array (alpha is ignored).
    Returned regions have origin "detected" and a kind in ``kinds``.
    """

    kinds: tuple[str, ...]

    def detect(self, frame: np.ndarray) -> list[Region]: ...


def clip_box(box: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box
    return (min(max(x0, 0.0), width), min(max(y0, 0.0), height), min(max(x1, 0.0), width), min(max(y1, 0.0), height))


def _intersection(a: Sequence[float], b: Sequence[float]) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    inter = _intersection(a, b)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def overlap_share(box: Sequence[float], other: Sequence[float]) -> float:
    """The share of ``box``'s area that ``other`` overlaps (0 for an empty box): whether a cover
    hides an object, where IoU would punish a cover larger than the object."""
    area = (box[2] - box[0]) * (box[3] - box[1])
    return _intersection(box, other) / area if area > 0 else 0.0


@dataclass
class FrameDecision:
    """The final answer for one frame: cover these regions, or (fail_closed) the whole frame."""

    regions: list[Region] = field(default_factory=list)
    fail_closed: bool = False
    reason: str = ""
