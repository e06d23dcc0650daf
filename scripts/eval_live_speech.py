"""Live spoken-PII redaction on a looping clip, in real time, with the CPU shared: what a viewer hears.

    .venv/bin/python scripts/eval_live_speech.py [--loops 7] [--busy 1] [--latency 2.8] [--loop-s 12]

The clip of tests/test_obs_e2e.py (a plain sentence, then "You can call me on five five five,
one two three, four five six seven.") loops through a background-mode SpeechRedactor, pushed in
1024-sample chunks at real-time pace while ``--busy`` processes spin on other cores (OBS and x264
stand-ins).  For every loop after the first it reports whether the plain sentence came through
untouched (no interval, bleep or fail-closed, over it) and whether the whole number was covered,
and in all how much audio failed closed.  L = 2.8 s is what the live service gives a 3 s delay.
``--loop-s 10`` cuts "seven" off into the next loop's "hello", with no pause after the number:
Whisper tiny then often hears digits over the plain sentence.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np

from inference_server.speech import SpeechRedactor
from inference_server.speech.intervals import FAILCLOSED, merge_intervals
from privastream_testkit.speech import NUMBER_CHECK, PLAIN_CHECK, RATE, muted_seconds, speech_track

CHUNK = 1024


def run(audio: np.ndarray, loops: int, latency: float) -> list:
    redactor = SpeechRedactor(latency_s=latency, background=True)
    intervals, pushed, started = [], 0, time.monotonic()
    try:
        # The clip keeps playing L + 1 s past the last loop, so that loop is decided whole.
        while pushed < loops * audio.size + int((latency + 1.0) * RATE):
            while time.monotonic() - started < pushed / RATE:
                time.sleep(0.002)
            redactor.push(pushed / RATE, audio[np.arange(pushed, pushed + CHUNK) % audio.size][None, :], RATE)
            pushed += CHUNK
            if pushed % (CHUNK * 10) < CHUNK:
                intervals += redactor.poll()[0]
        time.sleep(latency + 0.5)
        intervals += redactor.poll()[0]
    finally:
        redactor.close()
    return merge_intervals(intervals, 0.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loops", type=int, default=7, help="clip loops; the first is warm-up (default: 7)")
    ap.add_argument("--busy", type=int, default=1, help="processes spinning on the CPU meanwhile (default: 1)")
    ap.add_argument("--latency", type=float, default=2.8, help="decision latency bound L (default: 2.8)")
    ap.add_argument("--loop-s", type=float, default=12.0, help="clip length in seconds (default: 12)")
    args = ap.parse_args()
    audio = speech_track(args.loop_s, RATE)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        intervals = run(audio, args.loops, args.latency)
    finally:
        for p in busy:
            p.kill()
    plain_ok = digits_ok = 0
    for k in range(1, args.loops):
        t = k * args.loop_s
        (pa, pb), (da, db) = [(t + a, t + min(b, args.loop_s)) for a, b in (PLAIN_CHECK, NUMBER_CHECK)]
        plain_intact = muted_seconds(pa, pb, intervals) < 0.01
        digits_covered = muted_seconds(da, db, intervals) > db - da - 0.01
        plain_ok, digits_ok = plain_ok + plain_intact, digits_ok + digits_covered
        for (a, b), fine, what in (((pa, pb), plain_intact, "plain sentence altered"),
                                   ((da, db), digits_covered, "number not wholly covered")):
            if not fine:
                print(f"loop {k}: {what}:", [f"{iv.start:.2f}-{iv.end:.2f} {iv.kind}"
                                             for iv in intervals if iv.end > a and iv.start < b])
    failed = sum(iv.duration for iv in intervals if iv.kind == FAILCLOSED)
    print(f"loops {args.loops - 1} ({args.loop_s:.0f} s, L = {args.latency} s, {args.busy} busy): plain sentence "
          f"intact {plain_ok}/{args.loops - 1}, number covered {digits_ok}/{args.loops - 1}, failed closed "
          f"{failed:.2f} s of {args.loops * args.loop_s:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
