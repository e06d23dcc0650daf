"""Shared test imagery with exact ground truth, built from real photos shipped in packages.

No labelled face, text or plate benchmark is packaged, so tests compose their
own: real photos (scikit-image, matplotlib) as backgrounds, scikit-image's
lfw_subset faces pasted at known boxes, text rendered with the DejaVu fonts
(Debian fonts-dejavu-core) at known word boxes, and licence plates drawn and
perspective-warped at known quads.  ``Scene`` records where everything went.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from inference_server.regions import overlap_share

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FRAME_SIZE = (1280, 720)  # width, height: the 720p frames the product is measured on


def as_rgb8(image: np.ndarray) -> np.ndarray:
    """Any scikit-image/matplotlib picture as HxWx3 uint8 RGB."""
    if image.dtype != np.uint8:
        image = np.clip(np.asarray(image, dtype=np.float64) * (255 if image.max() <= 1.0 else 1), 0, 255)
        image = image.astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Real photos by name, RGB uint8 at their own size.

    astronaut and grace_hopper hold one face each; coffee, rocket, chelsea (a
    cat) and motorcycle (a garage scene, used as the street photo) hold none.
    """
    import matplotlib.cbook
    from skimage import data

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as fh:
        hopper = np.asarray(Image.open(fh).convert("RGB"))
    return {
        "astronaut": as_rgb8(data.astronaut()),
        "grace_hopper": hopper,
        "coffee": as_rgb8(data.coffee()),
        "rocket": as_rgb8(data.rocket()),
        "chelsea": as_rgb8(data.chelsea()),
        "motorcycle": as_rgb8(data.stereo_motorcycle()[0]),
    }


@pytest.fixture(scope="session")
def lfw() -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's lfw_subset as uint8 grey 25x25 patches: (100 faces, 100 non-faces)."""
    from skimage import data

    patches = (data.lfw_subset() * 255).round().astype(np.uint8)
    return patches[:100], patches[100:]


def font(size: int, bold: bool = False, mono: bool = False) -> ImageFont.FreeTypeFont:
    name = "DejaVuSansMono" if mono else "DejaVuSans"
    return ImageFont.truetype(str(FONT_DIR / f"{name}{'-Bold' if bold else ''}.ttf"), size)


Box = tuple[float, float, float, float]


@dataclass
class Word:
    text: str
    box: Box


