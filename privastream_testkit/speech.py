"""Speech with exact timing, from espeak-ng: one word, a corpus with every PII word's start and
end known to the sample, and the two-sentence track of the OBS end-to-end clip.

espeak-ng is the only speech synthesiser the tests and evaluations use, so every figure about
spoken PII is measured on the same voices.
"""

from __future__ import annotations

import io
import math
import subprocess
import wave
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the engine itself is not needed to make speech
    from inference_server.speech import MuteInterval

RATE = 48000
"""The sample rate of everything made here, OBS's own."""


def speak(text: str, voice: str = "en-us", speed: int = 150, sample_rate: int = RATE,
          trim: bool = False) -> np.ndarray:
    """Speech from espeak-ng as mono float32 at ``sample_rate``, read from its stdout (no file).
    ``trim`` cuts the leading and trailing silence, for word-by-word corpora that place each word."""
    from scipy.signal import resample_poly

    proc = subprocess.run(["espeak-ng", "--stdout", "-v", voice, "-s", str(speed), text], capture_output=True,
                          check=True)
    with wave.open(io.BytesIO(proc.stdout)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768
    g = math.gcd(sample_rate, rate)
    audio = resample_poly(pcm, sample_rate // g, rate // g).astype(np.float32)
    if not trim:
        return audio
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    return audio[loud[0]:loud[-1] + 1] if loud.size else audio[:0]


# The spoken track of the OBS end-to-end clip (tests/test_obs_e2e.py, scripts/eval_live_speech.py):
# a plain sentence, then a phone number said whole.  The CHECK spans are where the plain sentence
# must come through untouched and where the number must be bleeped, in seconds into the track.
PLAIN_SPEECH = "Hello everyone and welcome back to the stream, today we look at the garden."
PII_SPEECH = "You can call me on five five five, one two three, four five six seven."
PLAIN_AT, PII_AT = 0.3, 5.0
PLAIN_CHECK = (PLAIN_AT + 0.5, PLAIN_AT + 3.5)
NUMBER_CHECK = (PII_AT + 1.6, PII_AT + 5.2)  # to the end of "seven"


def speech_track(seconds: float, sample_rate: int = RATE) -> np.ndarray:
    """The two sentences at PLAIN_AT and PII_AT in ``seconds`` of audio (cut off if it is shorter
    than about 10.4 s: then "seven" runs into whatever follows)."""
    audio = np.zeros(int(seconds * sample_rate), np.float32)
    for text, at in ((PLAIN_SPEECH, PLAIN_AT), (PII_SPEECH, PII_AT)):
        s = speak(text, sample_rate=sample_rate)[: audio.size - int(at * sample_rate)]
        audio[int(at * sample_rate): int(at * sample_rate) + s.size] = s * 0.8
    return audio


# (text, label): label None = not private.  Numbers as people say them, e-mails spelt out.
CORPUS: list[list[tuple[str, str | None]]] = [
    [("My phone number is", None), ("five five five, one two three, four five six seven", "phone"),
     ("so give me a call.", None)],
    [("You can email me at", None), ("john dot smith at example dot com", "email"), ("any time.", None)],
    [("My card number is", None), ("four five three nine, one four eight eight, oh three four three, six four six seven",
                                   "card"), ("please don't tell anyone.", None)],
    [("I live at", None), ("forty two Elm Street", "address"), ("near the park.", None)],
    [("I grew up in", None), ("Grimsby", "custom"), ("and now I work at", None), ("Acme Robotics", "custom")],
    [("My password is", None), ("purple monkey dishwasher", "account")],
    [("My account number is", None), ("seven seven three, nine one two, four four eight one", "account"),
     ("okay.", None)],
    [("I have two cats and three dogs at home.", None)],
    [("The score was ten to eight in the second half.", None)],
    [("We just shipped version three point two of the game.", None)],
    [("Thanks for watching, see you all tomorrow night.", None)],
]
WORD_GAP_S = 0.06  # between words of a PII part
PART_GAP_S = 0.15  # between parts
SENTENCE_GAP_S = 0.8


@dataclass
class Recording:
    audio: np.ndarray
    """Mono float32 at RATE."""
    pii_words: list[tuple[float, float, str]]
    """(start, end, label) of every spoken PII word."""
    entities: list[tuple[float, float, str]]
    """(start, end, label) of every PII part."""
    clean: list[tuple[float, float]]
    """Spans of non-PII speech."""


def synthesize(sentences: list[list[tuple[str, str | None]]] = CORPUS, voice: str = "en-us", speed: int = 150,
               lead_s: float = 0.5, tail_s: float = 1.5) -> Recording:
    """One recording of the sentences: PII parts spoken word by word (one espeak-ng call per word,
    joined by short gaps) so that each word's start and end are known, other parts in one call."""
    pieces: list[np.ndarray] = [np.zeros(int(lead_s * RATE), np.float32)]
    t = lead_s
    rec = Recording(np.zeros(0, np.float32), [], [], [])

    def add(audio: np.ndarray, gap: float) -> tuple[float, float]:
        nonlocal t
        start = t
        pieces.extend([audio, np.zeros(int(gap * RATE), np.float32)])
        t += audio.size / RATE + int(gap * RATE) / RATE
        return start, start + audio.size / RATE

    for sentence in sentences:
        for text, label in sentence:
            if label is None:
                rec.clean.append(add(speak(text, voice, speed, RATE, trim=True), PART_GAP_S))
                continue
            words = [add(speak(w, voice, speed, RATE, trim=True), WORD_GAP_S) for w in text.replace(",", "").split()]
            rec.pii_words.extend((a, b, label) for a, b in words)
            rec.entities.append((words[0][0], words[-1][1], label))
            pieces.append(np.zeros(int((PART_GAP_S - WORD_GAP_S) * RATE), np.float32))
            t += int((PART_GAP_S - WORD_GAP_S) * RATE) / RATE
        pieces.append(np.zeros(int(SENTENCE_GAP_S * RATE), np.float32))
        t += int(SENTENCE_GAP_S * RATE) / RATE
    pieces.append(np.zeros(int(tail_s * RATE), np.float32))
    rec.audio = np.concatenate(pieces)
    return rec


def muted_seconds(a: float, b: float, intervals: list[MuteInterval]) -> float:
    """Seconds of [a, b) inside the (merged, disjoint) intervals."""
    return sum(max(0.0, min(b, iv.end) - max(a, iv.start)) for iv in intervals)


def latency_quantiles(decisions: list[tuple[float, float, float]], qs=(0.5, 0.95)) -> list[float]:
    """Quantiles of (time decided - sample time) over all decided audio, weighted by duration."""
    grid = []
    for pushed, a, b in decisions:
        ts = np.arange(a, b, 0.01)
        grid.append(pushed - ts)
    lat = np.concatenate(grid) if grid else np.zeros(1)
    return [float(np.quantile(lat, q)) for q in qs]
