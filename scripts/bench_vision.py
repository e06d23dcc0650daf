"""Detector latency and `redact` throughput, against the naive every-detector-every-frame baseline.

    .venv/bin/python scripts/bench_vision.py [--seconds 4] [--repeat 5] [--threads 0] [--provider auto]
    .venv/bin/python scripts/bench_vision.py --static-screen [--seconds 20] [--threads 0]
    .venv/bin/python scripts/bench_vision.py --face-sizes [--threads 0]

Prints, per detector, the median pre-processing / inference / post-processing
times on 720p and 1080p frames of the generated clip; then the throughput of
the lookahead pipeline (cadenced detection + tracking + masking, no file I/O)
and of the baseline on the same 720p30 clip in the same run, and their ratio.
Target on a 2-core CPU: >= 15 fps at 720p with every frame covered.

--static-screen: the OCR's CPU seconds per second of stream on a mostly static 720p30 screen (a
chat panel that gains a line every 3 s, a clock that ticks every second), text read every
STATIC_READ_EVERY frames, reading the whole frame every run against reading only what changed
since it was read (read_memory.py); medians over one-second windows.

--face-sizes: how many faces of 20-40 px CenterFace finds in a 720p frame with its input at the
frame's own size and enlarged (the sizes governor.face_input_scale chooses between), and what a run
costs at each.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from inference_server.masking import MaskOptions, apply_masks
from inference_server.redact import LookaheadPipeline, RedactOptions, add_engine_arguments
from inference_server.settings import as_settings
from inference_server.vision import Detectors, VisionEngine, _face_detector, _text_detector
from privastream_testkit.scenes import TEXT_LINES, Clip, background, faces, paste_face, render_text

STATIC_READ_EVERY = 8
"""Frames between text runs on the static screen: about the live server's text cadence at 30 fps."""
TEXT_KINDS = ("text", "plate")


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


def static_screen(i: int, fps: int = 30, cache: dict = {}) -> np.ndarray:  # noqa: B006 - a frame cache
    """Frame i of the static screen: the coffee photo, a chat panel with a line more every 3 s, a clock."""
    t = i / fps
    state = (min(2 + int(t // 3), len(TEXT_LINES)), int(t))
    if state not in cache:
        frame = background("coffee", (1280, 720)).copy()
        render_text(frame, (40, 300), TEXT_LINES[: state[0]], size=22)
        render_text(frame, (1060, 30), [(f"12:45:{state[1] % 60:02d}", [])], size=22)
        cache[state] = frame
    return cache[state]


def static_screen_ocr_cpu(seconds: float, threads: int, provider: str) -> None:
    """Print the OCR's CPU seconds per second of stream, whole-frame reads against changed-part reads."""
    runs = range(0, int(seconds * 30), STATIC_READ_EVERY)
    whole = Detectors(as_settings({"targets": {"faces": False}}), threads, provider)
    whole.load()
    engine = VisionEngine({"targets": {"faces": False}}, threads=threads, provider=provider, follow=True)
    for name, read in (("whole frame every run", lambda i: whole.detect(static_screen(i), TEXT_KINDS)),
                       ("changed parts only", lambda i: engine.detect(i / 30, static_screen(i), TEXT_KINDS))):
        per_second: dict[int, float] = {}
        for i in range(int(seconds * 30)):
            engine.observe(i / 30, static_screen(i))  # the history both would keep; not OCR time
            if i in runs:
                start = time.process_time()
                read(i)
                per_second[i // 30] = per_second.get(i // 30, 0.0) + time.process_time() - start
        cpu = [per_second.get(s, 0.0) for s in range(1, int(seconds))]  # the first second loads and reads all
        print(f"720p30 static screen, OCR every {STATIC_READ_EVERY} frames, {name:22s}: "
              f"median {statistics.median(cpu):.3f} CPU s per stream s (max {max(cpu):.3f}, {len(cpu)} s)")


def face_sizes(threads: int, provider: str) -> None:
    """Print the share of 30 faces of each size found, and a run's time, at each input scale."""
    detector = _face_detector(threads, provider)
    photos = [background(name, (1280, 720)) for name in ("coffee", "rocket", "astronaut")]
    for scale in (1.0, 1.25, 1.5, 2.0):
        found, took = [], []
        for size in (20, 24, 28, 32, 40):
            hits = 0
            for k, photo in enumerate(photos):
                frame = photo.copy()
                truths = [paste_face(frame, faces()[(j + k) % len(faces())], (80 + 120 * j, 150 + 200 * (j % 3)), size,
                                     context=0.3) for j in range(10)]
                start = time.perf_counter()
                regions = detector.detect(frame, scale)
                took.append(time.perf_counter() - start)
                hits += sum(any(r.box[0] <= (t.box[0] + t.box[2]) / 2 <= r.box[2]
                                and r.box[1] <= (t.box[1] + t.box[3]) / 2 <= r.box[3] for r in regions)
                            for t in truths if t is not None)
            found.append(f"{size}px {hits}/30")
        print(f"720p faces, input x{scale:.2f}: " + "  ".join(found) + f"   run {statistics.median(took) * 1000:.0f} ms")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=4.0, help="length of the 720p30 clip for throughput (default: 4)")
    p.add_argument("--repeat", type=int, default=5, help="runs per latency figure; medians are printed (default: 5)")
    p.add_argument("--face-sizes", action="store_true",
                   help="only the faces of 20-40 px found at the frame's own input size and enlarged")
    p.add_argument("--static-screen", action="store_true",
                   help="only the OCR's CPU on a mostly static screen, whole-frame against changed-part reads")
    add_engine_arguments(p)
    args = p.parse_args()
    if args.face_sizes:
        face_sizes(args.threads, args.provider)
        return 0
    if args.static_screen:
        static_screen_ocr_cpu(args.seconds, args.threads, args.provider)
        return 0

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
