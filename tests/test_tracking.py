"""Live decisions between detection runs (vision.py with follow=True): faces are followed frame by frame
from the newest run (tracking.py), and whatever changed since that run that no track explains is
covered (history.py).  Real CenterFace on generated 1280x720 frames of real face photos."""

from __future__ import annotations

import numpy as np
import pytest

from inference_server.history import KEEP_S, FrameHistory, cell_boxes, unexplained_cells
from inference_server.scheduler import LIVE_POLICIES
from inference_server.settings import DELAY_RANGE_S
from inference_server.vision import VisionEngine
from privastream_testkit.boxes import covered_share
from privastream_testkit.scenes import FRAME_SIZE, Clip, background, faces, paste_face

FACES_ONLY = {"targets": {"faces": True, "text": False, "plates": False}}
FPS = 30


def live_engine() -> VisionEngine:
    return VisionEngine(FACES_ONLY, policies=LIVE_POLICIES, follow=True)


@pytest.fixture(scope="module")
def moving_faces():
    clip = Clip(width=1280, height=720, fps=FPS, seconds=6)
    return [clip.frame(i) for i in range(60)]


def test_faces_are_covered_from_their_measured_position_between_runs(moving_faces):
    """One run on the first frame, then 1.9 s of estimates: every face of 24 px or more stays wholly
    covered while it moves, grows and comes in from the edge, and no frame fails closed."""
    engine = live_engine()
    origins = set()
    for i, (frame, truths) in enumerate(moving_faces[:57]):
        engine.observe(i / FPS, frame)
        if i == 0:
            engine.detect(0.0, frame, ("face",))
            continue
        decision = engine.decide(i / FPS, final=False)
        assert not decision.fail_closed, f"frame {i}: {decision.reason}"
        origins |= {r.origin for r in decision.regions if r.kind == "face"}
        for truth in truths:
            if truth.kind == "face" and truth.box[2] - truth.box[0] >= 24:
                assert covered_share(truth.box, decision.regions, FRAME_SIZE) == 1.0, f"{truth.label} uncovered in frame {i}"
    assert origins == {"tracked"}


def test_a_face_that_appears_after_the_run_is_covered_before_any_run_sees_it():
    """Nothing vouches for a place that changed since the newest run: a face pasted in later is covered."""
    engine = live_engine()
    scene = background("coffee", (1280, 720))
    engine.observe(0.0, scene)
    assert engine.detect(0.0, scene, ("face",)) == []
    later = scene.copy()
    truth = paste_face(later, faces()[0], (900, 300), 60)
    engine.observe(0.5, later)
    decision = engine.decide(0.5, final=False)
    assert not decision.fail_closed
    assert covered_share(truth.box, decision.regions, FRAME_SIZE) == 1.0
    assert {r.kind for r in decision.regions} == {"change"}


def test_a_static_picture_stays_vouched_for_by_an_old_run():
    """No change, no cover: the same frame 2.5 s after the run needs no detection to be shown."""
    engine = live_engine()
    scene = background("rocket", (1280, 720))
    for i in range(0, 76, 5):
        engine.observe(i / FPS, scene)
        if i == 0:
            engine.detect(0.0, scene, ("face",))
    decision = engine.decide(75 / FPS, final=False)
    assert decision == type(decision)(regions=[])


def test_too_much_change_covers_the_whole_frame():
    engine = live_engine()
    first, second = background("coffee", (1280, 720)), background("astronaut", (1280, 720))
    engine.observe(0.0, first)
    engine.detect(0.0, first, ("face",))
    engine._cuts.reset()  # a change the cut detector let through (a slow dissolve, say)
    engine.observe(0.5, second)
    decision = engine.decide(0.5, final=False)
    assert decision.fail_closed and "changed" in decision.reason


