"""The detection cadence, the face input size and the speech model (governor.py): pure bookkeeping,
tested without threads or clocks."""

from inference_server.governor import (
    DEADLINE_SHARE,
    DETECTABLE_FACE_PX,
    FACE_SCALE_STEP,
    GATE_UTILISATION,
    MIN_FACE_PX,
    GROWTH_COST,
    RELIABLE_FACE_PX,
    SCALE_SETTLE_RUNS,
    TEXT_CADENCE_RATIO,
    SPEECH_COST_RATIO,
    SPEECH_HEADROOM,
    Governor,
    SpeechCosts,
    face_input_scale,
    speech_model,
)
from inference_server.speech.redactor import decode_budget_s

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


def test_the_face_input_grows_while_runs_leave_room_before_the_deadlines_and_shrinks_when_not():
    """The face input never shrinks below what finds a MIN_FACE_PX face nor grows past what finds it
    reliably; it steps up only while a run at the larger input, dearer than its pixels, still fits."""
    floor, top = DETECTABLE_FACE_PX / MIN_FACE_PX, RELIABLE_FACE_PX / MIN_FACE_PX
    hd, deadline = (1280, 720), 1.85
    longest = DEADLINE_SHARE * deadline / (1 + 1 / GATE_UTILISATION["faces"])
    assert face_input_scale(hd, deadline, 1, floor, 0.01) == floor + FACE_SCALE_STEP, "a GPU: grow"
    assert face_input_scale(hd, deadline, 1, top, 0.01) == top, "no further than helps"
    step_up_cost = GROWTH_COST * ((floor + FACE_SCALE_STEP) / floor) ** 2
    assert face_input_scale(hd, deadline, 1, floor, 0.99 * longest / step_up_cost) > floor
    assert face_input_scale(hd, deadline, 1, floor, 1.01 * longest / step_up_cost) == floor, "it would not fit"
    assert face_input_scale(hd, deadline, 1, 1.5, 0.9 * longest) == 1.5, "fits, and a step up would not"
    assert face_input_scale(hd, deadline, 1, 1.5, 1.1 * longest) == 1.25, "no longer fits: a step down"
    assert face_input_scale(hd, deadline, 3, 1.5, 0.5 * longest) == 1.25, "sessions sharing the worker"
    assert face_input_scale(hd, 0.5, 1, 1.5, 0.5 * longest) == 1.25, "a shorter delay"
    assert face_input_scale(hd, deadline, 1, floor, 5.0) == floor, "however slow, no face that size goes unlooked for"
    assert face_input_scale((3840, 2160), deadline, 1, floor, 0.001) == floor, "4K is as large as inputs get"


def test_the_governor_steps_the_face_input_once_runs_have_measured_it():
    g = Governor()
    floor = DETECTABLE_FACE_PX / MIN_FACE_PX
    assert g.face_scale((1280, 720), 1.85, 1) == floor, "not measured yet: the smallest"
    for k in range(SCALE_SETTLE_RUNS):
        g.ran("faces", k / 10, 0.02)
        assert g.face_scale((1280, 720), 1.85, 1) == (floor if k < SCALE_SETTLE_RUNS - 1 else floor + FACE_SCALE_STEP)
    g.ran("faces", 1.0, 0.02)
    assert g.face_scale((1280, 720), 1.85, 1) == floor + FACE_SCALE_STEP, "the new size is measured first"


MODELS = ("whisper-tiny.en", "whisper-base")


def test_speech_starts_on_the_cheapest_model_until_one_has_been_timed():
    assert speech_model(MODELS, {}, budget_s=10.0) == "whisper-tiny.en"


def test_speech_takes_the_richer_model_only_when_its_decodes_fit_with_headroom():
    budget = decode_budget_s(1.8)  # OBS's default D = 2 s
    fast = budget / SPEECH_HEADROOM / SPEECH_COST_RATIO  # a GPU: tiny.en this fast
    assert speech_model(MODELS, {"whisper-tiny.en": 0.9 * fast}, budget) == "whisper-base"
    assert speech_model(MODELS, {"whisper-tiny.en": 1.1 * fast}, budget) == "whisper-tiny.en"
    # Once base has run, its own times decide: slow there, back to tiny.en for the next session.
    assert speech_model(MODELS, {"whisper-tiny.en": 0.01, "whisper-base": budget}, budget) == "whisper-tiny.en"
    # This 2-core CPU: tiny.en's 5 s windows take 0.2-0.3 s, base is never chosen at D = 2 or 3 s.
    for latency in (1.8, 2.8):
        assert speech_model(MODELS, {"whisper-tiny.en": 0.2}, decode_budget_s(latency)) == "whisper-tiny.en"


def test_speech_costs_keep_the_newest_figure_per_model():
    costs = SpeechCosts()
    costs.record("whisper-tiny.en", 0.4)
    costs.record("whisper-tiny.en", 0.2)
    assert costs.snapshot() == {"whisper-tiny.en": 0.2}
