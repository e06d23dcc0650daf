"""What a real OBS of each major does when the PrivaStream filters cannot run.

OBS itself keeps a saved filter whose type nobody registered and skips it, so the source goes
out raw: the first test records that, for the case no script can help (the script not loaded).
When the script loads but cannot register (here: another script took the id first, with a
filter that passes the picture through raw), every source that carries a PrivaStream filter must
show nothing and play nothing, and a later load that registers shows those sources again.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from inference_server import cover_spec
from privastream_testkit.media import make_flash_clip, read_audio
from privastream_testkit.obs import OBS_MAJORS, ObsSession, filter_entry, image_source, media_source

pytestmark = pytest.mark.skipif(not shutil.which("Xvfb"), reason="needs Xvfb")

SQUATTER = Path(__file__).resolve().parent / "obs_squatter_script.py"
FILL = cover_spec.FILL_LEVEL  # the fail-closed cover's grey
HIDDEN_MARK = "privastream_hidden_by_failsafe"
FAILSAFE_MAJORS = [m for m in OBS_MAJORS if m != 30]
"""29 and 32: the oldest and newest; 30 adds nothing to what these two show."""


def shots(obs: ObsSession, source: str, n: int = 4) -> list[np.ndarray]:
    out = []
    for _ in range(n):
        out.append(obs.screenshot(source))
        time.sleep(0.4)
    return out


@pytest.mark.parametrize("major", FAILSAFE_MAJORS)
def test_without_the_script_obs_shows_a_filtered_source_raw(tmp_path, picture, major):
    """OBS's own behaviour, which no script can change: the script is not loaded, so the saved
    filter's type is unknown; OBS logs it and renders the source unfiltered."""
    img, png = picture
    src = image_source("Camera", png, [filter_entry("privastream_filter", "PrivaStream")])
    with ObsSession(tmp_path, [src], load_script=False, major=major) as obs:
        time.sleep(1.0)
        shot = obs.screenshot("Camera")
        log = obs.log_text()
    assert obs.exit_code == 0
    assert "Source ID 'privastream_filter' not found" in log
    assert np.array_equal(shot, img), "OBS no longer shows an unknown filter's source raw: update docs/obs.md"


@pytest.mark.parametrize("major", FAILSAFE_MAJORS)
def test_filters_that_cannot_register_hide_and_mute_their_sources(tmp_path, picture, major):
    """obs_squatter_script.py registers the id privastream_filter first, as a raw pass-through.
    Our script's registration then does not hold: both filtered sources must show nothing and
    their audio must be silent, a source without our filters stays as it is, and the script's
    panel and log say why."""
    img, png = picture
    clip = make_flash_clip(tmp_path / "clip.mkv", seconds=4)
    sources = [image_source("Camera", png, [filter_entry("privastream_filter", "PrivaStream")]),
               media_source("Mic", clip, [filter_entry("privastream_audio_filter", "PrivaStream Audio")]),
               image_source("Logo", png)]
    with ObsSession(tmp_path, sources, major=major, extra_scripts=(SQUATTER,), script_first=False) as obs:
        time.sleep(1.0)
        camera, logo = shots(obs, "Camera"), obs.screenshot("Logo")
        obs.call("StartRecord")
        time.sleep(2.5)
        audio = read_audio(obs.stop_recording())
        log = obs.log_text()
    assert obs.exit_code == 0
    assert all(s.max() == 0 for s in camera), "a source whose filter cannot run was drawn"
    assert np.array_equal(logo, img), "a source without PrivaStream filters was touched"
    assert audio.size and float(np.abs(audio).max()) < 1e-4, "a source whose audio filter cannot run was heard"
    assert "filters NOT registered" in log and "another plugin or script may have taken this id" in log
    for name in ("Camera", "Mic"):
        assert f"source hidden and muted: its PrivaStream filter cannot run [source:{name}" in log


@pytest.mark.parametrize("major", FAILSAFE_MAJORS)
def test_sources_hidden_before_are_shown_again_once_the_filters_register(tmp_path, picture, major):
    """What OBS saved after the test above: the source disabled and marked.  With the filters
    registered it is enabled again, and then covered by its filter (no server: fail closed)."""
    img, png = picture
    src = image_source("Camera", png, [filter_entry("privastream_filter", "PrivaStream")])
    src.update(enabled=False, private_settings={HIDDEN_MARK: True})
    with ObsSession(tmp_path, [src], major=major) as obs:
        time.sleep(1.0)
        camera = shots(obs, "Camera")
        log = obs.log_text()
    assert obs.exit_code == 0
    assert "source shown again: the filters run [source:Camera]" in log
    assert all(s.std() == 0 and abs(int(s[0, 0, 0]) - FILL) <= 1 for s in camera), "not covered by its filter"


def test_a_dependency_missing_for_obs_python_hides_the_filtered_source(tmp_path, picture):
    """What an OBS update to a new Python looks like: numpy does not import in OBS's Python (here a
    numpy package on PYTHONPATH that raises, standing in for one that is not installed).  The
    script loads anyway, says which module and which Python, and hides the filtered source."""
    img, png = picture
    (tmp_path / "shadow" / "numpy").mkdir(parents=True)
    (tmp_path / "shadow" / "numpy" / "__init__.py").write_text('raise ImportError("No module named numpy")\n')
    src = image_source("Camera", png, [filter_entry("privastream_filter", "PrivaStream")])
    major = max(OBS_MAJORS)
    with ObsSession(tmp_path, [src], major=major, env={"PYTHONPATH": str(tmp_path / "shadow")}) as obs:
        time.sleep(1.0)
        camera = shots(obs, "Camera", 2)
        log = obs.log_text()
    assert obs.exit_code == 0
    assert all(s.max() == 0 for s in camera), "a source whose filter cannot run was drawn"
    assert "numpy cannot be imported in OBS's Python 3." in log and "Traceback" not in log
    assert "source hidden and muted: its PrivaStream filter cannot run [source:Camera" in log
