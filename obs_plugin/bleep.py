"""Bleep rendering for the audio filter: a beep or silence over decided spans.

Kept apart from `inference_server.speech.render` (whose tone and fades it shares) because the
filter bleeps packet by packet from a ring on OBS's audio thread.  Everything is indexed by
absolute sample number, so a span that crosses packets renders exactly as if it were whole:
the beep's phase, and the raised-cosine fades that lie *outside* each span (not one sample
inside keeps any of the original, and the edges do not click).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inference_server.speech.intervals import MuteInterval
from inference_server.speech.render import BEEP_HZ, BEEP_LEVEL, FADE_MS, fade_gain


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