def test_content_that_only_moved_is_explained_by_the_motion():
    """Content moved by a tracked face's shift is explained near that face and nowhere else; a
    picture that moved as a whole (a camera panning) is explained by its own motion.  Only the edge
    the picture came in by stays unexplained."""
    history = FrameHistory()
    scene = background("coffee", (1280, 720))
    history.add(0.0, scene, (1280, 720))
    moved = np.zeros_like(scene)
    moved[:, 40:] = scene[:, :-40]
    history.add(0.1, moved, (1280, 720))
    panned = unexplained_cells(history, 0.0, 0.1, [], [])
    assert panned[:, 2:].sum() == 0 and panned[:, 0].mean() > 0.5
    assert all(box[0] < 40 for box in cell_boxes(history, panned))

    history = FrameHistory()
    wall = np.full((720, 1280, 3), 128, np.uint8)
    then, now = wall.copy(), wall.copy()
    then[100:300, 100:300] = scene[100:300, 100:300]  # a textured patch, as a face and its hair
    now[100:300, 140:340] = scene[100:300, 100:300]
    history.add(0.0, then, (1280, 720))
    history.add(0.1, now, (1280, 720))
    assert unexplained_cells(history, 0.0, 0.1, [], []).sum() > 20
    near = unexplained_cells(history, 0.0, 0.1, [], [((40.0, 0.0), (40.0, 40.0, 400.0, 360.0))])
    assert near.sum() == 0
    far = unexplained_cells(history, 0.0, 0.1, [], [((40.0, 0.0), (700.0, 300.0, 1000.0, 600.0))])
    assert far.sum() > 20


def test_one_face_moving_does_not_explain_the_change_where_another_jumped():
    """A face's shift explains only the change near its own box.  Over a flat wall one face drifts
    left while another, too fast to follow, jumps left by the same distance: the picture there is the
    old one moved by the drifting face's shift, yet only a change cover can hide the jumped face."""
    engine = live_engine()
    wall = np.full((720, 1280, 3), 128, np.uint8)
    drift_px, frames = 2, 30

    def frame(i: int):
        picture = wall.copy()
        paste_face(picture, faces()[1], (300 - drift_px * i, 360), 180, context=0.2)
        jumped = paste_face(picture, faces()[0], (1000 - (drift_px * frames if i >= frames else 0), 300), 70,
                            context=0.2)
        return picture, jumped

    first, _ = frame(0)
    engine.observe(0.0, first)
    assert len(engine.detect(0.0, first, ("face",))) == 2
    for i in range(1, frames + 1):
        picture, jumped = frame(i)
        engine.observe(i / FPS, picture)
        decision = engine.decide(i / FPS, final=False)
        assert not decision.fail_closed, decision.reason
    assert covered_share(jumped.box, decision.regions, FRAME_SIZE) == 1.0


def test_a_wrong_measurement_only_adds_cover_to_a_settled_answer():
    """Nothing checks a settled answer (no change cover), so a tracker that locked onto the wrong place
    widens the interpolated box between two detections and never moves it off the face."""
    from inference_server.coverage import Coverage
    from inference_server.regions import Region

    coverage = Coverage(kinds=("face",), policies=LIVE_POLICIES)
    coverage.add_run(0.0, ("face",), [Region("face", (100, 100, 160, 160))])
    coverage.add_run(0.4, ("face",), [Region("face", (140, 100, 200, 160))])
    (track_id, *_), = coverage.followable("face", 0.2)
    coverage.add_measurement(track_id, "face", 0.2, (600, 400, 660, 460))  # far off
    settled = coverage.decide(0.2, final=True)
    assert covered_share((125, 105, 175, 155), settled.regions, FRAME_SIZE) == 1.0
    assert covered_share((605, 405, 655, 455), settled.regions, FRAME_SIZE) == 1.0



def test_a_frame_before_the_first_run_of_its_scene_is_covered_whole():
    """Before a scene's first run nothing vouches for the picture: a face found later in that scene
    would be reached back to where it no longer is, so an estimate there covers everything."""
    from inference_server.coverage import Coverage
    from inference_server.regions import Region

    coverage = Coverage(kinds=("face",), policies=LIVE_POLICIES)
    coverage.add_run(0.5, ("face",), [])
    coverage.add_cut(1.0)
    coverage.add_run(1.7, ("face",), [Region("face", (300, 100, 360, 160))])
    assert coverage.decide(1.1, final=False).fail_closed
    assert coverage.decide(1.1, final=True) is None
    assert not coverage.decide(1.8, final=False).fail_closed


def test_the_history_keeps_every_frame_an_estimate_is_measured_against():
    """The change since a kind's newest run is measured on that run's frame: it must still be kept
    when the run is as old as a live estimate may reach back, at the longest D."""
    assert KEEP_S >= max(p.max_extrapolation for p in LIVE_POLICIES.values()) + DELAY_RANGE_S[1]
