"""The shared test kit itself: its box checks, its poll, its child processes and its scenes, whose
answers every other test and every evaluation trusts."""

from __future__ import annotations

import sys
import time
from types import SimpleNamespace

import pytest

from privastream_testkit.boxes import covered, covered_share, inside
from privastream_testkit.processes import LoggedProcess, wait_until
from privastream_testkit.scenes import Clip, Scene, background, lfw_patches


def test_inside_holds_to_the_tolerance_given_and_no_further():
    assert inside((10, 10, 20, 20), (10, 10, 20, 20))
    assert not inside((9, 10, 20, 20), (10, 10, 20, 20))
    assert inside((9, 10, 21, 20), (10, 10, 20, 20), tolerance=1.0)
    assert not inside((8.5, 10, 20, 20), (10, 10, 20, 20), tolerance=1.0)


def test_a_box_is_covered_by_one_region_holding_it_and_its_share_under_several():
    left, right = SimpleNamespace(box=(0, 0, 10, 10)), SimpleNamespace(box=(10, 0, 20, 10))
    assert covered((2, 2, 8, 8), [right, left])
    assert not covered((5, 2, 15, 8), [left, right])  # under both together, inside neither
    assert covered_share((5, 2, 15, 8), [left, right], (40, 20)) == 1.0
    assert covered_share((5, 0, 15, 10), [left], (40, 20)) == 0.5


def test_wait_until_returns_the_value_and_names_what_it_waited_for():
    start = time.monotonic()
    assert wait_until(lambda: time.monotonic() - start > 0.05 and "done", 5.0) == "done"
    with pytest.raises(TimeoutError, match="waiting for the impossible"):
        wait_until(lambda: False, 0.05, what="the impossible")


def test_a_logged_process_is_ready_on_its_line_and_stops_with_its_output():
    child = LoggedProcess("child", [sys.executable, "-u", "-c", "print('warming'); print('ready now');"
                                    "import time; time.sleep(60)"], r"^ready")
    child.wait_ready(30)
    assert child.running()
    assert child.stop(timeout=5) == "warming\nready now"
    assert not child.running()


def test_a_process_that_exits_before_its_ready_line_says_what_it_printed():
    child = LoggedProcess("child", [sys.executable, "-c", "print('no model here'); raise SystemExit(3)"], "ready")
    with pytest.raises(RuntimeError, match="child did not start:\nno model here"):
        child.wait_ready(30)


def test_a_scene_records_the_box_of_what_it_pasted():
    scene = Scene(background("grey", (320, 240)).copy())
    box = scene.paste_face(lfw_patches()[0][0], 40, 30, 50)
    assert box == (40.0, 30.0, 90.0, 80.0) and scene.faces == [box]
    assert (scene.frame[30:80, 40:90] != 128).any() and (scene.frame[:30] == 128).all()
    plate = scene.plate(200, 180, "AB12 CDE", height=30)
    assert plate[1] == 165.0 and plate[3] == 195.0 and scene.plates == [plate]


def test_a_clip_frame_is_the_same_picture_and_truth_every_time():
    clip = Clip(width=640, height=360, seconds=2.0)
    (a, truth_a), (b, truth_b) = clip.frame(clip.cut + 3), clip.frame(clip.cut + 3)
    assert (a == b).all() and truth_a == truth_b
    assert {t.kind for t in truth_a} == {"face", "text", "plate"}
