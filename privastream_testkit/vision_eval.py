"""Coverage quality of the vision engine on a clip with exact ground truth: the share of
ground-truth region-frames not fully covered, the share of non-sensitive area altered, text PII
recall and precision, and plate coverage (scripts/eval_vision.py prints them; tests/test_vision.py
holds the engine to them)."""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np

from inference_server.masking import MaskOptions, apply_masks
from inference_server.redact import LookaheadPipeline, RedactOptions
from inference_server.vision import VisionEngine

from .boxes import overlap_share
from .scenes import Clip

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
