"""Mask styles destroy what they cover and touch nothing else."""

import numpy as np
import pytest
import skimage.data

from inference_server import cover_spec
from inference_server.masking import MaskOptions, apply_masks, cover_all
from inference_server.regions import Region
from inference_server.settings import Settings


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


def test_pixelate_cells_scale_with_the_region(photo):
    """A large face gets proportionally large cells: cover_spec.CELLS_ACROSS at each end of the strength."""
    for strength, cells in zip((0.0, 1.0), cover_spec.CELLS_ACROSS):
        for size in (60, 240):
            out = apply_masks(photo.copy(), [Region("face", (150, 60, 150 + size, 60 + size))],
                              MaskOptions(ellipse_faces=False, strength=strength))
            row = out[60 + size // 2, 150:150 + size]
            blocks = 1 + np.count_nonzero(np.any(np.diff(row.astype(int), axis=0) != 0, axis=1))
            assert blocks == max(1, min(cells, size / cover_spec.MIN_CELL_PX)), (strength, size, blocks)


def test_blur_is_not_reversible_detail(photo):
    """After blur at full strength, the region keeps under a quarter of its pixel-to-pixel detail."""
    box = (150, 60, 290, 200)
    out = apply_masks(photo.copy(), [Region("face", box)], MaskOptions(styles={"face": "blur"}, ellipse_faces=False))
    patch = out[60:200, 150:290].astype(float)
    assert np.abs(np.diff(patch, axis=1)).mean() < 0.25 * np.abs(np.diff(photo[60:200, 150:290].astype(float), axis=1)).mean()


def test_face_ellipse_covers_its_whole_box_and_beyond_its_sides(photo):
    """The ellipse through the box's corners: a detector's box that cuts off a cheek or a chin still
    gets it covered, and the region's corners are covered too."""
    box = (200, 100, 260, 180)
    out = apply_masks(np.zeros_like(photo), [Region("face", box)], MaskOptions(styles={"face": "fill"}))
    covered = out.any(axis=2)
    assert covered[100:180, 200:260].all()
    assert covered[140, 190:200].all() and covered[185:190, 230].all()  # past the sides, through the centre
    assert not covered[95:100, 195:200].any()  # but not past the box's corners
    off_grid = apply_masks(np.zeros_like(photo), [Region("text", (10.5, 20.2, 30.7, 40.9))], MaskOptions())
    assert off_grid.any(axis=2)[20:41, 10:31].all()  # a pixel the box partly holds is covered whole


def test_regions_off_the_frame_and_rgba(photo):
    rgba = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    apply_masks(rgba, [Region("face", (-50, -50, 30, 30)), Region("text", (600, 600, 700, 700))])
    assert rgba[..., 3].min() == 255


def test_cover_all_is_solid(photo):
    out = cover_all(photo.copy())
    assert (out == cover_spec.FILL_LEVEL).all()



def test_settings_choose_style_and_strength_per_kind():
    options = MaskOptions.from_settings(Settings.from_dict({"style_plate": "blur", "strength_text": 0.25}))
    assert options.style("plate") == "blur" and options.style("change") == options.style("text") == "fill"
    assert options.strength_of("text") == options.strength_of("change") == 0.25
    assert options.strength_of("mouth") == options.strength_of("face") == Settings().strength_face
