"""The "PrivaStream Filter" in a real OBS under Xvfb: registration, fail-closed full cover without
a server, the mask effect on a fixed region list, a whole-frame cover when a region cannot be drawn
or the GPU cannot allocate, fail-open by explicit choice, removing the filter while recording, a
script reload while filtering, and a clean exit (status 0)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from inference_server import cover_spec
from privastream_testkit.obs import OBS_MAJORS, SCRIPT, ObsSession, filter_entry, image_source

pytestmark = pytest.mark.skipif(not (shutil.which("obs") and shutil.which("Xvfb")), reason="needs obs-studio and Xvfb")
"""Registration, the cover, the mask effect, a script reload, a region that cannot be drawn and a
failed GPU allocation run on every major in OBS_MAJORS (29 here, 30 and 32 from scripts/run_obs.sh's
root filesystems); the other tests on 29."""

FILL = cover_spec.FILL_LEVEL
FAKE = {"PRIVASTREAM_OBS_CLIENT": "tests.obs_fake_client:FakeClient"}
RELOADER = Path(__file__).resolve().parent / "obs_reload_script.py"
GPU_FAULT = Path(__file__).resolve().parent / "obs_gpu_fault_script.py"


def first_uncovered_shot(obs: ObsSession, source: str, timeout: float = 20.0):
    """The first screenshot that is not one flat colour (the filter stopped covering), or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shot = obs.screenshot(source)
        if shot.std() > 0:
            return shot
        time.sleep(0.3)
    return None


@pytest.mark.parametrize("major", OBS_MAJORS)
def test_without_server_the_whole_frame_is_covered(tmp_path, picture, major):
    """No inference server: the real LiveClient cannot connect, so every frame must be covered."""
    img, png = picture
    src = image_source("Camera", png, [filter_entry("privastream_filter", "PrivaStream")])
    with ObsSession(tmp_path, [src], major=major) as obs:
        defaults = obs.call("GetSourceFilterDefaultSettings", {"filterKind": "privastream_filter"})["defaultFilterSettings"]
        assert defaults["fail_policy"] == "closed" and defaults["target_faces"] is True
        for _ in range(5):
            shot = obs.screenshot("Camera")
            assert shot.std() == 0 and abs(int(shot[0, 0, 0]) - FILL) <= 1, "a frame leaked without a server"
            time.sleep(0.5)
        log = obs.log_text()
    assert obs.exit_code == 0
    assert "covering the whole frame" in log and "Traceback" not in log


@pytest.mark.parametrize("major", OBS_MAJORS)
def test_mask_effect_draws_each_style_on_fixed_regions(tmp_path, picture, major):
    """Shader check on a fixed region list (fake client, see tests/obs_fake_client.py)."""
    img, png = picture
    # The second face's box corner lies inside the first face's ellipse, and it is drawn later: its
    # corner must leave the first face covered (each region is drawn on its own, see the effect).
    regions = [{"kind": "face", "box": [40, 40, 200, 200]}, {"kind": "text", "box": [300, 48, 500, 96]},
               {"kind": "plate", "box": [304, 200, 456, 264]}, {"kind": "face", "box": [150, 150, 260, 260]}]
    settings = {"style_plate": "blur", "delay_s": 0.2}
    src = image_source("Camera", png, [filter_entry("privastream_filter", "PrivaStream", settings)])
    with ObsSession(tmp_path, [src], env={**FAKE, "PRIVASTREAM_FAKE_REGIONS": json.dumps(regions)}, major=major) as obs:
        shot = first_uncovered_shot(obs, "Camera")
    assert obs.exit_code == 0
    assert shot is not None, "the frame stayed covered although every frame was decided"
    outside = np.ones(img.shape[:2], bool)
    for r in regions:
        x0, y0, x1, y1 = map(int, cover_spec.cover_box(r["box"], r["kind"]))
        outside[max(0, y0):y1, max(0, x0):x1] = False
    assert np.array_equal(shot[outside], img[outside]), "pixels outside every region changed"
    # text: solid fill
    assert np.all(np.abs(shot[48:96, 300:500].astype(int) - FILL) <= 1)
    # face: pixelated inside the ellipse through its box's corners (cells from cover_spec at strength 0.7),
    # untouched in the corners of the area that ellipse is inscribed in
    face = shot[70:170, 70:170].astype(int)
    assert np.abs(face - img[70:170, 70:170]).mean() > 30
    assert len(np.unique(face.reshape(-1, 3), axis=0)) < 40, "the face is not pixelated into cells"
    assert not np.array_equal(shot[41:45, 41:45], img[41:45, 41:45]), "the face's box corner is uncovered"
    assert np.array_equal(shot[8:12, 8:12], img[8:12, 8:12]), "the face ellipse should leave its area's corners"
    overlap = shot[151:155, 151:155].astype(int)
    assert np.abs(overlap - img[151:155, 151:155]).mean() > 30, "a later region's box corner uncovered a face"
    # plate: blurred - the random blocks average out to a narrow spread of values
    plate, source_plate = shot[210:254, 314:446].astype(float), img[210:254, 314:446].astype(float)
    assert plate.std() < 0.4 * source_plate.std() and np.abs(plate - source_plate).mean() > 30


