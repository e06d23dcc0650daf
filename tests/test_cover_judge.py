"""The judge of the end-to-end tests (privastream_testkit/cover_judge.py): it must tell a face left with its detail from
a covered one, at every size the tests judge, after lossy compression."""

import cv2
import numpy as np
import pytest

from inference_server.masking import MaskOptions, apply_masks
from inference_server.regions import Region
from privastream_testkit.cover_judge import DETAIL_LEAK, StampedClip, detail_kept, read_stamp


def lossy(frame: np.ndarray) -> np.ndarray:
    """About what x264 at 4 Mb/s (OBS recording 720p here) leaves of a frame."""
    return cv2.imdecode(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1], cv2.IMREAD_UNCHANGED)


@pytest.fixture(scope="module")
def scenes():
    clip = StampedClip(seconds=12)
    return [clip.frame(i) for i in (10, 60, 200)]


def faces(scenes):
    for frame, truths in scenes:
        for truth in truths:
            if truth.kind == "face" and truth.box[2] - truth.box[0] >= 24:
                yield frame, truth


def test_an_uncovered_face_keeps_its_detail_and_so_does_a_half_covered_one(scenes):
    for frame, truth in faces(scenes):
        assert detail_kept(lossy(frame), frame, truth.box) > DETAIL_LEAK, truth.label
        half = frame.copy()
        x0, y0, x1, y1 = (int(v) for v in truth.box)
        half[y0:y1, x0:x0 + (x1 - x0) * 2 // 5] = 16  # a cover that sits beside it, over two fifths
        assert detail_kept(lossy(half), frame, truth.box) > DETAIL_LEAK, truth.label


@pytest.mark.parametrize("style", ["pixelate", "blur", "fill"])
def test_a_covered_face_keeps_none(scenes, style):
    for frame, truth in faces(scenes):
        x0, y0, x1, y1 = truth.box
        pad = 0.2 * min(x1 - x0, y1 - y0)
        region = Region("face", (x0 - pad, y0 - pad, x1 + pad, y1 + pad))
        covered = apply_masks(frame.copy(), [region], MaskOptions(styles={"face": style}))
        assert detail_kept(lossy(covered), frame, truth.box) < DETAIL_LEAK, (truth.label, style)


def test_a_cover_beside_the_face_leaves_it(scenes):
    for frame, truth in faces(scenes):
        x0, y0, x1, y1 = truth.box
        w = x1 - x0
        beside = apply_masks(frame.copy(), [Region("face", (x0 + w, y0, x1 + w, y1))])
        assert detail_kept(lossy(beside), frame, truth.box) > DETAIL_LEAK, truth.label


def test_the_stamp_survives_compression(scenes):
    for index, (frame, _) in zip((10, 60, 200), scenes):
        assert read_stamp(lossy(frame)) == index
