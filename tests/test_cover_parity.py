"""One cover, two renderers: the OBS shader and `masking.py` draw the same regions the same way.

Four sources in one real OBS (under Xvfb; every major in OBS_MAJORS), each with the filter, and the fake client
(tests/obs_fake_client.py: the regions are fixed, so the check does not depend on detector quality)
deciding every frame.  Three draw every region kind (face ellipses, one overlapping another and one
half off the frame, a mouth, text, a plate, unvouched change, a box at fractional pixels), each with
another style for each kind and another strength; the fourth has a region it cannot draw, so the
filter covers its whole frame (fail closed).  `masking.py` draws the same regions on the same
picture.  Compared:
  - which pixels are covered: the two masks may differ only within EDGE_PX of a cover's edge (a
    pixel centre that lies on the ellipse or the box edge can fall either way in float32), or where
    the cover's value is within VALUE_TOL of the picture's own (covered and not look alike there);
  - what the covers keep: no box keeps the picture's detail in either (cover_judge.detail_kept);
  - the covered values: the same pixels are read and averaged on both sides, so nearly all agree
    to within VALUE_TOL levels (GPU and numpy round sums differently).
"""

from __future__ import annotations

import json
import shutil
import time

import cv2
import numpy as np
import pytest

from inference_server import cover_spec
from inference_server.masking import MaskOptions, apply_masks, cover_all
from inference_server.regions import Region
from privastream_testkit.cover_judge import DETAIL_LEAK, detail_kept
from privastream_testkit.obs import OBS_MAJORS, ObsSession, filter_entry, image_source

pytestmark = pytest.mark.skipif(not (shutil.which("obs") and shutil.which("Xvfb")), reason="needs obs-studio and Xvfb")

EDGE_PX = 1
"""Covered masks may differ only this close to a cover's edge."""
VALUE_TOL = 2
"""Covered pixels agree to within this many levels..."""
VALUE_SHARE = 0.999
"""...for at least this share of them."""

REGIONS = [
    {"kind": "face", "box": [40, 40, 200, 200]},
    {"kind": "face", "box": [150, 150, 260, 260]},  # overlaps the first: each reads the uncovered frame
    {"kind": "face", "box": [-60, 250, 100, 410]},  # half off the frame
    {"kind": "mouth", "box": [540, 20, 620, 60]},
    {"kind": "text", "box": [300, 48, 500, 96]},
    {"kind": "text", "box": [401.3, 120.6, 463.8, 171.2]},
    {"kind": "plate", "box": [304, 200, 456, 264]},
    {"kind": "change", "box": [520, 280, 600, 340]},
]
# (source name, style per setting kind, strength)
LOOKS = [
    ("A", {"face": "pixelate", "text": "fill", "plate": "blur"}, 1.0),
    ("B", {"face": "blur", "text": "pixelate", "plate": "fill"}, 0.0),
    ("C", {"face": "fill", "text": "blur", "plate": "pixelate"}, 0.5),
]
FAILED = "D"


def filter_settings(styles: dict[str, str], strength: float) -> dict:
    return {"delay_s": 0.2, **{f"style_{k}": v for k, v in styles.items()},
            **{f"strength_{k}": strength for k in styles}}


def covered(out: np.ndarray, img: np.ndarray) -> np.ndarray:
    return np.any(out != img, axis=2)


def near_edge(mask: np.ndarray) -> np.ndarray:
    kernel = np.ones((2 * EDGE_PX + 1, 2 * EDGE_PX + 1), np.uint8)
    m = mask.astype(np.uint8)
    return (cv2.dilate(m, kernel) != cv2.erode(m, kernel))


def screenshots_when_drawn(obs: ObsSession, names, timeout: float = 30.0) -> dict[str, np.ndarray]:
    """Each source's first screenshot that is not one flat colour (its delay line is full)."""
    shots: dict[str, np.ndarray] = {}
    deadline = time.monotonic() + timeout
    while len(shots) < len(names) and time.monotonic() < deadline:
        for name in names:
            if name not in shots:
                shot = obs.screenshot(name)
                if shot.std() > 0:
                    shots[name] = shot
        time.sleep(0.3)
    return shots


@pytest.fixture
def photo(tmp_path, photos):
    """A real photo at the canvas size (640x360) as a PNG for an OBS image source: the judge needs
    detail finer than a cover's cells, as a face has."""
    img = cv2.resize(photos["astronaut"][112:400], (640, 360), interpolation=cv2.INTER_AREA)
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return img, path


@pytest.mark.parametrize("major", OBS_MAJORS)
def test_obs_and_masking_draw_the_same_covers(tmp_path, photo, major):
    img, png = photo
    # Each filter is named after its source: the fake client is told the filter's name.
    sources = [image_source(name, png, [filter_entry("privastream_filter", name, filter_settings(s, k))])
               for name, s, k in LOOKS]
    sources.append(image_source(FAILED, png, [filter_entry("privastream_filter", FAILED, {"delay_s": 0.2})]))
    regions = {name: REGIONS for name, _, _ in LOOKS}
    regions[FAILED] = [{"kind": "text", "box": [float("nan"), 0, 10, 10]}]
    env = {"PRIVASTREAM_OBS_CLIENT": "tests.obs_fake_client:FakeClient", "PRIVASTREAM_FAKE_REGIONS": json.dumps(regions)}
    with ObsSession(tmp_path, sources, env=env, major=major) as obs:
        shots = screenshots_when_drawn(obs, [name for name, _, _ in LOOKS])
        time.sleep(0.5)
        failed = obs.screenshot(FAILED)
    assert obs.exit_code == 0
    assert set(shots) == {name for name, _, _ in LOOKS}, "a source stayed covered although every frame was decided"

    for name, styles, strength in LOOKS:
        shot = shots[name]
        drawn = apply_masks(img.copy(), [Region(r["kind"], tuple(r["box"])) for r in REGIONS],
                            MaskOptions(styles=styles, strength=strength))
        in_obs, in_numpy = covered(shot, img), covered(drawn, img)
        # Where a cover's value is within VALUE_TOL of the picture's, covered and uncovered look alike.
        alike = np.all(np.abs(drawn.astype(int) - img) <= VALUE_TOL, axis=2)
        differ = (in_obs ^ in_numpy) & ~alike
        assert not (differ & ~near_edge(in_numpy)).any(), \
            f"{name}: {int(differ.sum())} pixels covered by one renderer only, away from any edge"
        for r in REGIONS:
            x0, y0, x1, y1 = r["box"]
            box = (max(x0, 0), max(y0, 0), min(x1, img.shape[1]), min(y1, img.shape[0]))
            for who, out in (("OBS", shot), ("masking.py", drawn)):
                kept = detail_kept(out, img, box)
                assert kept < DETAIL_LEAK, f"{name}: {who} leaves the detail of {r} ({kept:.2f})"
        both = in_obs & in_numpy
        close = np.all(np.abs(shot[both].astype(int) - drawn[both]) <= VALUE_TOL, axis=1)
        assert close.mean() >= VALUE_SHARE, f"{name}: only {close.mean():.3f} of covered pixels agree"

    assert failed.std() == 0 and np.all(np.abs(failed.astype(int) - cover_spec.FILL_LEVEL) <= 1), \
        "OBS's fail-closed cover is not the solid fill"
    assert np.array_equal(cover_all(img.copy()), np.full_like(img, cover_spec.FILL_LEVEL))
