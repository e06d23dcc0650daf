"""Bleeping: replace mute intervals in planar audio by a beep or silence.

Nothing else: a bleep sound must carry nothing of what it hides (reversed speech, played
backwards, gives the words back).

Sample-accurate: sample k of a chunk starting at ``t0`` sits at ``t0 + k / rate``
and is replaced when that time is inside an interval, on every channel.  The
fades lie *outside* the interval (raised-cosine, ``fade_ms`` long), so not one
sample inside it keeps any of the original, and the edges do not click.  The
beep's phase is a function of absolute time, so an interval split across
chunks renders exactly as if it were rendered whole.
"""

from __future__ import annotations

import numpy as np

from ..errors import MediaError
from ..settings import BLEEP_MODES
from .intervals import FAILCLOSED, MuteInterval

BEEP_HZ = 1000.0
BEEP_LEVEL = 0.25  # about -12 dBFS: clearly a bleep, not painful
FADE_MS = 5.0


def sound_for(kind: str, mode: str) -> str:
    """The sound over a mute interval of ``kind``.  A fail-closed interval (nothing decided it:
    recogniser failed or late, server away) is silence whatever the mode: it carries nothing of
    the original either way, it can last as long as the failure does (a tone for minutes drives
    listeners off), and a beep would claim a word was bleeped where none was found."""
    return "silence" if kind == FAILCLOSED else mode


def fade_gain(times: np.ndarray, iv: MuteInterval, fade: float) -> np.ndarray:
    """1 where the original plays, 0 inside the interval, a raised-cosine ramp in the fades
    (also the OBS audio filter's, which passes absolute sample indexes divided by the rate)."""
    g = np.ones_like(times)
    if fade > 0:
        before = (times >= iv.start - fade) & (times < iv.start)
        g[before] = 0.5 + 0.5 * np.cos(np.pi * (times[before] - (iv.start - fade)) / fade)
        after = (times >= iv.end) & (times < iv.end + fade)
        g[after] = 0.5 - 0.5 * np.cos(np.pi * (times[after] - iv.end) / fade)
    g[(times >= iv.start) & (times < iv.end)] = 0.0
    return g


def render(planar: np.ndarray, sample_rate: int, t0: float, intervals: list[MuteInterval],
           mode: str = "beep", fade_ms: float = FADE_MS) -> np.ndarray:
    """A redacted copy of ``planar`` ((channels, n) float32, first sample at ``t0`` seconds)."""
    if mode not in BLEEP_MODES:
        raise MediaError(f"unknown bleep mode {mode!r} (choices: {', '.join(BLEEP_MODES)})")
    audio = np.asarray(planar, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None, :]
    if audio.ndim != 2:
        raise MediaError(f"audio must be shaped (channels, samples); got shape {audio.shape}")
    out = np.nan_to_num(audio, nan=0.0, posinf=1.0, neginf=-1.0)
    n = out.shape[1]
    if n == 0 or not intervals:
        return out
    fade = fade_ms / 1000.0
    times = t0 + np.arange(n, dtype=np.float64) / sample_rate
    t_end = times[-1]
    for iv in intervals:
        if iv.end + fade < t0 or iv.start - fade > t_end:
            continue
        g = fade_gain(times, iv, fade)
        if sound_for(iv.kind, mode) == "beep":
            fill = BEEP_LEVEL * np.sin(2 * np.pi * BEEP_HZ * (times - iv.start))
            replacement = np.broadcast_to(fill, out.shape)
        else:
            replacement = np.zeros_like(out)
        g32 = g.astype(np.float32)
        out = out * g32 + replacement.astype(np.float32) * (1.0 - g32)
    return out
