"""The OBS plugin's pure-Python parts, without OBS: struct layouts, settings, region texels and
the audio filter's sample ring (delay, bleep placement, mute when undecided).

The audio filter is driven with a stand-in for libobs (a mock: these functions only read OBS's
audio/video format and settings) and tests/obs_fake_client.py; the real thing runs in
tests/test_obs_av.py.
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
from types import SimpleNamespace

import numpy as np
import pytest

from inference_server import cover_spec
from inference_server.regions import Region
from inference_server.settings import Settings
from inference_server.speech.render import BEEP_LEVEL, Span, fade_samples
from inference_server.speech.render import render_samples as bleep_render
from obs_plugin.audio_filter import AudioFilter
from obs_plugin.libobs import ObsAudioData, ObsSourceInfo
from obs_plugin.settings import DEFAULTS, delay_frames, parse_entries, settings_from_values
from obs_plugin.video_filter import MAX_REGIONS, region_plan

RATE = 48000


def test_struct_layouts_match_libobs_x86_64():
    assert ctypes.sizeof(ObsSourceInfo) == 232
    assert ObsSourceInfo.free_type_data.offset == 224
    assert ObsAudioData.frames.offset == 64 and ObsAudioData.timestamp.offset == 72


def test_settings_defaults_and_bad_values_fall_back_to_the_safe_side():
    s = settings_from_values({})
    assert s == Settings() and not s.fails_open
    assert (s.style("face"), s.style("text"), s.style("plate")) == ("pixelate", "fill", "fill")
    bad = settings_from_values({"fail_policy": "sometimes", "style_face": "none", "delay_s": 60.0, "strength_face": 7,
                                "target_plates": False})
    assert bad.fail_policy == "closed" and bad.style("face") == "pixelate"
    assert bad.delay_s == 3.0 and bad.strength("face") == 1.0 and not bad.targeted("plates")
    assert set(DEFAULTS) >= {"custom_terms", "bleep_mode", "mouth_blur"}


def test_custom_terms_one_per_line_and_a_comma_belongs_to_its_entry():
    assert parse_entries("Jane Doe\n Springfield, IL \nre:\\d{2,4}\n\nJane Doe") == (
        "Jane Doe", "Springfield, IL", r"re:\d{2,4}")


def test_mouth_blur_follows_the_audio_sources_named_in_the_panel():
    """Empty (the default): every audio filter of the stream; else the OBS source names listed."""
    assert settings_from_values({}).mouth_audio_sources == ()
    named = settings_from_values({"mouth_audio_sources": "Mic/Aux\nHeadset Mic"})
    assert named.mouth_audio_sources == ("Mic/Aux", "Headset Mic")


def test_delay_frames_rounds_to_whole_frames():
    assert delay_frames(1.0, 1 / 30) == 30 and delay_frames(0.5, 1 / 60) == 30 and delay_frames(0.01, 1 / 30) == 1


def test_region_plan_takes_every_number_from_the_cover_spec():
    settings = settings_from_values({"style_plate": "blur", "strength_text": 0.25})
    regions = [Region("face", (64, 36, 128, 108)), Region("text", (0.5, 0, 320, 17.2)),
               Region("plate", (600, 300, 700, 380)), Region("mouth", (80, 80, 100, 90))]
    t, areas = region_plan(regions, settings, 640, 360)
    assert t.shape == (1, 2 * MAX_REGIONS, 4) and t.dtype == np.float32
    face = cover_spec.cover_box(regions[0].box, "face")
    assert face[0] < 64 and face[2] > 128  # the ellipse through the box's corners reaches past its sides
    np.testing.assert_allclose(t[0, 0], face)
    np.testing.assert_allclose(t[0, 1], (0.0, 1.0, cover_spec.cell_px(face, 0.7), cover_spec.blur_radius_px(face, 0.7)),
                               rtol=1e-6)  # pixelate, ellipse, its numbers from cover_spec
    np.testing.assert_allclose(t[0, 2], (0, 0, 320, 18))  # text: its box grown to whole pixels
    np.testing.assert_allclose(t[0, 3][:3], (2.0, 0.0, cover_spec.cell_px((0, 0, 320, 18), 0.25)), rtol=1e-6)
    assert t[0, 5][0] == 1.0  # plate: blur
    assert tuple(t[0, 7][:2]) == (0.0, 1.0)  # mouth: drawn like a face
    assert not t[0, 8:].any()
    assert areas[0] == (0, *cover_spec.on_frame(face, 640, 360)) and areas[1] == (1, 0, 0, 320, 18)
    _, off_frame = region_plan([Region("face", (700, 400, 720, 420))], settings, 640, 360)
    assert off_frame == []


class FakeObs(SimpleNamespace):
    """The few libobs calls AudioFilter makes: format queries and settings reads."""

    def __init__(self, settings: dict):
        super().__init__(settings=settings)

    def obs_get_audio(self):
        return 1

    def audio_output_get_sample_rate(self, _):
        return RATE

    def audio_output_get_channels(self, _):
        return 2

    def obs_get_video(self):
        return 1

    def video_output_get_frame_time(self, _):
        return 33_333_333

    def obs_source_get_name(self, _):
        return b"Mic"

    def obs_source_update_properties(self, _):
        pass

    def obs_data_get_bool(self, _, key):
        return bool(self.settings.get(key.decode(), DEFAULTS[key.decode()]))

    def obs_data_get_double(self, _, key):
        return float(self.settings.get(key.decode(), DEFAULTS[key.decode()]))

    def obs_data_get_string(self, _, key):
        return str(self.settings.get(key.decode(), DEFAULTS[key.decode()])).encode()


def run_audio(signal: np.ndarray, settings: dict, monkeypatch, client: str = "tests.obs_fake_client:FakeClient",
              jumps: dict[int, float] | None = None):
    """Feeds `signal` (mono) through AudioFilter in 1024-sample packets; returns the output (channel 0).
    `jumps` moves the timestamps of packet i and all after it by that many seconds."""
    monkeypatch.setenv("PRIVASTREAM_OBS_CLIENT", client)
    f = AudioFilter(FakeObs(settings), 0, 0)
    out = []
    planes = [(ctypes.c_float * 1024)() for _ in range(2)]
    packet = ObsAudioData()
    for c in range(2):
        packet.data[c] = ctypes.cast(planes[c], ctypes.POINTER(ctypes.c_uint8))
    for i in range(0, len(signal) - 1023, 1024):
        for c in range(2):
            np.ctypeslib.as_array(planes[c])[:] = signal[i:i + 1024]
        shift = sum(s for k, s in (jumps or {}).items() if i >= k * 1024)
        packet.frames, packet.timestamp = 1024, 5_000_000_000 + i * 1_000_000_000 // RATE + round(shift * 1e9)
        assert f.filter_audio(ctypes.addressof(packet)) == ctypes.addressof(packet)
        out.append(np.ctypeslib.as_array(planes[0]).copy())
    f.destroy()
    return np.concatenate(out), f.delay_samples


def tone(seconds: float, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.02 * np.sin(2 * np.pi * hz * t)).astype(np.float32)  # quiet: below the fake's "loud" threshold


def test_audio_is_delayed_by_exactly_the_video_delay(monkeypatch):
    signal = tone(2.0)
    out, delay = run_audio(signal, {"delay_s": 0.5}, monkeypatch)
    assert delay == 15 * 1600  # 15 frames of 1/30 s
    assert not out[:delay].any()
    np.testing.assert_array_equal(out[delay:], signal[: len(out) - delay])


@pytest.mark.parametrize("jump_s", [0.03, -0.03, 0.2, -0.1, 5.0, -3.0])
def test_audio_stays_d_behind_across_timestamp_jumps(monkeypatch, jump_s):
    """OBS plays a packet stamped within 70 ms of the previous one's end right after it, and keeps
    a larger gap or overlap (a new clock from 2 s back).  Whatever OBS does with the input, the
    output must be that timeline exactly D later: with the samples counted instead, a kept jump
    would shift the audio against the video by the jump for D (the sync bound is 50 ms)."""
    signal = tone(3.0, hz=300.0)
    out, delay = run_audio(signal, {"delay_s": 0.5}, monkeypatch, jumps={60: jump_s})
    kept = 0.07 <= abs(jump_s) and jump_s > -2.0
    starts = [k * 1024 + (round(jump_s * RATE) if kept and k >= 60 else 0) for k in range(len(out) // 1024)]
    timeline = np.zeros(starts[-1] + 1024, np.float32)  # as OBS will play the input: gaps silent
    for k, at in enumerate(starts):
        timeline[at:at + 1024] = signal[k * 1024:(k + 1) * 1024]
    late = np.concatenate([np.zeros(delay, np.float32), timeline])
    expected = np.concatenate([late[at:at + 1024] for at in starts])
    # Across a new clock too: the audio of the old one was decided, and still plays, D late.
    np.testing.assert_array_equal(out, expected)


class Decided:
    """A client that answers every query with the same intervals and decided mark."""

    def __init__(self, intervals, decided_until):
        self.answer = (intervals, decided_until)

    def audio_decision(self, start, end):
        return self.answer


def test_watermark_is_read_stamp_by_stamp_across_a_smoothed_jump(monkeypatch):
    """A packet of output can hold samples from both sides of a timestamp jump OBS smoothed over
    (< 70 ms: same ring, stamps 50 ms apart).  Whether a sample is decided depends on its own stamp:
    counted from the packet's first stamp, 480 undecided samples here would have passed.  A bleep
    interval's edges are placed the same way."""
    monkeypatch.setenv("PRIVASTREAM_OBS_CLIENT", "no_such_module:Client")
    f = AudioFilter(FakeObs({"delay_s": 0.3}), 0, 0)
    x = np.zeros((2, 1024), np.float32)
    for k in range(4):
        f._write(x, 5.0 + k * 1024 / RATE + (0.05 if k >= 2 else 0.0))
    assert f.end == 4 * 1024  # smoothed: no gap in the ring
    jump_at = 5.0 + 2048 / RATE

    def played(intervals, decided_until, mode="silence"):
        f.client, f.settings = Decided(intervals, decided_until), dataclasses.replace(f.settings, bleep_mode=mode)
        out = np.ones((2, 1024), np.float32)
        f._apply_decisions(out, 1536, 1024)
        return out[0]

    assert played([], jump_at + 0.01).nonzero()[0].max() == 511
    assert played([], jump_at + 0.06).nonzero()[0].max() == 512 + 480 - 1
    assert played([], jump_at - 0.001).nonzero()[0].max() == 512 - 48 - 1
    assert not played([], -np.inf).any() and played([], np.inf).all()
    # A bleep that starts inside the skipped 50 ms starts at the first sample after it.
    assert played([(jump_at + 0.01, jump_at + 1.0, "pii")], np.inf)[512:].max() == 0.0
    assert played([(jump_at + 0.01, jump_at + 1.0, "pii")], np.inf)[:512 - fade_samples(RATE)].min() == 1.0
    silenced = played([(jump_at + 0.06, jump_at + 1.0, "pii")], np.inf)
    assert silenced[512 + 480:].max() == 0.0 and silenced[512 + 480 - 1] > 0.0
    f.client = None
    f.destroy()


