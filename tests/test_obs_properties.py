"""The filters' properties panels in a real OBS 29, read the way the UI reads them
(tests/obs_probe_script.py calls obs_source_properties once a second): every control is there,
the server status line is live, and the fail-open warning appears only when fail open is chosen."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from privastream_testkit.media import make_flash_clip
from privastream_testkit.obs import ObsSession, filter_entry, media_source

pytestmark = pytest.mark.skipif(not (shutil.which("obs") and shutil.which("Xvfb")), reason="needs obs-studio and Xvfb")

PROBE = Path(__file__).resolve().parent / "obs_probe_script.py"
VIDEO_CONTROLS = {"status", "target_faces", "target_plates", "target_text", "target_speech", "mouth_blur",
                  "mouth_audio_sources", "style_face", "strength_face", "style_text", "strength_text", "style_plate",
                  "strength_plate", "delay_s", "custom_terms", "fail_policy"}


def read_probe(out: Path, until, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    snapshot = {}
    while time.monotonic() < deadline:
        if out.exists():
            snapshot = json.loads(out.read_text())
            if until(snapshot):
                return snapshot
        time.sleep(0.3)
    return snapshot


@pytest.mark.parametrize("kind,name", [("privastream_filter", "PrivaStream"),
                                       ("privastream_audio_filter", "PrivaStream Audio")])
def test_panel_controls_status_and_fail_open_warning(tmp_path, kind, name):
    clip = make_flash_clip(tmp_path / "clip.mkv", seconds=2)
    out = tmp_path / "probe.json"
    env = {"PRIVASTREAM_PROBE_SOURCE": "Clip", "PRIVASTREAM_PROBE_FILTER": name, "PRIVASTREAM_PROBE_OUT": str(out)}
    with ObsSession(tmp_path, [media_source("Clip", clip, [filter_entry(kind, name)])], env=env,
                    extra_scripts=(PROBE,)) as obs:
        closed = read_probe(out, lambda s: "status" in s)
        obs.call("SetSourceFilterSettings", {"sourceName": "Clip", "filterName": name,
                                             "filterSettings": {"fail_policy": "open"}})
        opened = read_probe(out, lambda s: "fail_open_warning" in s)
    assert obs.exit_code == 0
    expected = VIDEO_CONTROLS if kind == "privastream_filter" else {"status", "target_speech", "bleep_mode", "delay_s",
                                                                     "custom_terms", "fail_policy"}
    assert expected <= set(closed), expected - set(closed)
    assert "fail_open_warning" not in closed
    # No inference server in this test: the live status says so and that everything is covered.
    assert closed["status"].startswith("Server: ") and "covering everything" in closed["status"], closed["status"]
    assert "UNFILTERED" in opened["fail_open_warning"]
    assert "passing through (fail open)" in opened["status"]
