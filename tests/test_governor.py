"""The detection cadence (governor.py): pure bookkeeping, tested without threads or clocks."""

from inference_server.governor import GATE_UTILISATION, TEXT_CADENCE_RATIO, Governor

BOTH = ("faces", "text")


def test_faces_run_as_often_as_their_cost_allows_and_text_a_third_as_often():
    g = Governor()
    for k in range(20):
        g.ran("faces", k / 10, 0.3)
        g.ran("text", k / 10, 0.4)
    faces = g.interval("faces", 1, BOTH)
    assert abs(faces - 0.3 / GATE_UTILISATION["faces"]) < 0.01
    assert abs(g.interval("text", 1, BOTH) - faces * TEXT_CADENCE_RATIO) < 0.01
    assert g.interval("faces", 2, BOTH) > 1.9 * faces, "two sessions share one worker"
    assert g.interval("text", 1, ("text",)) < faces * TEXT_CADENCE_RATIO, "without faces, text is not held back"


def test_one_slow_run_does_not_stretch_the_cadence_for_long():
    g = Governor()
    for k in range(10):
        g.ran("faces", k, 0.1)
    g.ran("faces", 10, 30.0)  # a model loading
    assert g.duration["faces"] < 0.2


def test_a_group_is_due_at_once_in_a_new_scene_and_after_a_clock_reset():
    g = Governor()
    assert g.due("faces", 0.0, g.interval("faces", 1, BOTH)), "never ran"
    g.frame(0.0, cut=False)
    g.ran("faces", 0.0, 0.5)
    assert not g.due("faces", 0.1, g.interval("faces", 1, BOTH))
    g.frame(0.2, cut=True)
    assert g.due("faces", 0.2, g.interval("faces", 1, BOTH)), "the new scene has no run yet"
    g.ran("faces", 0.2, 0.5)
    assert not g.due("faces", 0.3, g.interval("faces", 1, BOTH))
    assert g.due("faces", 0.05, g.interval("faces", 1, BOTH)), "the clock went back"
    assert g.due("faces", 0.2 + g.interval("faces", 1, BOTH), g.interval("faces", 1, BOTH))
