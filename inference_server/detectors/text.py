"""On-screen text: the private parts of text lines, and licence plates.

One OCR pass (PP-OCRv4 detector + recogniser) yields every text line with the
position of each character.  Plates are recognised among the lines by shape,
pattern and pixels (``plates.py``) and covered whole.  Every other line goes to
the PII classifier, and only its private character spans are covered: a chat
line "mail me at jane@example.com tonight" gets a box over the address alone,
so the stream stays readable.  The recognised text never leaves this module:
a Region carries the PII category, not the words.
"""

from __future__ import annotations

import logging
import time

import cv2
import numpy as np

from ..regions import Region, clip_box
from .frame_input import ms_since, rgb_view
from .ocr import PaddleOcr, TextLine
from .plates import find_plates
from .readings import readings
from .rows import group_rows

log = logging.getLogger("privastream.detectors.text")

TEXT_KINDS = ("text", "plate")
# Padding around a PII sub-box, times the line height.  At a word boundary the
# edge sits on the ink gap (word_gaps.py), but where the ink shows no gap (text
# straight over a busy photo) it falls back to the recogniser's columns, which
# are 8 px apart at crop height 48, a sixth of the line; the horizontal pad
# covers that error and still stays mostly inside the space before the next word.
SPAN_PAD_X = 0.25
SPAN_PAD_Y = 0.1


class TextDetector:
    """PII text and licence plates in a frame.

    custom_terms: the streamer's own words and patterns (real name, street,
    company), always covered; passed to the PII classifier.  targets: which of
    "text" (PII in text) and "plate" to report.  max_side: the long side of the
    text detector's input (smaller is faster but loses small text).  pii: a
    ready ``PiiClassifier`` to share (then ``custom_terms`` must be empty: the
    classifier already has its own).
    """

    def __init__(self, threads: int = 0, provider: str = "auto", custom_terms=(), targets=TEXT_KINDS,
                 max_side: int = 960, pii=None):
        targets = tuple(targets)
        unknown = [t for t in targets if t not in TEXT_KINDS]
        if unknown or not targets:
            raise ValueError(f"targets must be a non-empty subset of {TEXT_KINDS}, got {targets}")
        if pii is not None and tuple(custom_terms):
            raise ValueError("pass custom_terms to the PiiClassifier you share, not to TextDetector as well")
        self.kinds = tuple(k for k in TEXT_KINDS if k in targets)
        self.ocr = PaddleOcr(threads=threads, provider=provider, max_side=max_side)
        self.pii = None
        if "text" in self.kinds:
            if pii is None:
                from ..pii import PiiClassifier

                pii = PiiClassifier(custom_terms=tuple(custom_terms))
            self.pii = pii
        self.last_timing: dict[str, float] = {}
        """Milliseconds of the last detect(): pre/infer/post totals, then per stage (det_*, rec_*, classify_ms)."""
        log.info("__init__() | loaded [kinds:%s max_side:%s custom_terms:%d]", self.kinds, max_side,
                 len(tuple(custom_terms)))

    def detect(self, frame: np.ndarray) -> list[Region]:
        rgb = rgb_view(frame)
        self.ocr.timing.clear()
        lines = self.ocr.find_lines(rgb)
        self.ocr.read_lines(rgb, lines)
        t0 = time.perf_counter()
        height, width = rgb.shape[:2]
        regions: list[Region] = []
        rest = lines
        if "plate" in self.kinds and lines:
            gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
            plates, rest = find_plates(lines, gray)
            regions += [Region(kind="plate", box=clip_box(box, width, height), score=score) for box, score in plates]
        if self.pii is not None:
            regions += self._pii_regions([line for line in rest if line.text.strip()], width, height)
        t1 = time.perf_counter()
        timing = dict(self.ocr.timing)
        timing["classify_ms"] = ms_since(t0, t1)
        self.last_timing = {
            "pre_ms": round(timing.get("det_pre_ms", 0) + timing.get("rec_pre_ms", 0), 2),
            "infer_ms": round(timing.get("det_infer_ms", 0) + timing.get("rec_infer_ms", 0), 2),
            "post_ms": round(timing.get("det_post_ms", 0) + timing.get("rec_post_ms", 0) + timing["classify_ms"], 2),
            **timing,
        }
        return regions

    def _pii_regions(self, lines: list[TextLine], width: int, height: int) -> list[Region]:
        """Regions over the PII spans found in any reading (``readings``) of each row of lines
        (``rows``: a row the detector split is classified as one text)."""
        texts, owners = [], []
        for row in group_rows(lines):
            members = [lines[i] for i in row]
            offsets, inserted, pos = [], [], 0
            for line in members:
                offsets.append(pos)
                inserted += [pos + i for i in line.inserted_spaces]
                pos += len(line.text) + 1  # the lines are joined by one space
            joined = " ".join(line.text for line in members)
            for text, index_map in readings(joined, inserted):
                texts.append(text)
                owners.append((members, offsets, index_map))
        regions: list[Region] = []
        for (members, offsets, index_map), spans in zip(owners, self.pii.find_batch(texts) if texts else []):
            for span in spans:
                start, end = span.start, span.end
                if index_map is not None:
                    start, end = index_map[start], index_map[end - 1] + 1
                for line, offset in zip(members, offsets):
                    lo, hi = max(start, offset), min(end, offset + len(line.text))
                    if lo < hi:  # the part of the span on this line
                        self._add_span_region(regions, line, lo - offset, hi - offset, span, width, height)
        return regions

    @staticmethod
    def _add_span_region(regions: list[Region], line: TextLine, start: int, end: int, span, width: int,
                         height: int) -> None:
        pad_x, pad_y = SPAN_PAD_X * line.height, SPAN_PAD_Y * line.height
        x0, y0, x1, y1 = line.span_box(start, end)
        box = clip_box((x0 - pad_x, y0 - pad_y, x1 + pad_x, y1 + pad_y), width, height)
        region = Region(kind="text", box=box, score=float(span.score), label=span.label)
        if region not in regions:  # the readings of a line usually agree
            regions.append(region)
