"""Licence plates as text: which detected text lines are plates.

No registry package ships plate-detector weights, so plates are found by the
text detector and recognised by these rules:

* shape: the tight text box of a plate is 1.8-8 times as wide as it is tall
  (4-9 characters of a plate font) and not a large part of the frame;
* text: 4-9 letters and digits with at least one of each, no lowercase, in at
  most four groups, no letter-only group longer than three (this accepts
  "AB12 CDE", "ABC 1234", "B-MW 1234", "AB-123-CD", "123-ABC", "7ABC123" and
  rejects "NO PARKING", "STOP", dates, times, prices, versions, "SCORE 3-1");
* a plate-shaped line the recogniser could not read confidently is still a
  plate when its pixels look like one (``looks_like_plate``): a row of
  characters on an even background.  For privacy the doubt goes to covering;
* a plate the text detector split at a wide gap ("AB12  CDE" read as "AB12"
  and "CDE") is judged, and covered, as one row.
"""

from __future__ import annotations

import re

import cv2
import numpy as np

from .ocr import TextLine
from .rows import group_rows

MIN_ASPECT, MAX_ASPECT = 1.8, 8.0
MIN_HEIGHT_PX = 8
MAX_HEIGHT_FRACTION = 0.2  # of the frame height; larger text is a sign or a title, not a plate
CONFIDENT_READ = 0.8
# looks_like_plate(): measured on rendered plates blurred until unreadable and on
# the edges of chat panels, the false alarm an OCR detector most often makes.
MIN_TONE_DIFFERENCE = 35
MIN_STROKE_CHANGES = 8
# Plate box around its text: plates have a margin and a border around the characters.
PAD_X, PAD_Y = 0.8, 0.5  # times the text height

_SEPARATORS = re.compile(r"[\s\-·•]+")
_PLATE_CHARS = re.compile(r"^[A-Z0-9\s\-·•]+$")


def plate_text(text: str) -> bool:
    """Whether recognised text reads like a licence plate of a common country format."""
    text = text.strip()
    if not text or not _PLATE_CHARS.match(text):
        return False
    groups = [g for g in _SEPARATORS.split(text) if g]
    chars = "".join(groups)
    if not 4 <= len(chars) <= 9 or len(groups) > 4:
        return False
    if not (any(c.isdigit() for c in chars) and any(c.isalpha() for c in chars)):
        return False
    return not any(g.isalpha() and len(g) > 3 for g in groups)


def plate_shaped(line: TextLine, frame_height: int) -> bool:
    height = line.height
    if height < MIN_HEIGHT_PX or height > MAX_HEIGHT_FRACTION * frame_height:
        return False
    return MIN_ASPECT <= line.width / height <= MAX_ASPECT


def looks_like_plate(gray: np.ndarray, line: TextLine) -> bool:
    """Pixel evidence for an unreadable plate: a row of characters on a plain background.

    On the line's axis-aligned bounds in the grey frame, Otsu splits two tones
    which must differ clearly, the minority (the characters) taking 10-55 % of
    the area, and across the middle rows the tone must change at least
    MIN_STROKE_CHANGES times (four or more characters, even blurred).  The edge
    of a chat panel over a photo, the OCR detector's usual false alarm, has two
    tones but changes only 4-6 times; plain texture lacks the contrast.
    """
    x0, y0, x1, y1 = (int(round(v)) for v in line.bounds())
    patch = gray[max(y0, 0):y1, max(x0, 0):x1]
    if patch.shape[0] < 6 or patch.shape[1] < 12:
        return False
    _, binary = cv2.threshold(patch, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    ink = binary > 0
    if ink.mean() > 0.5:  # dark characters on a light plate: the characters are the dark tone
        ink = ~ink
    if not 0.1 <= float(ink.mean()) <= 0.55:
        return False
    if abs(float(patch[ink].mean()) - float(patch[~ink].mean())) < MIN_TONE_DIFFERENCE:
        return False
    rows = patch.shape[0]
    middle = ink[int(rows * 0.3):max(int(rows * 0.7), int(rows * 0.3) + 1)]
    changes = np.count_nonzero(middle[:, 1:] != middle[:, :-1], axis=1)
    return float(np.median(changes)) >= MIN_STROKE_CHANGES


def is_plate(line: TextLine, gray: np.ndarray) -> bool:
    """The rules above, for one read line of a frame (``gray``: the frame in grey levels)."""
    if not plate_shaped(line, gray.shape[0]):
        return False
    if line.confidence >= CONFIDENT_READ:
        return plate_text(line.text)
    return plate_text(line.text) or looks_like_plate(gray, line)


def plate_box(line: TextLine) -> tuple[float, float, float, float]:
    """The whole plate around its characters (margin and border included)."""
    x0, y0, x1, y1 = line.bounds()
    h = line.height
    return x0 - PAD_X * h, y0 - PAD_Y * h, x1 + PAD_X * h, y1 + PAD_Y * h


def _joined(group: list[TextLine]) -> TextLine:
    """One line standing for a row of text groups (axis-aligned union, texts joined by spaces)."""
    x0 = min(ln.bounds()[0] for ln in group)
    y0 = min(ln.bounds()[1] for ln in group)
    x1 = max(ln.bounds()[2] for ln in group)
    y1 = max(ln.bounds()[3] for ln in group)
    quad = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32)
    return TextLine(quad=quad, box_score=float(np.mean([ln.box_score for ln in group])),
                    text=" ".join(ln.text for ln in group), confidence=min(ln.confidence for ln in group))


def _may_be_plate_part(line: TextLine) -> bool:
    return bool(_PLATE_CHARS.match(line.text.strip() or "?")) or line.confidence < CONFIDENT_READ


def find_plates(lines: list[TextLine], gray: np.ndarray) -> tuple[list[tuple[tuple[float, float, float, float], float]], list[TextLine]]:
    """(plate box, score) for every plate among the read lines, and the lines that are not plates.

    A row of split character groups is judged as one line first; every line
    not taken by a row is judged alone.
    """
    plates, taken = [], set()
    # Lines of plate characters (or unreadable ones) on one row may be the split groups of one plate.
    groups = [r for r in group_rows(lines, accept=_may_be_plate_part, max_len=3) if len(r) > 1]
    for row in groups:
        joined = _joined([lines[i] for i in row])
        if is_plate(joined, gray):
            plates.append((plate_box(joined), joined.box_score))
            taken.update(row)
    for i, line in enumerate(lines):
        if i not in taken and is_plate(line, gray):
            plates.append((plate_box(line), line.box_score))
            taken.add(i)
    return plates, [line for i, line in enumerate(lines) if i not in taken]
