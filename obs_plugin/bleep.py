"""Minimal bleep rendering for the audio filter: beep, silence or reversed speech over a span.

Kept apart from `inference_server.speech.render` (whose tone it shares) because the filter
bleeps packet by packet from a ring on OBS's audio thread; the phase of the beep comes from
the absolute sample index so a bleep that spans several packets is one continuous tone.
"""

from __future__ import annotations

import numpy as np

from inference_server.speech.render import BEEP_HZ, BEEP_LEVEL


def beep(first_index: int, n: int, sample_rate: int) -> np.ndarray:
    idx = np.arange(first_index, first_index + n, dtype=np.float64)
    return (BEEP_LEVEL * np.sin(2 * np.pi * BEEP_HZ * idx / sample_rate)).astype(np.float32)


def render_span(out: np.ndarray, lo: int, hi: int, mode: str, first_index: int, sample_rate: int, mirrored) -> None:
    """Replace out[:, lo:hi] (sample index first_index+lo ...) by the bleep of `mode`.

    `mirrored(lo, hi)` returns the source samples for reversed speech, or None when they are not
    in the buffer any more (then the span is silenced: never the original order).
    """
    if hi <= lo:
        return
    if mode == "beep":
        out[:, lo:hi] = beep(first_index + lo, hi - lo, sample_rate)
        return
    if mode == "reverse":
        rev = mirrored(lo, hi)
        if rev is not None:
            out[:, lo:hi] = rev
            return
    out[:, lo:hi] = 0.0
