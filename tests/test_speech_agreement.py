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
from inference_server.speech.redactor import agreeing
from inference_server.speech.spoken_pii import SpokenPiiDetector
from scripts.eval_audio import RATE, covered

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
    assert covered(0.0, 8.0, intervals) == 0.0, intervals
    assert decided == pytest.approx(8.0)