@pytest.mark.parametrize("mode", ["beep", "silence"])
def test_decided_span_is_bleeped_exactly_there(monkeypatch, mode):
    """The fake client returns loud spans as bleep intervals: they must be replaced, D later, and nothing else."""
    signal = tone(3.0)
    loud = slice(47 * 1024, 57 * 1024)  # packet-aligned: the fake client reports whole packets
    signal[loud] = np.float32(0.5) * np.sign(np.sin(np.arange(10 * 1024) / 7)).astype(np.float32)
    out, delay = run_audio(signal, {"delay_s": 0.3, "bleep_mode": mode}, monkeypatch)
    span = slice(loud.start + delay, loud.stop + delay)
    if mode == "beep":
        assert np.abs(out[span]).max() == pytest.approx(BEEP_LEVEL, rel=1e-3)
    else:
        assert not out[span].any()
    # Everything else is the input, delayed, but for the 5 ms raised-cosine fades just outside
    # the span: they start at the input and end at the fill (no click), never inside the span.
    expected = np.concatenate([np.zeros(delay, np.float32), signal])[: len(out)]
    f = fade_samples(RATE)
    keep = np.ones(len(out), bool)
    keep[span.start - f:span.stop + f] = False
    np.testing.assert_array_equal(out[keep], expected[keep])
    before, after = slice(span.start - f, span.start), slice(span.stop, span.stop + f)
    assert abs(out[before][0] - expected[before][0]) < 0.01 and abs(out[after][-1] - expected[after][-1]) < 0.01
    if mode != "beep":
        assert np.all(np.abs(out[before]) <= np.abs(expected[before]) + 1e-6)


