"""Bleep rendering, the streaming resampler, interval merging and mouth regions (no models)."""

from __future__ import annotations

import subprocess
import sys
from math import gcd
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly

from inference_server.errors import MediaError
from inference_server.regions import Region
from inference_server.speech import FAILCLOSED, MuteInterval, merge_intervals, mouth_regions, render
from inference_server.speech.resample import StreamResampler, to_16k_mono

RATE = 48000
ROOT = Path(__file__).resolve().parents[1]


def tone(seconds: float = 2.0, channels: int = 2) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return np.stack([0.5 * np.sin(2 * np.pi * (440 + 110 * c) * t) for c in range(channels)]).astype(np.float32)


@pytest.mark.parametrize("mode", ["beep", "silence"])
def test_interval_is_replaced_exactly_on_every_channel(mode):
    audio = tone()
    iv = MuteInterval(10.5, 11.25, "phone")
    out = render(audio, RATE, 10.0, [iv], mode)
    first, last = int(0.5 * RATE), int(1.25 * RATE)  # samples at t >= start and t < end
    fade = int(0.005 * RATE)
    assert np.array_equal(out[:, :first - fade], audio[:, :first - fade]), "audio before the fade changed"
    assert np.array_equal(out[:, last + fade + 1:], audio[:, last + fade + 1:]), "audio after the fade changed"
    inside = out[:, first:last]
    if mode == "silence":
        assert not inside.any()
    else:
        assert np.allclose(inside[0], inside[1]) and np.abs(inside).max() > 0.2  # the same beep on all channels
        assert not np.allclose(inside, audio[:, first:last], atol=0.05)


def test_reversed_speech_is_not_a_bleep_sound():
    """Played backwards, reversed speech gives the words back: neither the renderer nor `redact` offers it."""
    with pytest.raises(MediaError, match=r"unknown bleep mode 'reverse' \(choices: beep, silence\)"):
        render(tone(), RATE, 0.0, [MuteInterval(0.5, 1.0, "phone")], "reverse")
    done = subprocess.run([sys.executable, "-m", "inference_server", "redact", "in.mp4", "-o", "out.mp4",
                           "--bleep", "reverse"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and "invalid choice: 'reverse' (choose from" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("mode", ["beep", "silence"])
def test_no_clicks_at_interval_edges(mode):
    """A hard cut from speech to silence is a click: the sample-to-sample jump stays a signal's own."""
    audio = tone()
    out = render(audio, RATE, 0.0, [MuteInterval(0.5, 1.2, "card")], mode)
    natural = np.abs(np.diff(audio, axis=1)).max()
    beep_slope = 0.25 * 2 * np.pi * 1000 / RATE
    assert np.abs(np.diff(out, axis=1)).max() <= max(natural, beep_slope) * 1.1 + 0.01


def test_chunked_beep_equals_whole():
    audio = tone(1.0)
    ivs = [MuteInterval(0.2, 0.61, "email")]
    whole = render(audio, RATE, 3.0, ivs, "beep")
    parts = [render(audio[:, i:i + 960], RATE, 3.0 + i / RATE, ivs, "beep") for i in range(0, audio.shape[1], 960)]
    assert np.abs(np.concatenate(parts, axis=1) - whole).max() < 1e-6


def test_render_bad_input():
    with pytest.raises(MediaError, match="unknown bleep mode 'loud'"):
        render(tone(0.1), RATE, 0.0, [], "loud")
    with pytest.raises(MediaError, match=r"shaped \(channels, samples\)"):
        render(np.zeros((2, 2, 2), np.float32), RATE, 0.0, [])
    out = render(np.array([[np.nan, np.inf, 0.5]], np.float32), RATE, 0.0, [])
    assert np.isfinite(out).all()
    assert render(np.zeros((2, 0), np.float32), RATE, 0.0, [MuteInterval(0, 1, "x")]).shape == (2, 0)


@pytest.mark.parametrize("rate", [48000, 44100, 22050, 16000, 8000, 96000])
def test_streaming_resampler_equals_whole_signal_for_any_chunking(rate):
    rng = np.random.default_rng(rate)
    x = (rng.standard_normal(rate) * 0.1).astype(np.float32)
    g = gcd(rate, 16000)
    ref = resample_poly(x, 16000 // g, rate // g).astype(np.float32)
    rs, out, i = StreamResampler(rate), [], 0
    while i < x.size:
        n = int(rng.integers(0, 2000))  # includes zero-length chunks
        out.append(rs.process(x[i:i + n]))
        i += n
    y = np.concatenate(out + [rs.flush()])
    assert y.size == ref.size
    assert np.abs(y - ref).max() < 1e-5


def test_resampler_removes_content_above_8khz():
    t = np.arange(RATE) / RATE
    alias = to_16k_mono(np.sin(2 * np.pi * 12000 * t).astype(np.float32), RATE)  # would fold to 4 kHz
    assert np.sqrt(np.mean(alias[200:-200] ** 2)) < 0.01


def test_resampler_rejects_impossible_rates():
    for bad in (0, -48000, 1000, 10**7, 44100.5, "48k"):
        with pytest.raises(MediaError, match="sample rate"):
            StreamResampler(bad)


def test_merge_joins_close_neighbours_and_keeps_failclosed():
    ivs = [MuteInterval(1.0, 2.0, "phone"), MuteInterval(2.2, 3.0, "phone"), MuteInterval(5.0, 6.0, "email"),
           MuteInterval(5.5, 7.0, FAILCLOSED)]
    assert merge_intervals(ivs, gap=0.3) == [MuteInterval(1.0, 3.0, "phone"), MuteInterval(5.0, 7.0, FAILCLOSED)]


def test_mouth_regions_follow_landmarks_only_while_muted():
    face = Region("face", (100, 100, 200, 220), 0.9,
                  landmarks=((130, 140), (170, 140), (150, 165), (132, 190), (168, 190)), track_id=4)
    no_landmarks = Region("face", (300, 100, 400, 220), 0.8)
    ivs = [MuteInterval(2.0, 3.0, "phone")]
    assert mouth_regions(1.5, [face], ivs) == []
    regions = mouth_regions(2.5, [face, no_landmarks], ivs)
    assert [r.kind for r in regions] == ["mouth", "mouth"]
    assert regions[0].label == "phone" and regions[0].track_id == 4
    x0, y0, x1, y1 = regions[0].box
    assert x0 < 132 and x1 > 168 and y0 < 190 < y1 and y0 > 140, "box spans the lips, below the eyes"
    nx0, ny0, nx1, ny1 = regions[1].box
    assert 300 < nx0 < nx1 < 400 and ny0 > 160 and ny1 >= 220
    assert mouth_regions(3.05, [face], ivs), "lips move a little after the sound"


def test_downmix_keeps_speech_that_cancels_in_the_mix():
    """Phase-inverted stereo sums to silence, yet every word is audible on each channel."""
    from inference_server.speech.resample import sanitize
    voice = tone(0.5, channels=1)[0]
    mono = sanitize(np.stack([voice, -voice]))
    assert np.allclose(mono, voice) or np.allclose(mono, -voice)
    assert np.allclose(sanitize(np.stack([voice, voice])), voice)
