"""Both PrivaStream filters on a media source in a real OBS 29 under Xvfb (issue 5), recorded:
A/V offset against the same clip without filters, bleeps rendered where decided, and
everything covered and muted without a server.  OBS must exit with status 0 every time."""

from __future__ import annotations

import shutil
import statistics
import time

import numpy as np
import pytest

from obs_harness import ObsSession, filter_entry, media_source
from obs_media import (EVENT_S, RATE, TONE_MIN_S, av_offsets, dominant_hz, make_flash_clip, onsets, read_audio,
                       read_video_brightness, rms_envelope)

pytestmark = pytest.mark.skipif(not (shutil.which("obs") and shutil.which("Xvfb")), reason="needs obs-studio and Xvfb")

FAKE = {"PRIVASTREAM_OBS_CLIENT": "tests.obs_fake_client:FakeClient"}
DELAY = {"delay_s": 0.5}
WARM_UP_S = 3.0
RECORD_S = 5.0


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_flash_clip(tmp_path_factory.mktemp("clip") / "flash.mkv")


def record(home, clip, filters: bool, env: dict | None = None):
    """-> (recording path, OBS exit status, OBS log)."""
    chain = [filter_entry("privastream_filter", "PrivaStream", DELAY),
             filter_entry("privastream_audio_filter", "PrivaStream Audio", DELAY)] if filters else []
    with ObsSession(home, [media_source("Clip", clip, chain)], env=env) as obs:
        time.sleep(WARM_UP_S)
        obs.call("StartRecord")
        time.sleep(RECORD_S)
        path = obs.stop_recording()
        log = obs.log_text()
    return path, obs.exit_code, log


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, clip):
    path, code, _ = record(tmp_path_factory.mktemp("plain"), clip, filters=False)
    assert code == 0
    offsets = av_offsets(path)
    assert len(offsets) >= 3, "the unfiltered recording lost its flashes or tones"
    return statistics.median(offsets)


def test_filters_keep_av_sync_and_bleep_decided_spans(tmp_path, clip, baseline):
    """Fake client (tests/obs_fake_client.py): every frame decided with no region, every loud
    span returned as a bleep interval.  The output must show the flashes, carry the 1 kHz
    beep instead of the 440 Hz tone, and keep the unfiltered A/V offset within 50 ms."""
    path, code, log = record(tmp_path, clip, filters=True, env=FAKE)
    assert code == 0 and "Traceback" not in log
    offsets = av_offsets(path)
    assert len(offsets) >= 3, f"flashes or tones missing in the filtered recording ({offsets})"
    assert abs(statistics.median(offsets) - baseline) <= 0.050, (offsets, baseline)
    audio = read_audio(path)
    tones = onsets(rms_envelope(audio), 0.05, 0.005, TONE_MIN_S)
    spans = [audio[int((t + 0.03) * RATE): int((t + EVENT_S - 0.03) * RATE)] for t in tones]
    assert spans and all(abs(dominant_hz(s) - 1000.0) < 20 for s in spans if len(s) > RATE // 20)


def test_without_server_video_covered_and_audio_muted(tmp_path, clip):
    """Real LiveClient, no inference server: nothing of the clip may reach the recording."""
    path, code, log = record(tmp_path, clip, filters=True)
    assert code == 0 and "Traceback" not in log
    brightness = read_video_brightness(path)
    assert len(brightness) > 60 and np.all(np.abs(brightness - 20) < 3), "a frame leaked"
    assert np.max(np.abs(read_audio(path))) < 1e-3, "audio leaked"
