"""Temporal coverage on synthetic motion with exact ground truth (no models needed)."""

import numpy as np
import pytest

from inference_server.coverage import Coverage
from inference_server.regions import Region
from privastream_testkit.boxes import covered

FPS = 30


def face_at(t, x0=100.0, vx=120.0, y=200.0, size=80.0):
    """Ground truth: a face moving right at vx px/s."""
    x = x0 + vx * t
    return (x, y, x + size, y + size)


def run_detections(cov, times, visible, truth, kind="face"):
    for t in times:
        found = [Region(kind, truth(t), 0.9)] if visible(t) else []
        cov.add_run(t, (kind,), found)


def frames(t0, t1):
    return [i / FPS for i in range(int(round(t0 * FPS)), int(round(t1 * FPS)) + 1)]


def test_every_frame_covered_between_sparse_detections():
    cov = Coverage(kinds=("face",))
    run_detections(cov, np.arange(0, 3.01, 0.5), lambda t: True, face_at)
    for t in frames(0, 3):
        d = cov.decide(t)
        assert d is not None and not d.fail_closed
        assert covered(face_at(t), d.regions), t
        assert len(d.regions) == 1  # one track, not one per detection


def test_curved_motion_still_covered():
    def circle(t):
        x, y = 300 + 150 * np.cos(2 * t), 200 + 150 * np.sin(2 * t)
        return (x, y, x + 60, y + 60)

    cov = Coverage(kinds=("face",))
    run_detections(cov, np.arange(0, 3.01, 1 / 3), lambda t: True, circle)
    assert all(covered(circle(t), cov.decide(t).regions) for t in frames(0, 3))


def test_face_that_appears_is_covered_from_its_first_frame():
    appear = 1.1
    cov = Coverage(kinds=("face",))
    run_detections(cov, np.arange(0, 3.01, 0.5), lambda t: t >= appear, face_at)
    for t in frames(appear, 3):
        assert covered(face_at(t), cov.decide(t).regions), t
    assert cov.decide(0.5).regions == []  # long before it appeared: nothing altered


def test_track_ends_softly_after_the_face_leaves():
    leave = 2.2
    cov = Coverage(kinds=("face",))
    run_detections(cov, np.arange(0, 4.01, 0.5), lambda t: t <= leave, face_at)
    for t in frames(0, leave):
        assert covered(face_at(t), cov.decide(t).regions), t
    hold = cov.policies["face"].hold
    assert cov.decide(2.5 + hold / 2).regions  # not abruptly
    assert cov.decide(2.5 + hold + 0.05).regions == []  # but it does end


def test_missed_detection_does_not_flicker():
    cov = Coverage(kinds=("face",))
    run_detections(cov, np.arange(0, 3.01, 0.5), lambda t: abs(t - 1.5) > 1e-9, face_at)
    for t in frames(0, 3):
        assert covered(face_at(t), cov.decide(t).regions), t


def test_scene_cut_resets_tracks():
    cov = Coverage(kinds=("face",))
    cut = 1.2
    cov.add_run(0.0, ("face",), [Region("face", (10, 10, 90, 90))])
    cov.add_run(1.0, ("face",), [Region("face", (10, 10, 90, 90))])
    cov.add_run(1.1, ("face",), [Region("face", (10, 10, 90, 90))])
    cov.add_cut(cut)
    cov.add_run(cut, ("face",), [Region("face", (500, 300, 560, 360))])
    cov.add_run(2.0, ("face",), [Region("face", (500, 300, 560, 360))])
    after = cov.decide(1.5).regions
    assert len(after) == 1 and after[0].box[0] > 400  # the old face is not dragged across the cut
    assert cov.decide(1.15) is None  # the old scene's last frames wait for a detection before the cut
    cov.add_run(1.15, ("face",), [Region("face", (10, 10, 90, 90))])
    before = cov.decide(1.15).regions
    assert len(before) == 1 and before[0].box[0] < 100


def test_not_final_until_detections_on_both_sides():
    cov = Coverage(kinds=("face", "text"))
    cov.add_run(0.0, ("face", "text"), [])
    cov.add_run(0.5, ("face",), [])
    assert cov.decide(0.3) is None  # text has no run after 0.3 yet
    cov.add_run(1.0, ("text",), [])
    assert cov.decide(0.3) is not None and cov.settled(0.3)


def test_live_estimate_extrapolates_then_fails_closed():
    cov = Coverage(kinds=("face",))
    run_detections(cov, [0.0, 0.5, 1.0], lambda t: True, face_at)
    d = cov.decide(1.3, final=False)
    assert not d.fail_closed and d.regions[0].origin == "tracked"
    assert covered(face_at(1.3), d.regions)
    wide = cov.decide(1.6, final=False).regions[0]
    assert wide.width > d.regions[0].width  # margins grow with time since the last detection
    late = cov.decide(1.0 + cov.policies["face"].max_extrapolation + 0.1, final=False)
    assert late.fail_closed and "face" in late.reason


def test_landmarks_follow_the_interpolated_box():
    cov = Coverage(kinds=("face",))
    marks = lambda b: ((b[0] + 20, b[1] + 30), (b[0] + 60, b[1] + 30), (b[0] + 40, b[1] + 45), (b[0] + 25, b[1] + 60), (b[0] + 55, b[1] + 60))
    for t in (0.0, 1.0):
        cov.add_run(t, ("face",), [Region("face", face_at(t), landmarks=marks(face_at(t)))])
    r = cov.decide(0.5).regions[0]
    assert r.origin == "interpolated"
    assert r.landmarks[3] == pytest.approx(marks(face_at(0.5))[3])


def test_prune_keeps_answers_for_later_times():
    cov = Coverage(kinds=("face",))
    run_detections(cov, np.arange(0, 10.01, 0.5), lambda t: True, face_at)
    want = [cov.decide(t).regions for t in frames(8, 10)]
    cov.prune(8.0)
    assert [cov.decide(t).regions for t in frames(8, 10)] == want
