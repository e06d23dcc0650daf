"""The playout the OBS filters and the demo share (inference_server/playout.py): which frame is due,
how it is drawn, and audio bleeped where decided and muted, sample by sample, where not."""

import numpy as np

from inference_server.playout import DelayLine, due_index, fade_samples, frame_cover, play_audio
from inference_server.regions import FrameDecision, Region
from inference_server.speech.intervals import MuteInterval
from inference_server.speech.render import render as render_offline

RATE = 48000


def test_the_due_frame_is_the_newest_at_least_the_delay_old():
    fps, delay = 30, 0.2
    line = DelayLine(delay, 1 / fps)
    for i in range(20):
        line.push(i, i / fps, np.full((2, 2, 3), i, np.uint8))
    assert line.due(19 / fps)[0] == 13  # 6 frames (0.2 s) back
    assert line.held[0][0] == 13  # the older ones are dropped
    assert line.due(3 / fps) is None  # nothing that old: the caller covers the frame
    # A source that skipped frames: the newest old enough, not a fixed count back.
    assert due_index([0.0, 0.1, None, 0.5], 0.45, delay, 1 / fps) == 1


def test_a_frame_without_a_decision_is_covered_whole_unless_the_user_chose_fail_open():
    regions = [Region("face", (0, 0, 10, 10))]
    assert frame_cover(FrameDecision(regions=regions), False, None, "late") == (regions, False, "")
    assert frame_cover(None, False, None, "late") == ([], True, "late")
    assert frame_cover(FrameDecision(fail_closed=True, reason="inference failed"), False, None, "late") == \
        ([], True, "inference failed")
    assert frame_cover(None, True, None, "late") == ([], False, "")
    assert frame_cover(FrameDecision(regions=regions * 3), False, 2, "late")[1]


def decided(intervals, until):
    return lambda start, end: (intervals, until)


def test_undecided_audio_is_muted_from_the_exact_sample():
    """Decided up to 10.5 ms into a 1024-sample packet: the samples before it play, not one after."""
    out = np.ones((2, 1024), np.float32)
    t0 = 3.0
    muted = play_audio(out, 144000, [(144000, 145024, t0)], decided([], t0 + 0.0105), RATE, "beep", False)
    cut = 504  # 10.5 ms at 48 kHz
    assert muted and (out[:, :cut] == 1).all() and (out[:, cut:] == 0).all()


def test_without_decisions_everything_is_muted_and_fail_open_plays_it():
    out = np.ones((1, 480), np.float32)
    assert play_audio(out, 0, [(0, 480, 0.0)], None, RATE, "beep", False) and not out.any()
    out = np.ones((1, 480), np.float32)
    assert not play_audio(out, 0, [(0, 480, 0.0)], None, RATE, "beep", True) and (out == 1).all()


def test_a_failclosed_span_is_silence_live_and_offline():
    """Live and offline alike, a span nothing decided is silence whatever the bleep sound; a found
    word is beeped."""
    signal = np.full((1, RATE), 0.5, np.float32)
    spans = [(0.2, 0.4, "failclosed"), (0.6, 0.7, "phone")]
    live = signal.copy()
    play_audio(live, 0, [(0, RATE, 0.0)], decided(spans, 1.0), RATE, "beep", False)
    offline = render_offline(signal, RATE, 0.0, [MuteInterval(*s) for s in spans], "beep")
    f = fade_samples(RATE)
    for out in (live, offline):
        assert not out[0, int(0.2 * RATE):int(0.4 * RATE)].any()
        beep = out[0, int(0.6 * RATE):int(0.7 * RATE)]
        assert np.abs(beep).max() > 0.2 and not np.isclose(beep, 0.5).all()
        assert (out[0, :int(0.2 * RATE) - f] == 0.5).all() and (out[0, int(0.4 * RATE) + f:int(0.6 * RATE) - f] == 0.5).all()


def test_live_and_offline_bleep_the_same_samples_alike():
    """One renderer: the same spans on the same samples come out the same, packet by packet live
    and in one piece offline, spans off the sample grid and one reaching past a packet's end included."""
    rng = np.random.default_rng(7)
    signal = (0.3 * rng.standard_normal((2, RATE))).astype(np.float32)
    t0, first = 2.5, int(2.5 * RATE)
    spans = [(2.60013, 2.7, "phone"), (2.7003, 2.75, "failclosed"), (2.9, 3.4, "email")]
    for mode in ("beep", "silence"):
        offline = render_offline(signal, RATE, t0, [MuteInterval(*s) for s in spans], mode)
        live = signal.copy()
        for a in range(0, RATE, 1024):
            piece = live[:, a:a + 1024]
            play_audio(piece, first + a, [(first + a, first + a + piece.shape[1], t0 + a / RATE)],
                       decided(spans, 4.0), RATE, mode, False)
        np.testing.assert_allclose(live, offline, atol=1e-6)
