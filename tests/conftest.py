"""Fixtures over privastream_testkit: photos, LFW patches and still scenes with exact ground
truth (privastream_testkit.scenes), a picture for OBS image sources, and the SFU tests'
prerequisites."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from privastream_testkit.scenes import FRAME_SIZE, PHOTOS, Scene, background, lfw_patches, photo


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Real photos by name (privastream_testkit.scenes.PHOTOS), RGB uint8 at their own size."""
    return {name: photo(name) for name in PHOTOS}


@pytest.fixture(scope="session")
def lfw() -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's lfw_subset as uint8 grey 25x25 patches: (100 faces, 100 non-faces)."""
    return lfw_patches()


@pytest.fixture(scope="session")
def scene():
    """A factory: ``scene("coffee")`` is a 1280x720 Scene over that photo (or "black", "grey")."""

    def make(name: str = "black", size: tuple[int, int] = FRAME_SIZE) -> Scene:
        return Scene(frame=background(name, size).copy())

    return make


@pytest.fixture
def picture(tmp_path):
    """A 640x360 PNG of random 8x8-pixel blocks for OBS image sources: every cover style visibly
    changes it, and the exact source is known."""
    rng = np.random.default_rng(5)
    img = np.kron(rng.integers(0, 256, (45, 80, 3), dtype=np.uint8), np.ones((8, 8, 1), np.uint8))
    Image.fromarray(img).save(tmp_path / "picture.png")
    return img, tmp_path / "picture.png"


@pytest.fixture(scope="session")
def sfu_prerequisites() -> None:
    """Fails, never skips, when the SFU tests cannot run here, and names what is missing: a skipped
    SFU test reads as a pass in a suite run by a user without root."""
    from privastream_testkit.sfu import missing_prerequisites  # aiortc and ctypes: only for the SFU tests

    missing = missing_prerequisites()
    if missing:
        pytest.fail("the SFU tests cannot run: missing " + "; ".join(missing), pytrace=False)
