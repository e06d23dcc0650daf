"""Coverage quality of the vision engine on a generated clip with exact ground truth.

    .venv/bin/python scripts/eval_vision.py [--seconds 6] [--face-every N] [--text-every N] [--targets LIST]

Runs the same lookahead pipeline as `redact` and prints, per kind: the share
of ground-truth region-frames not fully covered, the share of non-sensitive
area altered, text PII recall/precision and plate coverage.  Targets:
faces >= 24 px: 0 uncovered frames after first detection and <= 0.5 % overall;
non-sensitive area altered <= 5 %; text PII recall >= 0.95, precision >= 0.9;
plates >= 0.9.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inference_server.masking import MaskOptions, apply_masks  # noqa: E402
from inference_server.redact import LookaheadPipeline, RedactOptions, add_engine_arguments  # noqa: E402
from inference_server.regions import overlap_share  # noqa: E402
from inference_server.vision import VisionEngine  # noqa: E402
from scripts.synthclip import Clip  # noqa: E402

FACE_MIN = 24


def covered_mask(shape, regions) -> np.ndarray:
    """Exactly the pixels the masks alter (faces as ellipses), drawn as solid fill on a blank frame."""
    canvas = np.zeros((*shape[:2], 3), np.uint8)
    fill = MaskOptions(styles={k: "fill" for k in ("face", "text", "plate", "mouth")})
    apply_masks(canvas, regions, fill)
    return canvas.any(axis=2)


def _box_slice(box, shape, shrink=1):
    x0, y0, x1, y1 = box
    return (slice(max(0, int(np.ceil(y0)) + shrink), min(shape[0], int(y1) - shrink)),
            slice(max(0, int(np.ceil(x0)) + shrink), min(shape[1], int(x1) - shrink)))


def evaluate(clip: Clip, options: RedactOptions, verbose: bool = False) -> dict:
    engine = VisionEngine(options.settings(), threads=options.threads, provider=options.provider)
    engine.detectors.load()
    pipeline = LookaheadPipeline(engine, options.cadence())
    truths = {}
    stats = defaultdict(lambda: [0, 0])  # name -> [bad, total]
    altered, nonsensitive = 0, 0
    text_tp = text_regions = 0
    uncovered = defaultdict(list)
    seen_faces: set[str] = set()
    started = time.monotonic()

    def score(items):
        nonlocal altered, nonsensitive, text_tp, text_regions
        for index, t, frame, decision in items:
            truth = truths.pop(index)
            cov = covered_mask(frame.shape, decision.regions)
            sensitive = np.zeros(cov.shape, bool)
            for tr in truth:
                if not tr.sensitive:
                    continue
                sl = _box_slice(tr.box, cov.shape)
                ok = bool(cov[sl].all()) if cov[sl].size else True
                if tr.kind == "face":
                    if tr.box[2] - tr.box[0] >= FACE_MIN:
                        stats["face"][0] += not ok
                        stats["face"][1] += 1
                        if ok:
                            seen_faces.add(tr.label)
                        else:
                            uncovered["face"].append(index)
                            if tr.label in seen_faces:
                                uncovered["face_after_first_cover"].append(index)
                    # The head around a face is not "non-sensitive" background.
                    w, h = tr.box[2] - tr.box[0], tr.box[3] - tr.box[1]
                    sensitive[_box_slice((tr.box[0] - w / 2, tr.box[1] - h / 2, tr.box[2] + w / 2, tr.box[3] + h / 2),
                                         cov.shape, 0)] = True
                else:
                    hit = cov[sl].mean() >= 0.9 if cov[sl].size else True
                    stats[tr.kind][0] += not hit
                    stats[tr.kind][1] += 1
                    if not hit:
                        uncovered[tr.label or tr.kind].append(index)
                    sensitive[_box_slice(tr.box, cov.shape, -4)] = True
            altered += int((cov & ~sensitive).sum())
            nonsensitive += int((~sensitive).sum())
            for r in decision.regions:
                if r.kind != "text":
                    continue
                text_regions += 1
                text_tp += any(tr.kind == "text" and tr.sensitive and overlap_share(r.box, tr.box) >= 0.3 for tr in truth)

    for index, t, frame, truth in clip:
        truths[index] = truth
        score(pipeline.push(index, t, frame))
    score(pipeline.finish())
    elapsed = time.monotonic() - started
    share = {k: v[0] / v[1] if v[1] else 0.0 for k, v in stats.items()}
    result = {
        "frames": clip.frames,
        "fps": clip.frames / elapsed,
        "face_uncovered_share": share.get("face", 0.0),
        "face_uncovered_frames": sorted(set(uncovered["face"])),
        "face_uncovered_after_first_cover": sorted(set(uncovered.pop("face_after_first_cover", []))),
        "nonsensitive_altered_share": altered / max(1, nonsensitive),
        "text_pii_recall": 1 - share.get("text", 0.0),
        "text_pii_precision": text_tp / text_regions if text_regions else 1.0,
        "plate_coverage": 1 - share.get("plate", 0.0),
        "misses": {k: len(v) for k, v in uncovered.items()},
    }
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=6.0, help="clip length (default: 6; a scene cut in the middle)")
    p.add_argument("--targets", default="faces,text,plates", help="comma-separated targets (default: all)")
    add_engine_arguments(p)
    args = p.parse_args()
    clip = Clip(seconds=args.seconds)
    options = RedactOptions(targets=tuple(args.targets.split(",")), face_every=args.face_every,
                            text_every=args.text_every, threads=args.threads, provider=args.provider)
    r = evaluate(clip, options)
    print(f"clip: {clip.width}x{clip.height} {clip.fps} fps, {clip.frames} frames, scene cut at frame {clip.cut}; "
          f"faces every {args.face_every} frames, OCR every {args.text_every}")
    print(f"faces >= {FACE_MIN} px not fully covered: {r['face_uncovered_share']:.2%} of face-frames "
          f"(frames: {r['face_uncovered_frames'][:20]})")
    print(f"  of which after the face was first covered: {len(r['face_uncovered_after_first_cover'])} frames "
          f"{r['face_uncovered_after_first_cover'][:20]}")
    print(f"non-sensitive area altered:  {r['nonsensitive_altered_share']:.2%}")
    print(f"text PII recall:             {r['text_pii_recall']:.3f}")
    print(f"text PII precision:          {r['text_pii_precision']:.3f}")
    print(f"plates covered:              {r['plate_coverage']:.3f}")
    print(f"misses by label:             {r['misses']}")
    print(f"evaluation speed:            {r['fps']:.1f} frames/s (detection + decisions, no encoding)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
