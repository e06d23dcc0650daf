"""Box geometry shared by the engine, the tests and the evaluation scripts."""

from __future__ import annotations

import pytest

from inference_server.regions import iou, overlap_share


def test_overlap_share_is_the_share_of_the_first_box_under_the_second():
    face, cover = (10, 10, 20, 20), (0, 0, 15, 40)
    assert overlap_share(face, cover) == pytest.approx(0.5)
    assert overlap_share(face, (0, 0, 100, 100)) == 1.0  # a large cover hides all of it...
    assert iou(face, (0, 0, 100, 100)) == pytest.approx(0.01)  # ...where IoU calls it a poor match
    assert overlap_share(face, (30, 30, 40, 40)) == 0.0


def test_empty_boxes_overlap_nothing():
    assert overlap_share((5, 5, 5, 9), (0, 0, 10, 10)) == 0.0
    assert iou((5, 5, 5, 5), (5, 5, 5, 5)) == 0.0
