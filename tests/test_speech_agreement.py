"""How the streaming redactor weighs its hypotheses: decoding loops and readings set aside.

The redactor tests here use a scripted recogniser (a mock, said so below): Whisper tiny's digit
loops ("seven, one, one, one, one, ..." over the next sentence) happen with the real model, but
not on demand, and these tests must show exactly what the redactor does with one.
"""

from __future__ import annotations

import numpy as np
import pytest

from inference_server.speech import FAILCLOSED, SpeechRedactor
from inference_server.speech.asr import Recognizer, Word
from inference_server.speech.redactor import agreeing, loop_start
from inference_server.speech.spoken_pii import SpokenPiiDetector
from scripts.eval_audio import RATE, covered

NUMBER = [(0.2, 0.5, "My"), (0.5, 0.9, "number"), (0.9, 1.1, "is")] + [
    (1.2 + 0.4 * i, 1.5 + 0.4 * i, d) for i, d in enumerate("5551234567")]   # ends at 5.1
PLAIN = [(6.0 + 0.5 * i, 6.4 + 0.5 * i, w) for i, w in enumerate("hello everyone and welcome back to".split())]
LOOP = [(6.0 + 0.05 * i, 6.05 + 0.05 * i, "1,") for i in range(10)]  # zero-ish lengths, as Whisper's


def words(script, t0=-np.inf, t1=np.inf):
    return [Word(a, b, " " + t, 0.9) for a, b, t in script if a >= t0 and b <= t1]


def test_loop_start_finds_runs_of_five_not_a_triple_five():
    assert loop_start(words(NUMBER + PLAIN)) is None
    assert loop_start(words(NUMBER + LOOP)) == len(NUMBER)
    assert loop_start(words([(0, 0.1, "11,")] * 5)) == 0


def test_agreeing_sets_aside_the_reading_that_agrees_with_none():
    said, heard_wrong = ["hello", "everyone"], ["1", "1", "1"]
    assert agreeing([heard_wrong, said, said]) == [1, 2]
    assert agreeing([said, said, heard_wrong]) == [0, 1]
    assert agreeing([said, ["hello", "everyone", "and"], heard_wrong]) == [0, 1], "an edge word more still agrees"
    assert agreeing([said, heard_wrong, ["five"]]) == [0, 1, 2], "no two agree: every reading counts"


class ScriptedRecognizer(Recognizer):
    """Mock (see the module doc): a window that holds the spoken number before 6 s loops on it;
    one decoded from later on hears the plain sentence, unless `loops_again`."""

    def __init__(self, loops_again: bool = False):
        self.loops_again = loops_again
        self.calls: list[tuple[float, float]] = []

    def transcribe(self, samples, t0):
        t1 = t0 + len(samples) / 16000
        self.calls.append((t0, t1))
        holds_number = t0 < 5.0
        tail = LOOP if holds_number or self.loops_again else PLAIN
        return words(NUMBER + tail, t0, t1)


def run(recognizer) -> tuple[list, float]:
    r = SpeechRedactor(recognizer=recognizer, detector=SpokenPiiDetector(use_ner=False), latency_s=2.0)
    chunk = np.zeros((1, RATE // 10), np.float32)
    for i in range(100):  # 10 s, decoded inline every 0.5 s
        r.push(i * 0.1, chunk, RATE)
    intervals, decided = r.flush()
    r.close()
    return intervals, decided


def test_a_decoding_loop_is_decoded_again_from_where_it_began():
    rec = ScriptedRecognizer()
    intervals, decided = run(rec)
    assert any(t0 == pytest.approx(6.0 - 0.2, abs=0.05) for t0, _ in rec.calls), "no second decode from the loop"
    assert covered(1.2, 5.1, intervals) == pytest.approx(3.9), "the number must be muted whole"
    # The one window that ends inside the loop (at 6.1 s) heard "7, 1," and that much is bleeped
    # (an entity is issued whole once seen); the rest of the sentence must pass.
    assert covered(6.5, 9.0, intervals) == 0.0, "the plain sentence was muted for digits Whisper made up"
    assert decided == pytest.approx(10.0)


def test_a_loop_that_persists_is_never_decided_as_clean():
    intervals, decided = run(ScriptedRecognizer(loops_again=True))
    assert covered(1.2, 5.1, intervals) == pytest.approx(3.9)
    assert covered(6.0, 10.0, intervals) == pytest.approx(4.0)
    assert any(iv.kind == FAILCLOSED and iv.start <= 6.5 for iv in intervals), "undecided audio must fail closed"
    assert decided == pytest.approx(10.0)
