"""The vision engine on generated clips with exact ground truth: real models, real photos."""

import numpy as np
import skimage.data

from inference_server.redact import RedactOptions
from inference_server.scenecut import SceneCutDetector
from scripts.eval_vision import evaluate
from scripts.synthclip import Clip


def test_every_face_frame_covered_after_the_face_is_first_covered():
    """Faces moving, growing, entering the frame and occluded, across a scene cut, at the default cadence."""
    r = evaluate(Clip(seconds=3), RedactOptions(targets=("faces",)))  # the default cadence: every 4th frame
    assert r["face_uncovered_after_first_cover"] == []
    assert r["face_uncovered_share"] <= 0.02  # only slivers of a face entering at the frame edge
    assert r["nonsensitive_altered_share"] <= 0.05


def test_text_pii_and_plates_covered_with_sparse_ocr():
    """OCR once a second; chat PII, addresses and plates covered on every frame, other words left alone."""
    clip = Clip(seconds=4)
    r = evaluate(clip, RedactOptions(targets=("text", "plates"), text_every=30))
    assert r["text_pii_recall"] >= 0.95
    assert r["text_pii_precision"] >= 0.9
    assert r["plate_coverage"] >= 0.9


def test_scene_cuts_found_and_motion_ignored():
    a, b = skimage.data.astronaut(), skimage.data.coffee()[:512, :512]
    det = SceneCutDetector()
    assert det.is_cut(a) is False  # the first frame starts no cut
    assert det.is_cut(np.roll(a, 12, axis=1)) is False  # a pan
    assert det.is_cut((a * 0.7).astype(np.uint8)) is False  # a fade in brightness
    assert det.is_cut(b) is True
