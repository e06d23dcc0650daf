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

from inference_server.redact import RedactOptions, add_engine_arguments
from privastream_testkit.scenes import Clip
from privastream_testkit.vision_eval import FACE_MIN, evaluate

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
