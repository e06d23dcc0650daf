"""Streaming speed of the spoken-PII engine on this CPU: real-time factor and decision latency.

    .venv/bin/python scripts/bench_audio.py [--models whisper-tiny.en,whisper-base] [--seconds 30]
                                            [--latency 2.0] [--threads 0]

For each model, espeak-ng speech from the evaluation corpus is streamed twice:
  1. as fast as possible (offline mode, decode inline): RTF = wall time / audio
     time, CPU seconds used per audio second (what an idle machine would need,
     spread over its cores), and the median time of one window decode;
  2. paced in real time in 20 ms chunks (live mode, background decoder):
     decision latency p50/p95 in wall-clock terms, and how much audio had to
     be failed closed because decoding fell behind L.
Target: RTF <= 0.5 with tiny.en and L <= 2 s.  Medians are quoted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from inference_server.speech import SpeechRedactor
from inference_server.speech.asr import AsrOptions, Recognizer
from privastream_testkit.speech import CORPUS, RATE, latency_quantiles, synthesize


class TimedRecognizer(Recognizer):
    """The real recogniser, recording how long each window decode takes."""

    def __init__(self, options: AsrOptions):
        super().__init__(options)
        self.times: list[float] = []

    def transcribe(self, samples, t0):
        started = time.perf_counter()
        try:
            return super().transcribe(samples, t0)
        finally:
            self.times.append(time.perf_counter() - started)


def run(model: str, audio: np.ndarray, latency: float, threads: int, live: bool) -> dict:
    recognizer = TimedRecognizer(AsrOptions(model=model, threads=threads))
    redactor = SpeechRedactor(latency_s=latency, model=model, threads=threads, recognizer=recognizer,
                              background=live)
    chunk = RATE // 50 if live else RATE // 10
    failclosed = 0.0
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        for i in range(0, audio.size, chunk):
            if live:  # pace pushes like a sound card would
                time.sleep(max(0.0, started + i / RATE - time.perf_counter()))
            redactor.push(i / RATE, audio[None, i:i + chunk], RATE)
            if live:
                failclosed += sum(iv.duration for iv in redactor.poll()[0] if iv.kind == "failclosed")
        if not live:
            redactor.flush()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    finally:
        redactor.close()
    p50, p95 = latency_quantiles(redactor.decisions)
    o = redactor.options
    return {"wall": wall, "cpu": cpu, "decode_median": float(np.median(recognizer.times)),
            "decode_max": max(recognizer.times),
            "decodes": len(recognizer.times), "setup": f"step {o.step_s} s (live: less when L needs it), lookback {o.lookback_s} s",
            "p50": p50, "p95": p95, "failclosed": failclosed}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="whisper-tiny.en,whisper-base", help="(default: %(default)s)")
    ap.add_argument("--seconds", type=float, default=30.0, help="audio length (default: 30)")
    ap.add_argument("--latency", type=float, default=2.0, help="decision latency bound L (default: 2.0)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for the decoder, 0 = all (default: 0)")
    args = ap.parse_args()
    audio = synthesize(CORPUS).audio[: int(args.seconds * RATE)]
    duration = audio.size / RATE
    print(f"{duration:.1f} s of espeak-ng speech, L = {args.latency:.1f} s, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} (other processes share these cores)")
    for model in args.models.split(","):
        fast = run(model, audio, args.latency, args.threads, live=False)
        live = run(model, audio, args.latency, args.threads, live=True)
        print(f"{model:>16} ({fast['setup']}): streaming RTF {fast['wall'] / duration:.2f}, "
              f"{fast['cpu'] / duration:.2f} CPU-s per audio s (window decode median "
              f"{fast['decode_median'] * 1e3:.0f} ms, slowest {fast['decode_max'] * 1e3:.0f} ms, x {fast['decodes']}); live: decision latency p50 "
              f"{live['p50']:.2f} s, p95 {live['p95']:.2f} s, failed closed {live['failclosed']:.2f} s "
              f"of {duration:.0f} s ({live['failclosed'] / duration:.1%}), {live['cpu'] / duration:.2f} CPU-s per "
              f"audio s, {live['decodes']} decodes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