def test_no_bleep_sound_gives_the_words_back(monkeypatch):
    """Reversed speech played backwards is the phone number again, so it is no bleep sound.  A scene
    file or a websocket call that still asks for it gets the beep, and the span carries nothing of the input."""
    assert settings_from_values({"bleep_mode": "reverse"}).bleep_mode == "beep"
    signal = tone(3.0)
    loud = slice(47 * 1024, 57 * 1024)
    signal[loud] = np.float32(0.5) * np.sign(np.sin(np.arange(10 * 1024) / 7)).astype(np.float32)
    out, delay = run_audio(signal, {"delay_s": 0.3, "bleep_mode": "reverse"}, monkeypatch)
    played = out[loud.start + delay:loud.stop + delay]
    for candidate in (signal[loud], signal[loud][::-1]):
        assert abs(np.corrcoef(played, candidate)[0, 1]) < 0.05


def test_custom_words_never_reach_the_log(monkeypatch, caplog):
    """OBS writes its log to disk: the streamer's own words (real name, street) must not be in it.
    What is logged is that they changed and how many there are."""
    monkeypatch.setenv("PRIVASTREAM_OBS_CLIENT", "tests.obs_fake_client:FakeClient")
    obs = FakeObs({"delay_s": 0.3, "custom_terms": "Jane Doe\n12 Elm Street"})
    caplog.set_level(logging.DEBUG, logger="privastream")
    f = AudioFilter(obs, 0, 0)
    obs.settings["custom_terms"] = "Jane Doe\n12 Elm Street\njane@example.org"
    f.update(0)
    obs.settings["bleep_mode"] = "silence"
    f.update(0)
    f.destroy()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for word in ("Jane", "Doe", "Elm", "jane@example.org"):
        assert word not in logged, logged
    assert "custom words changed [source:Mic, count:3]" in logged
    assert logged.count("custom words changed") == 1


