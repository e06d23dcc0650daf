"""Judging the recorded speech of the end-to-end clip against the clip's own track: where the
sentence without PII came through intact, and where the spoken phone number was bleeped.

The recording is matched to the looping source by waveform cross-correlation; each 0.1 s block
is then aligned on its own, because OBS's media source drifts 30-60 ms at each loop restart.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.signal import correlate

from .media import RATE, dominant_hz
from .speech import NUMBER_CHECK, PLAIN_CHECK

LOOP_DRIFT_S = 0.15


def best_lag(recorded: np.ndarray, source: np.ndarray) -> int:
    """Sample offset of `source` (looped) inside `recorded`: the peak of their circular waveform
    cross-correlation.  Beeps and silences do not correlate with speech, so only what passed
    through counts (an envelope match was pulled off by a long beep)."""
    n = len(source)
    xc = np.fft.irfft(np.conj(np.fft.rfft(recorded[:n], n)) * np.fft.rfft(source, n), n)
    return int(np.argmax(xc))


def _aligned(audio: np.ndarray, at: int, ref: np.ndarray) -> tuple[np.ndarray, float]:
    """The recorded span that best matches ``ref`` within LOOP_DRIFT_S of sample ``at``, and their
    correlation.  The recorded audio moves by tens of milliseconds around each loop restart of the
    media source: OBS's own loop drifts 30-60 ms per loop (seen without our filters; docs/obs.md).
    One lag for the whole recording then left an untouched sentence 21-66 ms off and "not intact".
    This test is about what was muted or bleeped; sync is test_obs_av's."""
    drift = int(LOOP_DRIFT_S * RATE)
    lo, hi = max(at - drift, 0), min(at + drift + len(ref), len(audio))
    seg = audio[lo:hi].astype(np.float64)
    if len(seg) < len(ref) or not ref.std():
        return audio[at:at + len(ref)], 0.0
    dots = correlate(seg, ref.astype(np.float64), mode="valid", method="fft")
    power = np.concatenate([[0.0], np.cumsum(seg ** 2)])
    energy = power[len(ref):] - power[:-len(ref)]  # |span|^2 at every lag
    score = dots / np.sqrt(np.maximum(energy, 1e-12) * float(np.dot(ref, ref)))
    k = int(np.argmax(score))
    got = audio[lo + k:lo + k + len(ref)]
    return got, float(np.corrcoef(got, ref)[0, 1]) if got.std() > 0 else 0.0


def _blockwise(audio: np.ndarray, at: int, ref: np.ndarray) -> float:
    """Correlation with ``ref`` of the recording from sample ``at``, each 0.2 s block aligned on its
    own (``_aligned``): the shift can end inside a sentence (one run was 21 ms off for half a second
    after the loop restarted, then aligned again).  A muted or bleeped block still counts against."""
    n = int(0.2 * RATE)
    got = np.concatenate([_aligned(audio, at + i, ref[i:i + n])[0] for i in range(0, len(ref), n)])
    return float(np.corrcoef(got, ref)[0, 1]) if got.std() > 0 and len(got) == len(ref) else 0.0


class Block(NamedTuple):
    at_s: float
    """Recording time."""
    kind: str
    """"intact"; "beep": the 1 kHz beep instead of the speech (what the redactor took for PII);
    "silence": mostly silent, as where the server failed closed; "pause": a pause in the clip
    itself, not judged; "other": any other damage."""


def blocks(audio: np.ndarray, at: int, ref: np.ndarray) -> list[Block]:
    """``ref``'s speech, 0.1 s block by block, as recorded from sample ``at`` (each block aligned
    on its own: ``_aligned``)."""
    n, quiet = int(0.1 * RATE), int(0.01 * RATE)
    blocks = []
    for i in range(0, len(ref) - n + 1, n):
        got, corr = _aligned(audio, at + i, ref[i:i + n])
        if corr >= 0.8:
            kind = "intact"
        elif np.abs(got).max() > 1e-3 and _tone_share(got, 1000) > 0.3:
            kind = "beep"
        elif np.sqrt(np.mean(ref[i:i + n] ** 2)) < 0.01:
            kind = "pause"
        else:
            peaks = [np.abs(got[j:j + quiet]).max() for j in range(0, len(got) - quiet + 1, quiet)]
            kind = "silence" if sum(p < 1e-3 for p in peaks) >= 0.6 * len(peaks) else "other"
        blocks.append(Block((at + i) / RATE, kind))
    return blocks


def _tone_share(audio: np.ndarray, hz: float) -> float:
    """Share of ``audio``'s power within 60 Hz of ``hz``: most of it for the beep, a small part for
    speech even where one harmonic is its loudest."""
    power = np.abs(np.fft.rfft(audio * np.hanning(len(audio)))) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / RATE)
    return float(power[np.abs(freqs - hz) <= 60].sum() / max(power.sum(), 1e-20))


class Speech(NamedTuple):
    plain_ok: list[bool]
    """The sentence without PII came through intact, at each place it lies whole."""
    plain_blocks: list[list[Block]]
    pii_ok: list[bool]
    """The number was bleeped or silenced, at each place it lies whole."""


def judge_speech(audio: np.ndarray, source: np.ndarray) -> Speech:
    """Every place in the recording where the looping clip's plain sentence (or number) lies whole."""
    lag = best_lag(audio, source)
    found = Speech([], [], [])
    plain, digits = (slice(int(a * RATE), int(b * RATE)) for a, b in (PLAIN_CHECK, NUMBER_CHECK))
    for start in range(-lag - len(source), len(audio), len(source)):
        if start + plain.start >= 0 and start + plain.stop <= len(audio):
            found.plain_ok.append(_blockwise(audio, start + plain.start, source[plain]) > 0.8)
            found.plain_blocks.append(blocks(audio, start + plain.start, source[plain]))
        if start + digits.start >= 0 and start + digits.stop <= len(audio):
            got, corr = _aligned(audio, start + digits.start, source[digits])
            found.pii_ok.append(bool(corr < 0.3 and (got.std() < 1e-3 or abs(dominant_hz(got) - 1000) < 30)))
    return found
