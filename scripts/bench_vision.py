"""Detector latency and `redact` throughput, against the naive every-detector-every-frame baseline.

    .venv/bin/python scripts/bench_vision.py [--seconds 4] [--repeat 5] [--threads 0] [--provider auto]

Prints, per detector, the median pre-processing / inference / post-processing
times on 720p and 1080p frames of the generated clip; then the throughput of
the lookahead pipeline (cadenced detection + tracking + masking, no file I/O)
and of the baseline on the same 720p30 clip in the same run, and their ratio.
Target on a 2-core CPU: >= 15 fps at 720p with every frame covered.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inference_server.masking import MaskOptions, apply_masks  # noqa: E402
from inference_server.redact import LookaheadPipeline, RedactOptions, add_engine_arguments  # noqa: E402
from inference_server.vision import VisionEngine, _face_detector, _text_detector  # noqa: E402
from scripts.synthclip import Clip  # noqa: E402


def detector_latency(detector, frame, repeat: int, cold: bool = False) -> dict[str, float]:
    """Median stage times; cold=True empties the OCR's read cache first (a frame whose lines are all new)."""
    detector.detect(frame)  # warm-up: first runs allocate
    rows = []
    for _ in range(repeat):
        if cold:
            detector.ocr._read_cache.clear()
        start = time.perf_counter()
        detector.detect(frame)
        total = (time.perf_counter() - start) * 1000
        timing = dict(getattr(detector, "last_timing", {}) or {})
        timing["total_ms"] = total
        rows.append(timing)
    return {k: statistics.median(r[k] for r in rows) for k in rows[0] if all(k in r for r in rows)}


def throughput(frames, options: RedactOptions) -> tuple[float, int]:
    engine = VisionEngine(options.settings(), threads=options.threads, provider=options.provider)
    engine.detectors.load()
    pipeline = LookaheadPipeline(engine, options.cadence())
    masks = MaskOptions.from_settings(options.settings())
    out = 0
    start = time.perf_counter()

    def consume(items):
        nonlocal out
        for _, _, frame, decision in items:
            apply_masks(frame, decision.regions, masks)
            out += 1

    for i, frame in enumerate(frames):
        consume(pipeline.push(i, i / 30, frame.copy()))
    consume(pipeline.finish())
    return out / (time.perf_counter() - start), out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=4.0, help="length of the 720p30 clip for throughput (default: 4)")
    p.add_argument("--repeat", type=int, default=5, help="runs per latency figure; medians are printed (default: 5)")
    add_engine_arguments(p)
    args = p.parse_args()

    import onnxruntime

    print(f"onnxruntime {onnxruntime.__version__}, providers: {onnxruntime.get_available_providers()}")
    faces = _face_detector(args.threads, args.provider)
    text = _text_detector(args.threads, args.provider, ())
    for w, h in ((1280, 720), (1920, 1080)):
        clip = Clip(width=w, height=h)
        frame = clip.frame(clip.cut + 10)[0]
        for name, det, cold in (("faces", faces, False), ("text+plates (new lines)", text, True),
                                ("text+plates (lines seen before)", text, False)):
            lat = detector_latency(det, frame, args.repeat, cold)
            parts = "  ".join(f"{k}={v:.1f}" for k, v in lat.items() if k.endswith("_ms"))
            print(f"{w}x{h} {name:32s} {parts}")

    clip = Clip(seconds=args.seconds)
    frames = [clip.frame(i)[0] for i in range(clip.frames)]
    cadenced = RedactOptions(face_every=args.face_every, text_every=args.text_every, threads=args.threads,
                             provider=args.provider)
    naive = RedactOptions(face_every=1, text_every=1, threads=args.threads, provider=args.provider)
    fps_c, n = throughput(frames, cadenced)
    fps_n, _ = throughput(frames[: max(10, len(frames) // 8)], naive)  # the baseline is slow: a slice suffices
    print(f"720p30 pipeline, faces every {args.face_every} / OCR every {args.text_every} frames: "
          f"{fps_c:.1f} frames/s over {n} frames (every frame covered)")
    print(f"720p30 naive baseline, every detector on every frame:                  {fps_n:.2f} frames/s")
    print(f"speed-up: {fps_c / fps_n:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
