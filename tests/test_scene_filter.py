"""The "PrivaStream Filter" on a whole scene in a real OBS (29, under Xvfb), as docs/obs.md advises
for keeping sources without the filter (a game capture) in sync with the delayed ones.

On a scene the filter sees the composed scene, so it must cover everything in it when it has no
answer, and draw its regions on the scene when it has; a source in that scene without a filter of
its own stays as it is when shown alone.  The first test runs the real LiveClient with no server;
the second the fake client (tests/obs_fake_client.py, a mock: no detector decides what is covered).
"""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest

from privastream_testkit.obs import ObsSession, image_source
from test_obs_video import FILL

pytestmark = pytest.mark.skipif(not (shutil.which("obs") and shutil.which("Xvfb")), reason="needs obs-studio and Xvfb")

BOX = [200, 80, 360, 240]


def add_scene_filter(obs: ObsSession, settings: dict) -> None:
    obs.call("CreateSourceFilter", {"sourceName": "Scene", "filterName": "PrivaStream",
                                    "filterKind": "privastream_filter", "filterSettings": settings})


def test_filter_on_a_scene_covers_the_whole_scene_without_a_server(tmp_path, picture):
    img, png = picture
    with ObsSession(tmp_path, [image_source("Game", png)]) as obs:
        add_scene_filter(obs, {"delay_s": 0.2})
        time.sleep(1.0)
        shots = []
        for _ in range(5):
            shots.append(obs.screenshot("Scene"))
            time.sleep(0.4)
        alone = obs.screenshot("Game")
    assert obs.exit_code == 0
    for shot in shots:
        assert shot.std() == 0 and abs(int(shot[0, 0, 0]) - FILL) <= 1, "the scene leaked without a server"
    assert np.abs(alone.astype(int) - img).max() <= 2, "the source itself carries no filter and must stay as it is"


def test_filter_on_a_scene_draws_its_regions_on_the_scene(tmp_path, picture):
    img, png = picture
    env = {"PRIVASTREAM_OBS_CLIENT": "tests.obs_fake_client:FakeClient",
           "PRIVASTREAM_FAKE_REGIONS": json.dumps([{"kind": "text", "box": BOX}])}
    with ObsSession(tmp_path, [image_source("Game", png)], env=env) as obs:
        add_scene_filter(obs, {"delay_s": 0.2, "style_text": "fill"})
        deadline, shot = time.monotonic() + 20, None
        while time.monotonic() < deadline:
            shot = obs.screenshot("Scene")
            if shot.std() > 0:
                break
            time.sleep(0.3)
    assert obs.exit_code == 0
    assert shot is not None and shot.std() > 0, "the scene stayed covered although every frame was decided"
    x0, y0, x1, y1 = BOX
    inside = shot[y0 + 2:y1 - 2, x0 + 2:x1 - 2].astype(int)
    assert np.abs(inside - FILL).max() <= 1, "the region on the scene was not filled"
    outside = np.ones(shot.shape[:2], bool)
    outside[y0 - 2:y1 + 2, x0 - 2:x1 + 2] = False
    assert np.abs(shot.astype(int) - img)[outside].max() <= 2, "the scene outside the region changed"
