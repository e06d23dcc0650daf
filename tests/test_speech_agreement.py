"""How the streaming redactor weighs its hypotheses (LocalAgreement over the newest three).

The redactor test uses a scripted recogniser (a mock, said so below): Whisper tiny makes up
digits over the words after a number ("seven, one, one, one" over "hello everyone"), but not
on demand, and the test must show exactly what the redactor does with such a reading.
"""

from __future__ import annotations

import numpy as np
import pytest

from inference_server.speech import SpeechRedactor
from inference_server.speech.asr import Recognizer, Word
from inference_server.speech.redactor import agreeing, hallucinated
from inference_server.speech.spoken_pii import SpokenPiiDetector
from privastream_testkit.speech import RATE, muted_seconds

PLAIN = [(0.5 + 0.5 * i, 0.9 + 0.5 * i, w) for i, w in
         enumerate("hello everyone and welcome back to the stream today we look at the garden".split())]
MADE_UP = [(4.25 + 0.1 * i, 4.3 + 0.1 * i, "1,") for i in range(6)]


def words(script, t0=-np.inf, t1=np.inf):
    return [Word(a, b, " " + t, 0.9) for a, b, t in script if a >= t0 and b <= t1]


def test_agreeing_sets_aside_the_reading_that_agrees_with_none():
    said, heard_wrong = ["hello", "everyone"], ["1", "1", "1"]
    assert agreeing([heard_wrong, said, said]) == [1, 2]
    assert agreeing([said, said, heard_wrong]) == [0, 1]
    assert agreeing([said, ["hello", "everyone", "and"], heard_wrong]) == [0, 1], "an edge word more still agrees"
    assert agreeing([said, heard_wrong, ["five"]]) == [0, 1, 2], "no two agree: every reading counts"
    assert agreeing([said, said + ["1", "1"], said]) == [0, 2], "made-up digits at the edge do not agree"


class ScriptedRecognizer(Recognizer):
    """Mock (see the module doc): the window that ends near 5 s makes up digits from 4.25 s on."""

    def __init__(self):
        self.made_up = 0

    def transcribe(self, samples, t0):
        t1 = t0 + len(samples) / 16000
        if 4.9 < t1 <= 5.3:
            self.made_up += 1
            return words([w for w in PLAIN if w[0] < 4.25] + MADE_UP, t0, t1)
        return words(PLAIN, t0, t1)


def test_a_reading_that_agrees_with_neither_neighbour_is_set_aside():
    rec = ScriptedRecognizer()
    r = SpeechRedactor(recognizer=rec, detector=SpokenPiiDetector(use_ner=False), latency_s=2.0)
    for i in range(80):  # 8 s, decoded inline every 0.5 s
        r.push(i * 0.1, np.zeros((1, RATE // 10), np.float32), RATE)
    intervals, decided = r.flush()
    r.close()
    assert rec.made_up == 1
    # The window ending near 5 s decides up to 3.9 s, before its made-up digits; the next two
    # windows, which agree, decide the rest.  Checked together (as one reading that disagrees
    # with the newest used to be), the digits would have bleeped "welcome back".
    assert muted_seconds(0.0, 8.0, intervals) == 0.0, intervals
    assert decided == pytest.approx(8.0)


class WindowScript(Recognizer):
    """Mock (see the module doc): the windows ending in ``special`` (seconds) read ``odd`` instead of
    what was said after ``odd``'s first word; every other window reads PLAIN."""

    def __init__(self, special: tuple[float, float], odd: list[Word]):
        self.special, self.odd, self.used = special, odd, 0

    def transcribe(self, samples, t0):
        t1 = t0 + len(samples) / 16000
        if self.special[0] < t1 <= self.special[1]:
            self.used += 1
            return [w for w in words(PLAIN, t0, t1) if w.start < self.odd[0].start] + \
                [w for w in self.odd if w.start >= t0 and w.end <= t1]
        return words(PLAIN, t0, t1)


def redact(recognizer: Recognizer, seconds: float = 8.0) -> list:
    r = SpeechRedactor(recognizer=recognizer, detector=SpokenPiiDetector(use_ner=False), latency_s=2.0)
    for i in range(int(seconds * 10)):  # decoded inline every 0.5 s
        r.push(i * 0.1, np.zeros((1, RATE // 10), np.float32), RATE)
    intervals, _ = r.flush()
    r.close()
    return intervals


def test_hallucinated_needs_several_unplaced_words():
    placed = [Word(0.1 * i, 0.1 * i + 0.3, " 5", 0.9) for i in range(8)]
    loop = [Word(3.0 + 0.01 * i, 3.0 + 0.01 * i, " 11,", 0.7) for i in range(8)]
    assert not hallucinated(placed)
    assert hallucinated(loop)
    assert not hallucinated(placed + loop[:2]), "a word Whisper could not place at the window's end is normal"


def test_a_newest_reading_of_unplaced_digits_is_set_aside_when_the_others_agree():
    """Whisper tiny's "11, 11, 11, ..." over plain speech, in the newest reading only."""
    loop = [Word(3.0 + 0.08 * i, 3.0 + 0.08 * i, " 11,", 0.7) for i in range(9)]
    rec = WindowScript((5.0, 5.15), loop)
    intervals = redact(rec)
    assert rec.used == 1
    assert muted_seconds(0.0, 8.0, intervals) == 0.0, intervals


DIGITS = [Word(4.7 + 0.13 * i, 4.82 + 0.13 * i, " 5,", 0.9) for i in range(3)]


def test_digits_two_readings_heard_ahead_of_the_watermark_stay_muted_when_later_readings_lose_them():
    rec = WindowScript((5.0, 5.65), DIGITS)  # the windows ending at 5.1 and 5.6 s
    intervals = redact(rec)
    assert rec.used == 2
    assert muted_seconds(4.7, DIGITS[-1].end, intervals) == pytest.approx(DIGITS[-1].end - 4.7), intervals


def test_one_reading_guessing_at_its_open_end_is_not_enough():
    rec = WindowScript((5.0, 5.15), DIGITS)  # only the window ending at 5.1 s
    intervals = redact(rec)
    assert rec.used == 1
    assert muted_seconds(0.0, 8.0, intervals) == 0.0, intervals
