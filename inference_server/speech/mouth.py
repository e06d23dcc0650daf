"""Mouth regions for the video frames a bleep spans, so the bleeped words cannot be lip-read.

The face detector gives five landmarks per face (eyes, nose, mouth corners).
The mouth box spans the corners plus half the mouth's width on each side, and
from halfway between nose and mouth down past the lower lip and chin, where the
jaw moves when speaking.  A face without landmarks gets the lower part of its
box.  The boxes are ordinary ``Region(kind="mouth")`` and go through the same
masking path as faces and text.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from ..regions import Region
from .intervals import MuteInterval

MOUTH_PAD_S = 0.1
"""Lips move a little before and after the sound; the blur covers that too."""


def mouth_box(face: Region) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = face.box
    if len(face.landmarks) >= 5:
        (_, _), (_, _), (nx, ny), (lx, ly), (rx, ry) = face.landmarks[:5]
        width = max(abs(rx - lx), 0.25 * face.width)
        drop = max((ly + ry) / 2 - ny, 0.12 * face.height)  # nose-to-mouth distance
        mouth_y = (ly + ry) / 2
        return (min(lx, rx) - 0.5 * width, mouth_y - 0.6 * drop, max(lx, rx) + 0.5 * width, mouth_y + 1.4 * drop)
    return (x0 + 0.15 * face.width, y0 + 0.55 * face.height, x1 - 0.15 * face.width, y1 + 0.05 * face.height)


def muting_at(t: float, intervals: Iterable[MuteInterval], pad: float = MOUTH_PAD_S) -> MuteInterval | None:
    """The interval (padded by ``pad``) that covers time t, if any."""
    return next((iv for iv in intervals if iv.start - pad <= t < iv.end + pad), None)


def mouth_regions(t: float, faces: Sequence[Region], intervals: Iterable[MuteInterval],
                  pad: float = MOUTH_PAD_S) -> list[Region]:
    """Mouth regions for a frame at time ``t`` (same clock as the intervals) showing ``faces``.

    Empty when no interval covers t.  Each region keeps its face's track and origin, and
    takes the interval's kind as label (never the words)."""
    iv = muting_at(t, intervals, pad)
    if iv is None:
        return []
    return [Region(kind="mouth", box=mouth_box(f), score=f.score, label=iv.kind, origin=f.origin,
                   track_id=f.track_id) for f in faces if f.kind == "face"]
