"""Mute intervals: the engine's answer for audio, on the caller's clock."""

from __future__ import annotations

from dataclasses import dataclass

FAILCLOSED = "failclosed"


@dataclass(frozen=True)
class MuteInterval:
    start: float
    """Seconds, caller's clock, inclusive."""
    end: float
    """Seconds, exclusive."""
    kind: str
    """The PII category (phone, card, email, ...) or "failclosed"; never the words."""

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict:
        return {"kind": self.kind, "start": round(self.start, 3), "end": round(self.end, 3)}


def merge_intervals(intervals: list[MuteInterval], gap: float = 0.0) -> list[MuteInterval]:
    """Sorted union of intervals; neighbours closer than ``gap`` become one (a beep that stops for
    a tenth of a second between two digits would let a listener count them)."""
    merged: list[MuteInterval] = []
    for iv in sorted(intervals, key=lambda i: (i.start, i.end)):
        if iv.end <= iv.start:
            continue
        if merged and iv.start <= merged[-1].end + gap:
            last = merged[-1]
            kind = last.kind if last.kind == iv.kind or last.kind == FAILCLOSED else (
                FAILCLOSED if iv.kind == FAILCLOSED else last.kind)
            merged[-1] = MuteInterval(last.start, max(last.end, iv.end), kind)
        else:
            merged.append(iv)
    return merged