def covered_whole(shot: np.ndarray) -> bool:
    return shot.std() == 0 and abs(int(shot[0, 0, 0]) - FILL) <= 1


@pytest.mark.parametrize("major", OBS_MAJORS)
@pytest.mark.parametrize("bad", [[float("nan"), 40, 200, 200], [200, 200, 40, 40]], ids=["nan", "inverted"])
def test_a_region_that_cannot_be_drawn_covers_the_whole_frame(tmp_path, picture, bad, major):
    """The fake client hands the filter a region list with one box it cannot draw next to a good one
    (the protocol refuses such boxes; this is the filter's own guard): every frame is covered whole,
    never drawn plain with that region missing."""
    _, png = picture
    regions = json.dumps([{"kind": "text", "box": [300, 48, 500, 96]}, {"kind": "face", "box": bad}])
    src = image_source("Camera", png, [filter_entry("privastream_filter", "PrivaStream", {"delay_s": 0.2})])
    with ObsSession(tmp_path, [src], env={**FAKE, "PRIVASTREAM_FAKE_REGIONS": regions}, major=major) as obs:
        time.sleep(1.0)  # the delay line is full
        shots = [obs.screenshot("Camera") for _ in range(6)]
        log = obs.log_text()
    assert obs.exit_code == 0
    assert all(covered_whole(s) for s in shots), "a frame was shown without a region it could not draw"
    assert "cannot draw the regions (a face region has the box" in log and "Traceback" not in log


@pytest.mark.parametrize("major", OBS_MAJORS)
def test_a_gpu_allocation_failure_covers_the_frame_until_it_succeeds(tmp_path, picture, major):
    """tests/obs_gpu_fault_script.py makes the region texture's allocation fail (a mock: see there)
    while the filter rebuilds its delay line for a new delay: every frame is covered whole, and once
    the allocation succeeds again the regions are drawn as before."""
    img, png = picture
    fault = tmp_path / "gpu-fault"
    regions = [{"kind": "text", "box": [300, 48, 500, 96]}]
    env = {**FAKE, "PRIVASTREAM_FAKE_REGIONS": json.dumps(regions), "PRIVASTREAM_GPU_FAULT": str(fault)}
    src = image_source("Camera", png, [filter_entry("privastream_filter", "PrivaStream", {"delay_s": 0.2})])
    with ObsSession(tmp_path, [src], env=env, extra_scripts=(GPU_FAULT,), major=major) as obs:
        before = first_uncovered_shot(obs, "Camera")
        fault.touch()
        obs.call("SetSourceFilterSettings", {"sourceName": "Camera", "filterName": "PrivaStream",
                                             "filterSettings": {"delay_s": 0.3}})
        time.sleep(0.5)
        during = [obs.screenshot("Camera") for _ in range(6)]
        fault.unlink()
        after = first_uncovered_shot(obs, "Camera")
        log = obs.log_text()
    assert obs.exit_code == 0
    assert before is not None and np.all(np.abs(before[48:96, 300:500].astype(int) - FILL) <= 1)
    assert all(covered_whole(s) for s in during), "a frame was drawn without its region texture"
    assert after is not None and np.array_equal(after, before), "the regions are not drawn again"
    assert log.count("_ensure_gpu() | cannot allocate GPU buffers") == 1 and "Traceback" not in log, log


