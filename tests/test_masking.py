"""Mask styles destroy what they cover and touch nothing else."""

import numpy as np
import pytest
import skimage.data

from inference_server.masking import MaskOptions, apply_masks, cover_all
from inference_server.regions import Region


@pytest.fixture
def photo():
    return np.ascontiguousarray(skimage.data.astronaut())


@pytest.mark.parametrize("style", ["pixelate", "blur", "fill"])
def test_styles_change_only_the_region(photo, style):
    out = apply_masks(photo.copy(), [Region("text", (100, 120, 300, 200))], MaskOptions(styles={"text": style}))
    changed = np.any(out != photo, axis=2)
    assert changed[120:200, 100:300].mean() > 0.5
    outside = changed.copy()
    outside[120:200, 100:300] = False
    assert not outside.any()


def test_pixelate_blocks_scale_with_the_region(photo):
    """A large face gets proportionally large blocks: about 6 across at full strength, whatever its size."""
    for size in (60, 240):
        out = apply_masks(photo.copy(), [Region("face", (150, 60, 150 + size, 60 + size))],
                          MaskOptions(ellipse_faces=False))
        row = out[60 + size // 2, 150:150 + size]
        blocks = 1 + np.count_nonzero(np.any(np.diff(row.astype(int), axis=0) != 0, axis=1))
        assert 4 <= blocks <= 8, (size, blocks)


def test_blur_is_not_reversible_detail(photo):
    """After blur, the region holds no more detail than its ~6x6 downsampled version."""
    box = (150, 60, 290, 200)
    out = apply_masks(photo.copy(), [Region("face", box)], MaskOptions(styles={"face": "blur"}, ellipse_faces=False))
    patch = out[60:200, 150:290].astype(float)
    assert np.abs(np.diff(patch, axis=1)).mean() < 0.25 * np.abs(np.diff(photo[60:200, 150:290].astype(float), axis=1)).mean()


def test_face_ellipse_covers_the_whole_box(photo):
    box = (200, 100, 260, 180)
    out = apply_masks(np.zeros_like(photo), [Region("face", box)], MaskOptions(styles={"face": "fill"}))
    assert out[100:180, 200:260].any(axis=2).all()  # corners included: the ellipse passes through them


def test_regions_off_the_frame_and_rgba(photo):
    rgba = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    apply_masks(rgba, [Region("face", (-50, -50, 30, 30)), Region("text", (600, 600, 700, 700))])
    assert rgba[..., 3].min() == 255


def test_cover_all_leaves_nothing_recognisable(photo):
    out = cover_all(photo.copy())
    assert np.abs(np.diff(out.astype(float), axis=1)).mean() < 1.0
    assert out.mean() < photo.mean() / 2


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="style_face must be one of"):
        MaskOptions.from_settings({"style_face": "sparkles"})
    with pytest.raises(ValueError, match="strength must be between 0 and 1"):
        MaskOptions.from_settings({"strength": 3})
