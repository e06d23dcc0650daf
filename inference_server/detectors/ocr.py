"""PP-OCRv4 plumbing: the DB text detector and the CTC recogniser, in our own onnxruntime sessions.

Both files come from the ``rapidocr-onnxruntime`` wheel (see inference_server/model_manifest.json).
The detector outputs a per-pixel text probability map; lines are its
thresholded blobs, grown back by the DB "unclip" (the network is trained on
shrunk text kernels).  The recogniser reads one line crop of height 48 into a
sequence of per-column character distributions; we keep, for each decoded
character, the column it was read at, so a character span (an e-mail inside a
chat line) maps back to a sub-box of the line in the frame.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import cv2
import numpy as np
import pyclipper

from ..errors import ModelLoadError
from ..models import model_path
from ..runtime import create_session
from .frame_input import detection_size, ms_since
from .word_gaps import ink_columns, lay_out

log = logging.getLogger("privastream.detectors.ocr")

# DB post-processing, as PP-OCR trains it: pixels above BINARY_THRESHOLD are text,
# a blob is kept when its mean probability reaches BOX_THRESHOLD, and grown by
# UNCLIP_RATIO * area / perimeter.
BINARY_THRESHOLD = 0.3
BOX_THRESHOLD = 0.5
UNCLIP_RATIO = 1.6
MIN_SIDE = 3
MAX_CANDIDATES = 1000
# ImageNet statistics, applied to BGR channels in this order (as PaddleOCR feeds cv2 images).
DET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
DET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255

REC_HEIGHT = 48
REC_MAX_WIDTH = 48 * 50  # a longer line is squeezed rather than grown without bound
# Lines are batched only with others of nearly the same width: padding is not free
# (the recogniser's cost grows with the padded width), and measured on a 2-core CPU
# one long batch was slower than the same lines run one by one.
REC_BATCH_WIDTH_RATIO = 1.25
REC_BATCH_MAX_WIDTH = 1600  # lines x padded width per call
READ_CACHE_SIZE = 512  # recently read line crops, by content hash


@dataclass
class TextLine:
    """One detected line: where it is, and (once read) what it says and where each character is."""

    quad: np.ndarray
    """4x2 float32 frame coordinates: top-left, top-right, bottom-right, bottom-left of the reading direction."""
    box_score: float
    text: str = ""
    confidence: float = 0.0
    """Mean probability of the decoded characters (0 when nothing was read)."""
    char_edges: np.ndarray = field(default_factory=lambda: np.zeros(1, np.float32))
    """len(text)+1 x positions in the recogniser crop: character i lies between edges i and i+1."""
    inserted_spaces: tuple[int, ...] = ()
    """Indices in ``text`` of the spaces put back from the ink gaps (the recogniser did not read them)."""
    crop_to_frame: np.ndarray = field(default_factory=lambda: np.eye(3))
    """3x3 perspective transform from recogniser-crop pixels to frame pixels."""
    crop_width: int = 0

    @property
    def height(self) -> float:
        """Text height in the frame (mean of the two short sides)."""
        q = self.quad
        return float((np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1])) / 2)

    @property
    def width(self) -> float:
        q = self.quad
        return float((np.linalg.norm(q[1] - q[0]) + np.linalg.norm(q[2] - q[3])) / 2)

    def bounds(self) -> tuple[float, float, float, float]:
        return (float(self.quad[:, 0].min()), float(self.quad[:, 1].min()),
                float(self.quad[:, 0].max()), float(self.quad[:, 1].max()))

    def span_box(self, start: int, end: int) -> tuple[float, float, float, float]:
        """Frame-pixel box of characters [start, end) of ``text`` (unpadded, axis-aligned)."""
        x0, x1 = float(self.char_edges[start]), float(self.char_edges[end])
        corners = np.array([[[x0, 0], [x1, 0], [x1, REC_HEIGHT], [x0, REC_HEIGHT]]], dtype=np.float64)
        pts = cv2.perspectiveTransform(corners, self.crop_to_frame)[0]
        return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())


def order_quad(points: np.ndarray) -> np.ndarray:
    """Corners as top-left, top-right, bottom-right, bottom-left (image axes, y down)."""
    by_x = points[np.argsort(points[:, 0], kind="stable")]
    left, right = by_x[:2], by_x[2:]
    tl, bl = left[np.argsort(left[:, 1])]
    tr, br = right[np.argsort(right[:, 1])]
    return np.array([tl, tr, br, bl], dtype=np.float32)


def _box_score(prob: np.ndarray, quad: np.ndarray) -> float:
    """Mean text probability inside the quad (computed on its bounding box only)."""
    h, w = prob.shape
    x0, y0 = np.clip(np.floor(quad.min(0)).astype(int), 0, [w - 1, h - 1])
    x1, y1 = np.clip(np.ceil(quad.max(0)).astype(int), 0, [w - 1, h - 1])
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), dtype=np.uint8)
    cv2.fillPoly(mask, [np.round(quad - [x0, y0]).astype(np.int32)], 1)
    return float(cv2.mean(prob[y0:y1 + 1, x0:x1 + 1], mask)[0])


def _unclip(quad: np.ndarray) -> np.ndarray | None:
    area = cv2.contourArea(quad)
    perimeter = cv2.arcLength(quad, True)
    if perimeter <= 0:
        return None
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(np.round(quad).astype(np.int64).tolist(), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    grown = offset.Execute(area * UNCLIP_RATIO / perimeter)
    if len(grown) != 1:
        return None
    return np.asarray(grown[0], dtype=np.float32)


def load_charset(session) -> list[str]:
    """CTC classes: blank, then the dictionary stored in the model's metadata, then space.

    The rapidocr export stores its character list under the "character" metadata
    key, one per line; index 0 of the output is the CTC blank and the last class
    is the space PP-OCR appends (use_space_char).
    """
    meta = session.get_modelmeta().custom_metadata_map
    if "character" not in meta:
        raise ModelLoadError("the PP-OCR recogniser has no 'character' metadata; it is not the expected rapidocr export")
    charset = ["<blank>"] + meta["character"].splitlines() + [" "]
    classes = session.get_outputs()[0].shape[-1]
    if isinstance(classes, int) and classes != len(charset):
        raise ModelLoadError(f"the PP-OCR recogniser has {classes} classes but its dictionary gives {len(charset)}")
    return charset


class PaddleOcr:
    """Find text lines in a frame and read them; ``timing`` holds the milliseconds of the last calls."""

    def __init__(self, threads: int = 0, provider: str = "auto", max_side: int = 960):
        if max_side < 32:
            raise ValueError(f"max_side must be at least 32, got {max_side}")
        self.max_side = int(max_side)
        self.det = create_session(model_path("ppocr-det", "det.onnx"), threads=threads, provider=provider)
        self.rec = create_session(model_path("ppocr-rec", "rec.onnx"), threads=threads, provider=provider)
        self._det_input = self.det.get_inputs()[0].name
        self._rec_input = self.rec.get_inputs()[0].name
        self.charset = np.array(load_charset(self.rec), dtype=object)
        # In memory only, like every recognised text: nothing here is ever written out.
        self._read_cache: OrderedDict[bytes, tuple] = OrderedDict()
        self.timing: dict[str, float] = {}
        log.info("__init__() | loaded [max_side:%s classes:%d]", self.max_side, len(self.charset))

    # -- detection ---------------------------------------------------------------------------

    def find_lines(self, rgb: np.ndarray) -> list[TextLine]:
        """Text lines of an HxWx3 RGB frame, top to bottom; sets timing det_pre/det_infer/det_post."""
        t0 = time.perf_counter()
        height, width = rgb.shape[:2]
        h, w = detection_size(height, width, self.max_side)
        small = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR) if (h, w) != (height, width) else rgb
        blob = (small[:, :, ::-1].astype(np.float32) - DET_MEAN) / DET_STD
        blob = np.ascontiguousarray(blob.transpose(2, 0, 1)[None])
        t1 = time.perf_counter()
        prob = self.det.run(None, {self._det_input: blob})[0][0, 0]
        t2 = time.perf_counter()
        lines = self._lines_from_map(prob, (width / w, height / h), (width, height))
        t3 = time.perf_counter()
        self.timing.update(det_pre_ms=ms_since(t0, t1), det_infer_ms=ms_since(t1, t2), det_post_ms=ms_since(t2, t3))
        return lines

    def _lines_from_map(self, prob: np.ndarray, scale: tuple[float, float], frame_wh: tuple[int, int]) -> list[TextLine]:
        bitmap = (prob > BINARY_THRESHOLD).astype(np.uint8)
        contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        lines = []
        for contour in contours[:MAX_CANDIDATES]:
            rect = cv2.minAreaRect(contour)
            if min(rect[1]) < MIN_SIDE:
                continue
            kernel = order_quad(cv2.boxPoints(rect))
            score = _box_score(prob, kernel)
            if score < BOX_THRESHOLD:
                continue
            grown = _unclip(kernel)
            if grown is None:
                continue
            rect = cv2.minAreaRect(grown)
            if min(rect[1]) < MIN_SIDE + 2:
                continue
            quad = order_quad(cv2.boxPoints(rect)) * np.array(scale, dtype=np.float32)
            quad = np.clip(quad, 0, np.array(frame_wh, dtype=np.float32))
            lines.append(TextLine(quad=quad, box_score=score))
        lines.sort(key=lambda ln: (round(float(ln.quad[0, 1]) / 10), float(ln.quad[0, 0])))
        return lines

    # -- recognition -------------------------------------------------------------------------

    def read_lines(self, rgb: np.ndarray, lines: list[TextLine]) -> None:
        """Fill text, confidence and character positions of each line; sets timing rec_pre/rec_infer/rec_post.

        A line whose crop is pixel-identical to one read recently (a static overlay,
        a chat panel) is answered from a small cache instead of the recogniser.
        """
        t0 = time.perf_counter()
        crops = [self._crop(rgb, line) for line in lines]
        keys = [hashlib.blake2b(crop.tobytes(), digest_size=16).digest() for crop in crops]
        todo = []
        for i, key in enumerate(keys):
            known = self._read_cache.get(key)
            if known is None:
                todo.append(i)
            else:
                self._read_cache.move_to_end(key)
                lines[i].text, lines[i].confidence, lines[i].char_edges, lines[i].inserted_spaces = known
        pre = time.perf_counter() - t0
        infer = post = 0.0
        todo.sort(key=lambda i: crops[i].shape[1])
        start = 0
        while start < len(todo):
            # Sorted by width, so a batch is a run of lines of similar width.
            end = start + 1
            first = crops[todo[start]].shape[1]
            while (end < len(todo) and crops[todo[end]].shape[1] <= REC_BATCH_WIDTH_RATIO * first
                   and crops[todo[end]].shape[1] * (end - start + 1) <= REC_BATCH_MAX_WIDTH):
                end += 1
            batch = todo[start:end]
            ta = time.perf_counter()
            width = crops[batch[-1]].shape[1]
            # Zero is mid-grey after scaling to [-1, 1]: the padding PP-OCR was trained with.
            blob = np.zeros((len(batch), 3, REC_HEIGHT, width), dtype=np.float32)
            for row, i in enumerate(batch):
                crop = crops[i]
                blob[row, :, :, :crop.shape[1]] = crop[:, :, ::-1].transpose(2, 0, 1) * (2 / 255) - 1
            tb = time.perf_counter()
            probs = self.rec.run(None, {self._rec_input: blob})[0]
            tc = time.perf_counter()
            for row, i in enumerate(batch):
                line = lines[i]
                self._decode(probs[row], width, line, crops[i])
                self._read_cache[keys[i]] = (line.text, line.confidence, line.char_edges, line.inserted_spaces)
            while len(self._read_cache) > READ_CACHE_SIZE:
                self._read_cache.popitem(last=False)
            td = time.perf_counter()
            pre, infer, post = pre + (tb - ta), infer + (tc - tb), post + (td - tc)
            start = end
        self.timing.update(rec_pre_ms=round(pre * 1000, 2), rec_infer_ms=round(infer * 1000, 2),
                           rec_post_ms=round(post * 1000, 2), rec_lines=len(lines), rec_cached=len(lines) - len(todo))

    @staticmethod
    def _crop(rgb: np.ndarray, line: TextLine) -> np.ndarray:
        """The line warped straight to height 48 (RGB uint8); records crop_to_frame on the line."""
        quad = line.quad
        if line.height >= 1.5 * line.width:
            # A vertical line: start the reading direction at the bottom-left corner
            # (text rotated 90 degrees counter-clockwise reads bottom to top).
            quad = quad[[3, 0, 1, 2]]
        src_w = max(float(np.linalg.norm(quad[1] - quad[0])), float(np.linalg.norm(quad[2] - quad[3])), 1.0)
        src_h = max(float(np.linalg.norm(quad[3] - quad[0])), float(np.linalg.norm(quad[2] - quad[1])), 1.0)
        out_w = int(min(REC_MAX_WIDTH, max(REC_HEIGHT // 4, np.ceil(REC_HEIGHT * src_w / src_h))))
        dst = np.array([[0, 0], [out_w, 0], [out_w, REC_HEIGHT], [0, REC_HEIGHT]], dtype=np.float32)
        to_crop = cv2.getPerspectiveTransform(quad.astype(np.float32), dst)
        crop = cv2.warpPerspective(rgb, to_crop, (out_w, REC_HEIGHT), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REPLICATE)
        line.crop_to_frame = np.linalg.inv(to_crop)
        line.crop_width = out_w
        return crop

    def _decode(self, probs: np.ndarray, padded_width: int, line: TextLine, crop: np.ndarray) -> None:
        """CTC greedy decode; characters are placed at the output column they were read at,
        then spaces and edges are refined from the crop's ink (``word_gaps``)."""
        best = probs.argmax(axis=1)
        score = probs[np.arange(len(best)), best]
        is_new = np.ones(len(best), dtype=bool)
        is_new[1:] = best[1:] != best[:-1]
        cols = np.nonzero(is_new & (best != 0))[0]
        line.confidence = float(score[cols].mean()) if cols.size else 0.0
        # Output column t covers crop x in [t, t+1) * step.
        centres = (cols + 0.5) * (padded_width / len(best))
        line.text, line.char_edges, line.inserted_spaces = lay_out(
            list(self.charset[best[cols]]), centres, ink_columns(crop), line.crop_width)
