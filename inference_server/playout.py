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

Everything audio is indexed by absolute sample number, so a span that crosses packets renders
exactly as if it were whole: the beep's phase, and the raised-cosine fades that lie *outside* each
span (not one sample inside keeps any of the original, and the edges do not click).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .regions import FrameDecision, Region
from .speech.intervals import FAILCLOSED, MuteInterval
from .speech.render import BEEP_HZ, BEEP_LEVEL, FADE_MS, fade_gain, sound_for

SAMPLE_SLACK = 1e-3
"""Share of a sample by which a stamp may miss it (OBS rounds stamps to ns: 5e-5 of a sample at 48 kHz)."""

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
@dataclass(frozen=True)
class Span:
    first: int
    """Absolute index of its first sample."""
    stop: int
    """Absolute index just after its last sample."""
    mode: str
    """beep or silence."""


def fade_samples(sample_rate: int) -> int:
    return max(1, round(FADE_MS * sample_rate / 1000))


def beep(first_index: int, n: int, sample_rate: int) -> np.ndarray:
    idx = np.arange(first_index, first_index + n, dtype=np.float64)
    return (BEEP_LEVEL * np.sin(2 * np.pi * BEEP_HZ * idx / sample_rate)).astype(np.float32)


def render(out: np.ndarray, out_first: int, spans: list[Span], sample_rate: int) -> None:
    """Bleep `out` ((channels, n), first sample at absolute index `out_first`) in place."""
    if not spans:
        return  # the common case, on OBS's audio thread: nothing to allocate
    n = out.shape[1]
    f = fade_samples(sample_rate)
    keep = np.ones(n, np.float32)  # share of the original in each output sample
    fill = np.zeros_like(out)
    cores = []
    for s in spans:
        lo, hi = max(s.first - f - out_first, 0), min(s.stop + f - out_first, n)
        if hi <= lo:
            continue
        times = (np.arange(lo, hi) + out_first) / sample_rate
        gain = fade_gain(times, MuteInterval(s.first / sample_rate, s.stop / sample_rate, s.mode), f / sample_rate)
        keep[lo:hi] = np.minimum(keep[lo:hi], gain.astype(np.float32))
        if s.mode == "beep":
            fill[:, lo:hi] = beep(out_first + lo, hi - lo, sample_rate)
        cores.append((s, max(s.first - out_first, 0), min(s.stop - out_first, n)))
    # Cores last, so a neighbour's beep fade never reaches into a silenced span.
    for s, lo, hi in cores:
        if hi > lo and s.mode != "beep":
            fill[:, lo:hi] = 0.0
    out *= keep
    out += fill * (1.0 - keep)


def sample_index(t: float, lo: int, pts: float, rate: int, rounding: Callable[[float], int],
                 bounds: tuple[int, int]) -> int:
    """Absolute index of the sample at stamp t, on the clock where index ``lo`` is stamped ``pts``,
    within ``bounds``.  ``rounding`` picks the sample a stamp between two samples goes to; a stamp
    within OBS's ns rounding of a sample is that sample."""
    if math.isfinite(t):
        x = (t - pts) * rate
        index = lo + rounding(x + (SAMPLE_SLACK if rounding is math.floor else -SAMPLE_SLACK))
    else:
        index = bounds[1] if t > 0 else bounds[0]
    return min(max(index, bounds[0]), bounds[1])


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
    n = out.shape[1]
    fade_s = fade_samples(rate) / rate  # a span's fade may start in this packet
    spans: list[Span] = []
    undecided: list[tuple[int, int]] = []
    for k, (lo, hi, pts) in enumerate(pieces):
        intervals: list[tuple[float, float, str]]
        if decide is None:
            intervals, decided_until = [], (math.inf if fail_open else -math.inf)
        else:
            intervals, decided_until = decide(pts - fade_s, pts + (hi - lo) / rate + fade_s)
        near = (lo if k else lo - n, hi if k + 1 < len(pieces) else hi + n)
        for s, e, kind in intervals:
            if fail_open and kind == FAILCLOSED:
                continue
            span = Span(sample_index(s, lo, pts, rate, math.floor, near), sample_index(e, lo, pts, rate, math.ceil, near),
                        sound_for(kind, mode))
            if span.first < span.stop:
                spans.append(span)
        if not fail_open:
            undecided.append((sample_index(decided_until, lo, pts, rate, math.ceil, (lo, hi)), hi))
    render(out, out_first, spans, rate)
    for lo, hi in undecided:
        out[:, lo - out_first:hi - out_first] = 0.0
    return any(lo < hi for lo, hi in undecided)
