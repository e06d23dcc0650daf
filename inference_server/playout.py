"""Playing a stream D seconds late with the decisions made for it (numpy only).

The OBS filters and the demo publisher both submit each frame and audio packet as it arrives and
play it D later; what they play comes from here:
  - video: which held frame is due (the newest at least D old, by timestamp, so a source that
    skips frames is not delayed further) and how to draw it (its regions, or the whole frame
    covered when it has no decision: fail closed);
  - audio: bleeping the decided spans and muting, sample by sample, whatever is not decided yet.
The OBS video filter holds its frames on the GPU and asks `due_index` which to draw; the demo
holds them in a `DelayLine`.  The OBS audio filter cuts its packets where OBS's timestamps jump
and gives each piece to `play_audio`; the demo's audio is one clock, one piece.

Audio is indexed by absolute sample number, and the bleeps are `speech.render`'s, so a span that
crosses packets renders exactly as if it were whole.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np

from .regions import FrameDecision, Region
from .speech.intervals import FAILCLOSED
from .speech.render import Span, fade_samples, render_samples, sample_index, spans_at

AudioDecide = Callable[[float, float], tuple[list[tuple[float, float, str]], float]]
"""The client's ``audio_decision(start_pts, end_pts)`` -> ([(start, end, kind)], decided_until)."""


# --- video -----------------------------------------------------------------------------------
def due_index(stamps: Sequence[float | None], now: float, delay_s: float, frame_time: float) -> int | None:
    """Index of the newest held frame at least ``delay_s`` older than ``now`` (half a frame of
    slack for timestamp jitter), or None; ``stamps``: each held frame's pts, None for an empty slot."""
    target = now - delay_s + frame_time / 2
    best = None
    for i, pts in enumerate(stamps):
        if pts is not None and pts <= target and (best is None or pts > stamps[best]):  # type: ignore[operator]
            best = i
    return best


def frame_cover(decision: FrameDecision | None, fail_open: bool, max_regions: int | None, missing: str) -> tuple[list[Region], bool, str]:
    """How to draw a frame given its decision (None: none came in time): (regions, cover whole
    frame, why).  ``max_regions``: the most a renderer can draw (None: no limit); ``missing``:
    the reason to give when there is no decision."""
    if decision is None or decision.fail_closed:
        if fail_open:
            return [], False, ""  # the user's explicit choice, warned about where it is made
        return [], True, (decision.reason or "server failed closed") if decision is not None else missing
    if max_regions is not None and len(decision.regions) > max_regions:
        return [], True, f"{len(decision.regions)} regions > {max_regions}"
    return decision.regions, False, ""


class DelayLine:
    """Frames held in memory until they are due (the demo's; OBS holds its frames on the GPU)."""

    def __init__(self, delay_s: float, frame_time: float):
        self.delay_s, self.frame_time = delay_s, frame_time
        self.held: deque[tuple[int, float, np.ndarray]] = deque()

    def push(self, frame_id: int, pts: float, frame: np.ndarray) -> None:
        self.held.append((frame_id, pts, frame))

    def due(self, now: float) -> tuple[int, np.ndarray] | None:
        """The frame due at ``now`` (frames older than it are dropped), or None."""
        i = due_index([pts for _, pts, _ in self.held], now, self.delay_s, self.frame_time)
        if i is None:
            return None
        for _ in range(i):
            self.held.popleft()
        frame_id, _, frame = self.held[0]
        return frame_id, frame


# --- audio -----------------------------------------------------------------------------------
def play_audio(out: np.ndarray, out_first: int, pieces: list[tuple[int, int, float]], decide: AudioDecide | None,
               rate: int, mode: str, fail_open: bool) -> bool:
    """Bleep and mute ``out`` ((channels, n), first sample at absolute index ``out_first``) in place
    by the decisions for it; True when some of it was muted as not decided yet.

    ``pieces``: (lo, hi, stamp of sample lo) for each run of samples on one clock, together
    covering the samples of ``out`` that belong to the stream (none before its first).  Each is
    asked about on its own, and a span stays on its piece: past a clock jump the samples are on
    another clock; past ``out``'s ends only a span's fade matters.  ``decide`` None: no decisions
    can come (no server).  A "failclosed" span is silence (speech.render.sound_for); fail open, by
    the user's explicit choice, skips them and plays what is undecided."""
    f = fade_samples(rate)
    fade_s = f / rate  # a span's fade may start in this packet
    spans: list[Span] = []
    undecided: list[tuple[int, int]] = []
    for k, (lo, hi, pts) in enumerate(pieces):
        intervals: list[tuple[float, float, str]]
        if decide is None:
            intervals, decided_until = [], (math.inf if fail_open else -math.inf)
        else:
            intervals, decided_until = decide(pts - fade_s, pts + (hi - lo) / rate + fade_s)
        near = (lo if k else lo - f, hi if k + 1 < len(pieces) else hi + f)
        spans += spans_at([iv for iv in intervals if not (fail_open and iv[2] == FAILCLOSED)], lo, pts, rate, mode, near)
        if not fail_open:
            undecided.append((sample_index(decided_until, lo, pts, rate, math.ceil, (lo, hi)), hi))
    render_samples(out, out_first, spans, rate)
    for lo, hi in undecided:
        out[:, lo - out_first:hi - out_first] = 0.0
    return any(lo < hi for lo, hi in undecided)