@dataclass
class Scene:
    """A frame under composition and the exact boxes of what was put on it."""

    frame: np.ndarray
    faces: list[Box] = field(default_factory=list)
    lines: list[list[Word]] = field(default_factory=list)
    plates: list[Box] = field(default_factory=list)

    def paste_face(self, patch: np.ndarray, x: int, y: int, size: int) -> Box:
        """An lfw patch (grey) scaled to size x size with its top-left at (x, y)."""
        face = cv2.resize(patch, (size, size), interpolation=cv2.INTER_CUBIC)
        self.frame[y:y + size, x:x + size] = face[:, :, None]
        box = (float(x), float(y), float(x + size), float(y + size))
        self.faces.append(box)
        return box

    def paste_photo(self, photo: np.ndarray, x: int, y: int, width: int) -> tuple[int, int]:
        """A photo scaled to ``width`` with its top-left at (x, y); returns its (sx, sy) scale."""
        height = round(photo.shape[0] * width / photo.shape[1])
        self.frame[y:y + height, x:x + width] = cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA)
        return width / photo.shape[1], height / photo.shape[0]

    def write(self, x: int, y: int, text: str, size: int = 22, colour=(255, 255, 255),
              panel=(20, 20, 20), bold: bool = False, angle: float = 0.0) -> list[Word]:
        """One line of text with its top-left at (x, y), on a dark chat-style panel (or, with
        panel=None, straight over the photo with a dark outline), turned ``angle`` degrees
        counter-clockwise about (x, y).  Returns every whitespace-separated word with its
        ink box (for a turned line, the bounds of the turned box)."""
        f = font(size, bold=bold)
        fh, fw = self.frame.shape[:2]
        layer = Image.new("RGBA", (fw, fh), (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        if panel is not None:
            left, top, right, bottom = draw.textbbox((x, y), text, font=f)
            draw.rectangle((left - 8, top - 6, right + 8, bottom + 6), fill=(*panel, 255))
            draw.text((x, y), text, font=f, fill=(*colour, 255))
        else:
            draw.text((x, y), text, font=f, fill=(*colour, 255), stroke_width=2, stroke_fill=(0, 0, 0, 255))
        turn = cv2.getRotationMatrix2D((float(x), float(y)), angle, 1.0)
        rgba = cv2.warpAffine(np.asarray(layer), turn, (fw, fh), flags=cv2.INTER_LINEAR)
        self._blend(rgba[:, :, :3], rgba[:, :, 3])
        words, pos = [], 0
        for token in text.split():
            pos = text.index(token, pos)
            x0, y0, x1, y1 = draw.textbbox((x + draw.textlength(text[:pos], font=f), y), token, font=f)
            corners = np.array([[x0, y0, 1], [x1, y0, 1], [x1, y1, 1], [x0, y1, 1]], np.float64) @ turn.T
            words.append(Word(token, (*(float(v) for v in corners.min(0)), *(float(v) for v in corners.max(0)))))
            pos += len(token)
        self.lines.append(words)
        return words

    def _blend(self, rgb: np.ndarray, alpha: np.ndarray) -> None:
        """Paint a frame-sized layer over the frame where its alpha (0..255) says."""
        a = alpha[:, :, None].astype(np.float32) / 255
        self.frame[:] = (rgb * a + self.frame * (1 - a)).round().astype(np.uint8)

    def plate(self, cx: int, cy: int, text: str, height: int = 30, background=(245, 245, 245),
              tilt: float = 0.0) -> Box:
        """A licence plate centred at (cx, cy): light background, dark border and characters,
        ``height`` px tall; ``tilt`` (0..0.3) shortens its right edge for a perspective view.
        Returns the plate's bounding box in the frame."""
        scale = 4  # draw large, then warp down: edges anti-aliased like a camera image
        h = height * scale
        f = font(int(h * 0.62), bold=True)
        text_w = ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(text, font=f)
        w = int(text_w + h * 0.7)
        image = Image.new("RGB", (w, h), background)
        draw = ImageDraw.Draw(image)
        draw.rectangle((0, 0, w - 1, h - 1), outline=(25, 25, 25), width=max(2, h // 16))
        draw.text((w / 2, h / 2), text, font=f, fill=(20, 20, 20), anchor="mm")
        plate = np.asarray(image)
        pw, ph = w / scale, height
        x0, y0 = cx - pw / 2, cy - ph / 2
        shrink = tilt * ph / 2
        dst = np.array([[x0, y0], [x0 + pw, y0 + shrink], [x0 + pw, y0 + ph - shrink], [x0, y0 + ph]], np.float32)
        src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
        warp = cv2.getPerspectiveTransform(src, dst)
        fh, fw = self.frame.shape[:2]
        drawn = cv2.warpPerspective(plate, warp, (fw, fh), flags=cv2.INTER_AREA)
        mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), warp, (fw, fh), flags=cv2.INTER_AREA)
        self._blend(drawn, mask)
        box = (float(dst[:, 0].min()), float(dst[:, 1].min()), float(dst[:, 0].max()), float(dst[:, 1].max()))
        self.plates.append(box)
        return box


@pytest.fixture(scope="session")
def scene(photos):
    """A factory: ``scene("coffee")`` is a 1280x720 Scene over that photo (or "black", "grey")."""

    def make(background: str = "black", size: tuple[int, int] = FRAME_SIZE) -> Scene:
        width, height = size
        if background in ("black", "grey"):
            frame = np.full((height, width, 3), 0 if background == "black" else 128, np.uint8)
        else:
            frame = cv2.resize(photos[background], (width, height), interpolation=cv2.INTER_AREA)
        return Scene(frame=np.ascontiguousarray(frame))

    return make


def covered(inner: Box, outer: Box, tolerance: float = 1.0) -> bool:
    """Whether ``outer`` contains ``inner`` (to within ``tolerance`` px)."""
    return (outer[0] <= inner[0] + tolerance and outer[1] <= inner[1] + tolerance
            and outer[2] >= inner[2] - tolerance and outer[3] >= inner[3] - tolerance)


@pytest.fixture(scope="session")
def boxes():
    """Box predicates for assertions: ``boxes.covered(inner, outer)``, ``boxes.overlap_share(box, other)``."""
    from types import SimpleNamespace

    return SimpleNamespace(covered=covered, overlap_share=overlap_share)


@pytest.fixture
def picture(tmp_path):
    """A 640x360 PNG of random 8x8-pixel blocks for OBS image sources: every cover style visibly
    changes it, and the exact source is known."""
    rng = np.random.default_rng(5)
    img = np.kron(rng.integers(0, 256, (45, 80, 3), dtype=np.uint8), np.ones((8, 8, 1), np.uint8))
    Image.fromarray(img).save(tmp_path / "picture.png")
    return img, tmp_path / "picture.png"
