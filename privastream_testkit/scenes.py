"""Pictures and clips with exact ground truth, from public-domain photos shipped in packages.

No labelled face, text or plate benchmark is packaged, so tests, evaluations, benchmarks and the
demo compose their own, all from here, so that they agree on what "the face" or "the e-mail" is:

- Photos (`photo`): NASA's astronaut portrait and scikit-image's other samples, and the US Navy
  portrait of Grace Hopper (matplotlib); `faces()` holds the face photos with hand-annotated face
  boxes, `lfw_patches()` scikit-image's tightly cropped LFW faces and non-faces.
- `Scene`: one still frame under composition (LFW faces pasted at known boxes, text lines with
  the ink box of every word, licence plates perspective-warped at known boxes) and the boxes of
  everything put on it.
- `Clip`: a moving sequence with a scene cut: face photos moved, scaled, brought in from outside
  the frame and partly occluded; a chat panel whose every PII span and non-PII word has its box;
  plates.  `Truth` says where each is and whether it is sensitive.

Text is drawn with the DejaVu fonts (Debian fonts-dejavu-core).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FRAME_SIZE = (1280, 720)  # width, height: the 720p frames the product is measured on
PHOTOS = ("astronaut", "grace_hopper", "coffee", "rocket", "chelsea", "motorcycle")
"""The photos tests use by name: astronaut and grace_hopper hold one face each; coffee, rocket,
chelsea (a cat) and motorcycle (a garage scene, used as the street photo) hold none."""


def typeface(size: int, bold: bool = False, mono: bool = False) -> ImageFont.FreeTypeFont:
    name = "DejaVuSansMono" if mono else "DejaVuSans"
    return ImageFont.truetype(str(FONT_DIR / f"{name}{'-Bold' if bold else ''}.ttf"), size)


def as_rgb8(image: np.ndarray) -> np.ndarray:
    """Any scikit-image/matplotlib picture as HxWx3 uint8 RGB."""
    if image.dtype != np.uint8:
        image = np.clip(np.asarray(image, dtype=np.float64) * (255 if image.max() <= 1.0 else 1), 0, 255)
        image = image.astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


@lru_cache(maxsize=16)
def photo(name: str) -> np.ndarray:
    """A photo by name (one of PHOTOS, or any scikit-image sample) as RGB uint8 at its own size,
    read-only: every caller gets the same array."""
    if name == "grace_hopper":
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as fh:
            image = np.asarray(Image.open(fh).convert("RGB"))
    else:
        import skimage.data

        image = as_rgb8(skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)())
    image = image.copy()
    image.flags.writeable = False
    return image


@lru_cache(maxsize=1)
def lfw_patches() -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's lfw_subset as uint8 grey 25x25 patches: (100 faces, 100 non-faces)."""
    import skimage.data

    patches = (skimage.data.lfw_subset() * 255).round().astype(np.uint8)
    return patches[:100], patches[100:]


