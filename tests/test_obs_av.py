"""Both PrivaStream filters on a media source in a real OBS under Xvfb (the bleep test on every
major in OBS_MAJORS, the rest on 29), recorded:
A/V offset against the same clip without filters, bleeps rendered where decided, and
everything covered and muted without a server.  OBS must exit with status 0 every time."""

from __future__ import annotations

import shutil
import statistics
import time

import numpy as np
import pytest

from inference_server import cover_spec
from privastream_testkit.media import (EVENT_S, RATE, TONE_MIN_S, av_offsets, dominant_hz, make_flash_clip, onsets, read_audio,
                       read_video_brightness, rms_envelope)
from privastream_testkit.obs import OBS_MAJORS, ObsSession, filter_entry, media_source

pytestmark = pytest.mark.skipif(not (shutil.which("obs") and shutil.which("Xvfb")), reason="needs obs-studio and Xvfb")

FAKE = {"PRIVASTREAM_OBS_CLIENT": "tests.obs_fake_client:FakeClient"}
DELAY = {"delay_s": 0.5}
WARM_UP_S = 3.0
RECORD_S = 5.0
CLIP_S = 30
"""Longer than a session's recordings: the clip must not loop in between, because OBS's media
source moves its audio by 20-70 ms at a loop restart."""


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_flash_clip(tmp_path_factory.mktemp("clip") / "flash.mkv", seconds=CLIP_S)


def _chain(enabled: bool) -> list[dict]:
    chain = [filter_entry("privastream_filter", "PrivaStream", DELAY),
             filter_entry("privastream_audio_filter", "PrivaStream Audio", DELAY)]
    for entry in chain:
        entry["enabled"] = enabled
    return chain


def _record(obs: ObsSession):
    obs.call("StartRecord")
    time.sleep(RECORD_S)
    return obs.stop_recording()


@pytest.mark.parametrize("major", OBS_MAJORS)
def test_filters_keep_av_sync_and_bleep_decided_spans(tmp_path, clip, major):
    """Fake client (tests/obs_fake_client.py): every frame decided with no region, every loud
    span returned as a bleep interval.  The output must show the flashes, carry the 1 kHz
    beep instead of the 440 Hz tone, and keep the unfiltered A/V offset within 50 ms.

    Both offsets come from one playback of the clip: first recorded with the filters disabled,
    then with them enabled.  OBS's own offset differs by up to 30 ms from one start of a media
    source to the next (-33 to -60 ms over 7 starts here), which two sessions would add."""
    with ObsSession(tmp_path, [media_source("Clip", clip, _chain(enabled=False), looping=False)], env=FAKE,
                    major=major) as obs:
        time.sleep(WARM_UP_S)
        plain = _record(obs)
        for name in ("PrivaStream", "PrivaStream Audio"):
            obs.call("SetSourceFilterEnabled", {"sourceName": "Clip", "filterName": name, "filterEnabled": True})
        time.sleep(DELAY["delay_s"] + 1.0)
        path = _record(obs)
        log = obs.log_text()
    assert obs.exit_code == 0 and "Traceback" not in log
    baseline = av_offsets(plain)
    assert len(baseline) >= 3, "the unfiltered recording lost its flashes or tones"
    offsets = av_offsets(path)
    assert len(offsets) >= 3, f"flashes or tones missing in the filtered recording ({offsets})"
    assert abs(statistics.median(offsets) - statistics.median(baseline)) <= 0.050, (offsets, baseline)
    audio = read_audio(path)
    tones = onsets(rms_envelope(audio), 0.05, 0.005, TONE_MIN_S)
    spans = [audio[int((t + 0.03) * RATE): int((t + EVENT_S - 0.03) * RATE)] for t in tones]
    assert spans and all(abs(dominant_hz(s) - 1000.0) < 20 for s in spans if len(s) > RATE // 20)


def test_without_server_video_covered_and_audio_muted(tmp_path, clip):
    """Real LiveClient, no inference server: nothing of the clip may reach the recording."""
    with ObsSession(tmp_path, [media_source("Clip", clip, _chain(enabled=True), looping=False)]) as obs:
        time.sleep(WARM_UP_S)
        path = _record(obs)
        log = obs.log_text()
    assert obs.exit_code == 0 and "Traceback" not in log
    brightness = read_video_brightness(path)
    assert len(brightness) > 60 and np.all(np.abs(brightness - cover_spec.FILL_LEVEL) < 3), "a frame leaked"
    assert np.max(np.abs(read_audio(path))) < 1e-3, "audio leaked"