def test_fail_open_only_by_explicit_choice_and_filter_removal_while_recording(tmp_path, picture):
    """Fail open shows the raw source when the server is away; removing and re-adding the
    filter while recording and then quitting must not crash OBS."""
    img, png = picture
    src = image_source("Camera", png, [filter_entry("privastream_filter", "PrivaStream", {"fail_policy": "open",
                                                                                      "delay_s": 0.2})])
    with ObsSession(tmp_path, [src]) as obs:
        shot = first_uncovered_shot(obs, "Camera")
        assert shot is not None and np.array_equal(shot, img)
        obs.call("StartRecord")
        time.sleep(1.5)
        obs.call("RemoveSourceFilter", {"sourceName": "Camera", "filterName": "PrivaStream"})
        time.sleep(0.5)
        obs.call("CreateSourceFilter", {"sourceName": "Camera", "filterName": "PrivaStream 2",
                                        "filterKind": "privastream_filter", "filterSettings": {}})
        time.sleep(0.5)
        covered = obs.screenshot("Camera")
        obs.call("SetSourceFilterSettings", {"sourceName": "Camera", "filterName": "PrivaStream 2",
                                             "filterSettings": {"delay_s": 0.5, "style_face": "blur"}})
        time.sleep(1.0)
        recording = obs.stop_recording()
        log = obs.log_text()
    assert obs.exit_code == 0
    assert covered.std() == 0, "a new filter with default settings must fail closed without a server"
    assert recording.stat().st_size > 0
    assert "Traceback" not in log


@pytest.mark.parametrize("major", OBS_MAJORS)
def test_script_reload_while_filtering(tmp_path, picture, major, request):
    """Tools -> Scripts -> Reload (done by tests/obs_reload_script.py through libobs-scripting) while a
    filter draws its regions: that filter goes on drawing them, a filter added after the reload works,
    removing the first one is safe, and OBS exits cleanly."""
    if major == 29:
        request.applymarker(pytest.mark.xfail(strict=False, reason=(
            "OBS 29 ticks every source while holding its source list, and the reloaded script lists the "
            "sources while holding Python's lock (failsafe.SourceGuard.start): when a filter's tick waits "
            "for Python at that moment, OBS hangs (2 of 10 runs; docs/obs.md, Known limits)")))
    img, png = picture
    regions = [{"kind": "text", "box": [300, 48, 500, 96]}]
    trigger, out = tmp_path / "reload-now", tmp_path / "reload.out"
    env = {**FAKE, "PRIVASTREAM_FAKE_REGIONS": json.dumps(regions), "PRIVASTREAM_RELOAD_TRIGGER": str(trigger),
           "PRIVASTREAM_RELOAD_OUT": str(out), "PRIVASTREAM_RELOAD_SCRIPT": str(SCRIPT)}
    src = image_source("Camera", png, [filter_entry("privastream_filter", "PrivaStream", {"delay_s": 0.2})])
    with ObsSession(tmp_path, [src], env=env, extra_scripts=(RELOADER,), major=major) as obs:
        before = first_uncovered_shot(obs, "Camera")
        trigger.touch()
        deadline = time.monotonic() + 20
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        after = obs.screenshot("Camera")
        obs.call("CreateSourceFilter", {"sourceName": "Camera", "filterName": "PrivaStream 2",
                                        "filterKind": "privastream_filter", "filterSettings": {"delay_s": 0.2}})
        obs.call("RemoveSourceFilter", {"sourceName": "Camera", "filterName": "PrivaStream"})
        added = first_uncovered_shot(obs, "Camera")
        log = obs.log_text()
    assert obs.exit_code == 0
    assert out.exists() and out.read_text() == "reloaded", out.read_text() if out.exists() else "no reload"
    assert before is not None and np.all(np.abs(before[48:96, 300:500].astype(int) - FILL) <= 1)
    assert np.array_equal(after, before), "the filter changed what it draws across the reload"
    assert added is not None and np.array_equal(added, before), "a filter added after the reload differs"
    # script_load ran three times: OBS's own load, the second script object, the reload.
    assert log.count("script_load() | ready") == 3, log
    assert "Traceback" not in log, log
