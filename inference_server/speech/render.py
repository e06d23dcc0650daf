"""Bleeping: replace mute spans in planar audio by a beep or silence.

Nothing else: a bleep sound must carry nothing of what it hides (reversed speech, played
backwards, gives the words back).

One renderer, by absolute sample index (`render_samples`): the OBS audio filter and the demo
call it through `inference_server.playout`; `render` (redact, eval) turns times into sample
ranges for it.  Because every sample is addressed by its absolute index, a span that crosses
chunks renders exactly as if it were whole: the beep's phase, and the raised-cosine fades that
lie *outside* each span, so not one sample inside it keeps any of the original, and its edges do
not click.  Each span replaces its samples on every channel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ..errors import MediaError
from ..settings import BLEEP_MODES
from .intervals import FAILCLOSED, MuteInterval

BEEP_HZ = 1000.0
BEEP_LEVEL = 0.25  # about -12 dBFS: clearly a bleep, not painful
FADE_MS = 5.0

SAMPLE_SLACK = 1e-3
"""Share of a sample by which a stamp may miss it (OBS rounds stamps to ns: 5e-5 of a sample at 48 kHz)."""


def sound_for(kind: str, mode: str) -> str:
    """The sound over a mute interval of ``kind``.  A fail-closed interval (nothing decided it:
    recogniser failed or late, server away) is silence whatever the mode: it carries nothing of
    the original either way, it can last as long as the failure does (a tone for minutes drives
    listeners off), and a beep would claim a word was bleeped where none was found."""
    return "silence" if kind == FAILCLOSED else mode


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


def spans_at(intervals: Iterable[tuple[float, float, str]], lo: int, pts: float, rate: int, mode: str,
             bounds: tuple[int, int]) -> list[Span]:
    """(start, end, kind) stamped on the clock where absolute index ``lo`` is stamped ``pts``, as
    spans that cover every sample they touch, clipped to ``bounds``; empty ones left out."""
    spans = (Span(sample_index(start, lo, pts, rate, math.floor, bounds), sample_index(end, lo, pts, rate, math.ceil, bounds),
                  sound_for(kind, mode)) for start, end, kind in intervals)
    return [s for s in spans if s.first < s.stop]


def _gain(idx: np.ndarray, span: Span, fade: int) -> np.ndarray:
    """Share of the original at absolute sample indexes ``idx``: 0 inside the span, a raised-cosine
    ramp over the ``fade`` samples on each side of it, 1 elsewhere."""
    g = np.ones(idx.shape)
    before = (idx >= span.first - fade) & (idx < span.first)
    g[before] = 0.5 + 0.5 * np.cos(np.pi * (idx[before] - (span.first - fade)) / fade)
    after = (idx >= span.stop) & (idx < span.stop + fade)
    g[after] = 0.5 - 0.5 * np.cos(np.pi * (idx[after] - span.stop) / fade)
    g[(idx >= span.first) & (idx < span.stop)] = 0.0
    return g


def render_samples(out: np.ndarray, out_first: int, spans: list[Span], sample_rate: int) -> None:
    """Bleep ``out`` ((channels, n) float32, first sample at absolute index ``out_first``) in place."""
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
        idx = np.arange(out_first + lo, out_first + hi, dtype=np.float64)
        keep[lo:hi] = np.minimum(keep[lo:hi], _gain(idx, s, f).astype(np.float32))
        if s.mode == "beep":
            fill[:, lo:hi] = (BEEP_LEVEL * np.sin(2 * np.pi * BEEP_HZ * idx / sample_rate)).astype(np.float32)
        cores.append((s, max(s.first - out_first, 0), min(s.stop - out_first, n)))
    # Cores last, so a neighbour's beep fade never reaches into a silenced span.
    for s, lo, hi in cores:
        if hi > lo and s.mode != "beep":
            fill[:, lo:hi] = 0.0
    out *= keep
    out += fill * (1.0 - keep)


def render(planar: np.ndarray, sample_rate: int, t0: float, intervals: list[MuteInterval],
           mode: str = "beep") -> np.ndarray:
    """A redacted copy of ``planar`` ((channels, n) float32, first sample at ``t0`` seconds): each
    interval covers every sample it touches."""
    if mode not in BLEEP_MODES:
        raise MediaError(f"unknown bleep mode {mode!r} (choices: {', '.join(BLEEP_MODES)})")
    audio = np.asarray(planar, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None, :]
    if audio.ndim != 2:
        raise MediaError(f"audio must be shaped (channels, samples); got shape {audio.shape}")
    out = np.nan_to_num(audio, nan=0.0, posinf=1.0, neginf=-1.0)
    first, f = round(t0 * sample_rate), fade_samples(sample_rate)
    spans = spans_at(((iv.start, iv.end, iv.kind) for iv in intervals), first, t0, sample_rate, mode,
                     (first - f, first + out.shape[1] + f))  # beyond them, a span's fade misses `out`
    render_samples(out, first, spans, sample_rate)
    return out
