"""Generated test clips with exact ground truth, from public-domain photos shipped in packages.

Faces are crops of NASA's astronaut portrait (scikit-image) and the US Navy
portrait of Grace Hopper (matplotlib), plus LFW faces (scikit-image), moved,
scaled, brought in from outside the frame and partly occluded over
scikit-image backgrounds.  Text is rendered with DejaVu Sans; every PII span
and every non-PII word gets its exact box.  Plates are rendered plates.
Evaluation, benchmarks, tests and the demo all draw from here, so they agree
on what "the face" or "the e-mail" is.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
FONT_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


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
    import matplotlib.cbook
    import skimage.data

    grace = np.asarray(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))
    out = [Face(skimage.data.astronaut(), (175, 70, 272, 188)), Face(grace, (160, 135, 370, 335))]
    lfw = skimage.data.lfw_subset()[:100]  # the first 100 are faces, tightly cropped
    for img in lfw[:8]:
        gray = (img * 255).astype(np.uint8)
        out.append(Face(np.stack([gray] * 3, axis=-1), (3, 3, 22, 24)))
    return out


@lru_cache(maxsize=8)
def background(name: str, size: tuple[int, int]) -> np.ndarray:
    import skimage.data

    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.asarray(Image.fromarray(img[..., :3]).resize(size, Image.BILINEAR))


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


def render_text(frame: np.ndarray, origin: tuple[int, int], lines=TEXT_LINES, size: int = 24) -> list[Truth]:
    """Draw lines on a dark panel; return one truth per PII span and per non-PII word."""
    font = ImageFont.truetype(FONT, size)
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
        top, bottom = ty + font.getbbox(text)[1], ty + font.getbbox(text)[3]
        for start, end, label in spans:
            truths.append(Truth("text", (x + font.getlength(text[:start]), top, x + font.getlength(text[:end]), bottom),
                                True, label))
        pos = 0
        for word in text.split(" "):
            start, pos = text.index(word, pos), text.index(word, pos) + len(word)
            if word and not any(s <= start and pos <= e for s, e, _ in spans):
                truths.append(Truth("text", (x + font.getlength(text[:start]), top, x + font.getlength(text[:pos]), bottom),
                                    False))
    frame[...] = np.asarray(img)
    return truths


def render_plate(frame: np.ndarray, center: tuple[float, float], text: str, height: int = 34,
                 color=(245, 245, 240)) -> Truth:
    font = ImageFont.truetype(FONT_BOLD, int(height * 0.72))
    width = int(font.getlength(text) + height * 0.6)
    plate = Image.new("RGB", (width, height), color)
    d = ImageDraw.Draw(plate)
    d.rectangle((0, 0, width - 1, height - 1), outline=(10, 10, 10), width=2)
    d.text((width / 2, height / 2), text, font=font, fill=(15, 15, 15), anchor="mm")
    x0, y0 = round(center[0] - width / 2), round(center[1] - height / 2)
    frame[y0:y0 + height, x0:x0 + width] = np.asarray(plate)
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


def speak(text: str, voice: str = "en-us", speed: int = 150, sample_rate: int = 48000,
          trim: bool = False) -> np.ndarray:
    """Speech from espeak-ng as mono float32 at ``sample_rate``, read from its stdout (no file).
    ``trim`` cuts the leading and trailing silence, for word-by-word corpora that place each word."""
    import io
    import subprocess
    import wave

    from scipy.signal import resample_poly

    proc = subprocess.run(["espeak-ng", "--stdout", "-v", voice, "-s", str(speed), text], capture_output=True,
                          check=True)
    with wave.open(io.BytesIO(proc.stdout)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768
    g = math.gcd(sample_rate, rate)
    audio = resample_poly(pcm, sample_rate // g, rate // g).astype(np.float32)
    if not trim:
        return audio
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    return audio[loud[0]:loud[-1] + 1] if loud.size else audio[:0]


# The spoken track of the OBS end-to-end clip (tests/test_obs_e2e.py, scripts/eval_live_speech.py):
# a plain sentence, then a phone number said whole.  The CHECK spans are where the plain sentence
# must come through untouched and where the number must be bleeped, in seconds into the track.
PLAIN_SPEECH = "Hello everyone and welcome back to the stream, today we look at the garden."
PII_SPEECH = "You can call me on five five five, one two three, four five six seven."
PLAIN_AT, PII_AT = 0.3, 5.0
PLAIN_CHECK = (PLAIN_AT + 0.5, PLAIN_AT + 3.5)
NUMBER_CHECK = (PII_AT + 1.6, PII_AT + 5.2)  # to the end of "seven"


def speech_track(seconds: float, sample_rate: int = 48000) -> np.ndarray:
    """The two sentences at PLAIN_AT and PII_AT in ``seconds`` of audio (cut off if it is shorter
    than about 10.4 s: then "seven" runs into whatever follows)."""
    audio = np.zeros(int(seconds * sample_rate), np.float32)
    for text, at in ((PLAIN_SPEECH, PLAIN_AT), (PII_SPEECH, PII_AT)):
        s = speak(text, sample_rate=sample_rate)[: audio.size - int(at * sample_rate)]
        audio[int(at * sample_rate): int(at * sample_rate) + s.size] = s * 0.8
    return audio