def test_no_client_mutes_everything_unless_fail_open(monkeypatch):
    signal = tone(1.5)
    muted, _ = run_audio(signal, {"delay_s": 0.3}, monkeypatch, client="no_such_module:Client")
    assert not muted.any()
    opened, delay = run_audio(signal, {"delay_s": 0.3, "fail_policy": "open"}, monkeypatch, client="no_such_module:Client")
    np.testing.assert_array_equal(opened[delay:], signal[: len(opened) - delay])


class FailClosedClient:
    """Reports every span as the real client does while the server is gone."""

    def __init__(self, **_):
        pass

    def submit_audio(self, pts, planar, sample_rate=48000):
        return False

    def audio_decision(self, start, end):
        return [(start, end, "failclosed")], end

    def close(self):
        pass


def test_failclosed_spans_are_muted_not_bleeped(monkeypatch):
    out, delay = run_audio(tone(1.0), {"delay_s": 0.3, "bleep_mode": "beep"}, monkeypatch,
                           client="test_obs_units:FailClosedClient")
    assert not out.any()


def test_bleep_split_over_packets_renders_as_one_without_clicks():
    x = np.repeat((0.3 * np.sin(np.arange(4800) / 5)).astype(np.float32)[None], 2, axis=0)
    spans = [Span(1000, 3000, "beep"), Span(3100, 4000, "silence")]
    whole = x.copy()
    bleep_render(whole, 0, spans, RATE)
    parts = x.copy()
    for a in range(0, 4800, 1024):
        bleep_render(parts[:, a:a + 1024], a, spans, RATE)
    np.testing.assert_allclose(parts, whole, atol=1e-6)
    # No click: a sample step is at most the input's own, plus the tone's, plus the gain ramp's share.
    ramp = np.pi / (2 * fade_samples(RATE)) * (0.3 + BEEP_LEVEL)
    bound = np.abs(np.diff(x[0])).max() + 2 * np.pi * 1000 / RATE * BEEP_LEVEL + ramp
    assert np.abs(np.diff(whole[0])).max() <= bound, "an edge clicks"
    assert not whole[:, 3100:4000].any()