@lru_cache(maxsize=8)
def background(name: str, size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """A photo resized to ``size`` (width, height), or a plain "black" or "grey" frame; read-only,
    like `photo`: copy it to draw on it."""
    width, height = size
    if name in ("black", "grey"):
        image = np.full((height, width, 3), 0 if name == "black" else 128, np.uint8)
    else:
        image = np.asarray(Image.fromarray(photo(name)).resize(size, Image.BILINEAR)).copy()
    image.flags.writeable = False
    return image


@dataclass(frozen=True)
class Truth:
    kind: str  # face | text | plate
    box: tuple[float, float, float, float]
    sensitive: bool
    label: str = ""


@dataclass(frozen=True)
class Face:
    """A face photo: the image and the face box inside it (hand-annotated)."""

    image: np.ndarray
    face: tuple[int, int, int, int]


@lru_cache(maxsize=1)
def faces() -> list[Face]:
    """The astronaut, Grace Hopper, then eight LFW faces (tight crops, grey)."""
    out = [Face(photo("astronaut"), (175, 70, 272, 188)), Face(photo("grace_hopper"), (160, 135, 370, 335))]
    for grey in lfw_patches()[0][:8]:
        out.append(Face(np.stack([grey] * 3, axis=-1), (3, 3, 22, 24)))
    return out


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
        h, w = patch.shape[:2]
        truth = paste_face(self.frame, Face(np.stack([patch] * 3, axis=-1), (0, 0, w, h)),
                           (x + size / 2, y + size / 2), size, context=0.0)
        assert truth is not None, f"a face at ({x}, {y}) of {size} px lies outside the frame"
        self.faces.append(truth.box)
        return truth.box

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
        box (`span_box`; for a turned line, the bounds of the turned box)."""
        f = typeface(size, bold=bold)
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
            x0, y0, x1, y1 = span_box(f, text, pos, pos + len(token), (x, y))
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
        # Smaller characters and wider margins than a clip's plates: the proportions the plate
        # tests' sizes and tilts were chosen with.
        plate = plate_image(text, height, background, scale, glyphs=0.62, margin=0.7)
        h, w = plate.shape[:2]
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


def paste_face(frame: np.ndarray, face: Face, center: tuple[float, float], face_width: float,
               context: float = 0.5, name: str = "face", owner: np.ndarray | None = None) -> Truth | None:
    """Paste the face photo so its face is ``face_width`` px wide at ``center``; return its true box (clipped)."""
    fx0, fy0, fx1, fy1 = face.face
    scale = face_width / (fx1 - fx0)
    h, w = face.image.shape[:2]
    # Crop with some head and background around the face so the detector sees a head, not a mask.
    mx, my = (fx1 - fx0) * context, (fy1 - fy0) * context
    cx0, cy0 = max(0, int(fx0 - mx)), max(0, int(fy0 - my))
    cx1, cy1 = min(w, int(fx1 + mx)), min(h, int(fy1 + my))
    crop = face.image[cy0:cy1, cx0:cx1]
    cw, ch = max(1, round((cx1 - cx0) * scale)), max(1, round((cy1 - cy0) * scale))
    crop = np.asarray(Image.fromarray(crop).resize((cw, ch), Image.BILINEAR))
    fcx, fcy = ((fx0 + fx1) / 2 - cx0) * scale, ((fy0 + fy1) / 2 - cy0) * scale
    ox, oy = round(center[0] - fcx), round(center[1] - fcy)
    H, W = frame.shape[:2]
    x0, y0, x1, y1 = max(0, ox), max(0, oy), min(W, ox + cw), min(H, oy + ch)
    if x1 <= x0 or y1 <= y0:
        return None
    frame[y0:y1, x0:x1] = crop[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
    if owner is not None:
        owner[y0:y1, x0:x1] = zlib.crc32(name.encode())
    box = (ox + (fx0 - cx0) * scale, oy + (fy0 - cy0) * scale, ox + (fx1 - cx0) * scale, oy + (fy1 - cy0) * scale)
    clipped = (max(0, box[0]), max(0, box[1]), min(W, box[2]), min(H, box[3]))
    if clipped[2] - clipped[0] < 2 or clipped[3] - clipped[1] < 2:
        return None
    return Truth("face", clipped, True, name)


# Chat and overlay lines: (text, [(start, end, label)]) with the PII spans marked.
TEXT_LINES = [
    ("mail me: jane.doe@example.com", [(9, 29, "email")]),
    ("Score: 1250 - 980   Level 12", []),
    ("call +1 555 123 4567 tonight", [(5, 20, "phone")]),
    ("Order #100234567 shipped", []),
    ("card 4111 1111 1111 1111", [(5, 24, "card")]),
    ("v1.2.3 released 2024-05-12", []),
    ("I live at 42 Elm Street", [(10, 23, "address")]),
    ("12:45:03 xXgamerXx: gg wp", []),
]


def span_box(font: ImageFont.FreeTypeFont, text: str, start: int, end: int,
             origin: tuple[float, float]) -> tuple[float, float, float, float]:
    """The box of ``text[start:end]`` in a line drawn at ``origin``: from where the span's first
    character is placed to where its last one ends, as tall as the line's ink."""
    x, y = origin
    _, top, _, bottom = font.getbbox(text)
    return (x + font.getlength(text[:start]), y + top, x + font.getlength(text[:end]), y + bottom)


def render_text(frame: np.ndarray, origin: tuple[int, int], lines=TEXT_LINES, size: int = 24) -> list[Truth]:
    """Draw lines on a dark panel; return one truth per PII span and per non-PII word."""
    font = typeface(size)
    img = Image.fromarray(frame)
    draw = ImageDraw.Draw(img)
    x, y = origin
    step = round(size * 1.5)
    width = max(font.getlength(t) for t, _ in lines) + 20
    draw.rectangle((x - 10, y - 8, x + width, y + step * len(lines)), fill=(20, 20, 28))
    truths = []
    for i, (text, spans) in enumerate(lines):
        ty = y + i * step
        draw.text((x, ty), text, font=font, fill=(235, 235, 235))
        for start, end, label in spans:
            truths.append(Truth("text", span_box(font, text, start, end, (x, ty)), True, label))
        pos = 0
        for word in text.split(" "):
            start, pos = text.index(word, pos), text.index(word, pos) + len(word)
            if word and not any(s <= start and pos <= e for s, e, _ in spans):
                truths.append(Truth("text", span_box(font, text, start, pos, (x, ty)), False))
    frame[...] = np.asarray(img)
    return truths


def plate_image(text: str, height: int, background=(245, 245, 240), scale: int = 1, glyphs: float = 0.72,
                margin: float = 0.6) -> np.ndarray:
    """A licence plate ``height`` px tall, drawn ``scale`` times larger: light background, dark
    border and bold characters ``glyphs`` of its height tall, with ``margin`` of its height left
    and right of them together."""
    h = height * scale
    font = typeface(int(h * glyphs), bold=True)
    width = int(font.getlength(text) + h * margin)
    plate = Image.new("RGB", (width, h), background)
    d = ImageDraw.Draw(plate)
    d.rectangle((0, 0, width - 1, h - 1), outline=(10, 10, 10), width=2 * scale)
    d.text((width / 2, h / 2), text, font=font, fill=(15, 15, 15), anchor="mm")
    return np.asarray(plate)


def render_plate(frame: np.ndarray, center: tuple[float, float], text: str, height: int = 34,
                 color=(245, 245, 240)) -> Truth:
    """A plate pasted flat, centred at ``center``."""
    plate = plate_image(text, height, color)
    width = plate.shape[1]
    x0, y0 = round(center[0] - width / 2), round(center[1] - height / 2)
    frame[y0:y0 + height, x0:x0 + width] = plate
    return Truth("plate", (x0, y0, x0 + width, y0 + height), True, "plate")


def _visible(truth: Truth | None, owner: np.ndarray) -> Truth | None:
    """The part of a face box still showing that face after later pastes and occluders.

    A hidden pixel is not sensitive; a face hidden for the most part is no face at all.
    """
    if truth is None:
        return None
    x0, y0, x1, y1 = (int(round(v)) for v in truth.box)
    mine = owner[y0:y1, x0:x1] == (zlib.crc32(truth.label.encode()))
    if mine.mean() < 0.5:
        return None
    rows, cols = np.flatnonzero(mine.any(axis=1)), np.flatnonzero(mine.any(axis=0))
    box = (x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1)
    return Truth(truth.kind, tuple(float(v) for v in box), truth.sensitive, truth.label)


@dataclass
class Clip:
    width: int = 1280
    height: int = 720
    fps: int = 30
    seconds: float = 6.0

    @property
    def frames(self) -> int:
        return int(self.seconds * self.fps)

    @property
    def cut(self) -> int:
        """Index of the first frame of the second scene."""
        return self.frames // 2

    def frame(self, i: int) -> tuple[np.ndarray, list[Truth]]:
        t = i / self.fps
        W, H = self.width, self.height
        fc = faces()
        truths: list[Truth] = []
        owner = np.zeros((H, W), np.int64)
        if i < self.cut:
            frame = background("coffee", (W, H)).copy()
            u = i / max(1, self.cut - 1)
            # Small faces, 24-44 px, drifting.
            for k in range(4):
                truths.append(paste_face(frame, fc[k % 2], (W * (0.1 + 0.22 * k) + 30 * math.sin(t + k), H * 0.85),
                                         24 + 6 * k, context=0.3, name=f"small{k}", owner=owner))
            # Grace Hopper: enters from beyond the right edge.
            truths.append(paste_face(frame, fc[1], (W * (1.15 - 0.35 * u), H * 0.55), 110, name="grace", owner=owner))
            # Astronaut: crosses the frame while growing from 60 to 200 px; an occluder sweeps in from the left.
            truths.append(paste_face(frame, fc[0], (W * (0.15 + 0.5 * u), H * 0.45), 60 + 140 * u, name="astronaut",
                                     owner=owner))
            ox0, ox1 = int(W * 0.05 + W * 0.5 * u * 0.8), int(W * 0.05 + W * 0.5 * u * 0.8) + 50
            oy0, oy1 = int(H * 0.3), int(H * 0.5)
            frame[oy0:oy1, ox0:ox1] = (90, 90, 90)
            owner[oy0:oy1, ox0:ox1] = -1
        else:
            frame = background("rocket", (W, H)).copy()
            u = (i - self.cut) / max(1, self.frames - self.cut - 1)
            truths.append(paste_face(frame, fc[1], (W * (0.75 - 0.2 * u), H * 0.35), 150 - 60 * u, name="grace2", owner=owner))
            truths.append(paste_face(frame, fc[0], (W * 0.6, H * 0.15 + 40 * u), 36, context=0.3, name="small4", owner=owner))
            truths += render_text(frame, (40, int(H * 0.42)))
            truths.append(render_plate(frame, (W * 0.82 - 60 * u, H * 0.84), "AB12 CDE"))
            truths.append(render_plate(frame, (W * 0.55, H * 0.9), "KX 4821", height=28, color=(250, 210, 40)))
        faces_seen = [_visible(tr, owner) if tr is not None and tr.kind == "face" else tr for tr in truths]
        return frame, [tr for tr in faces_seen if tr is not None]

    def __iter__(self):
        for i in range(self.frames):
            yield (i, i / self.fps, *self.frame(i))


def rgba_frames(clip: Clip) -> list[tuple[np.ndarray, list[Truth]]]:
    """Every frame as RGBA (as OBS reads it back) with its truth, rendered before a clock starts."""
    out = []
    for i in range(clip.frames):
        rgb, truth = clip.frame(i)
        out.append((np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]), truth))
    return out


def write_clip(path, clip: Clip, frames=None, audio: np.ndarray | None = None, sample_rate: int = 48000) -> list[list[Truth]]:
    """Encode frames of ``clip`` (default: all) to an H.264 file, with an optional mono float32 audio track.

    Returns the ground truth of each written frame.
    """
    import av

    frames = range(clip.frames) if frames is None else frames
    truths = []
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=clip.fps)
        vs.width, vs.height, vs.pix_fmt = clip.width, clip.height, "yuv420p"
        vs.options = {"crf": "18", "preset": "veryfast"}
        aus = out.add_stream("aac", rate=sample_rate, layout="mono") if audio is not None else None
        for i in frames:
            img, truth = clip.frame(i)
            truths.append(truth)
            for packet in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if aus is not None:
            af = av.AudioFrame.from_ndarray(audio.astype(np.float32).reshape(1, -1), format="fltp", layout="mono")
            af.sample_rate = sample_rate
            for packet in aus.encode(af):
                out.mux(packet)
            for packet in aus.encode():
                out.mux(packet)
    return truths
