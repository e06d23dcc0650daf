"""Where the characters of a read line are, and the spaces the recogniser dropped.

The PP-OCRv4 recogniser often reads "I live at 42 Elm Street" as
"Iliveat42ElmStreet": its space class is weak on English.  Without spaces the
PII classifier cannot see an address or a name, so spaces are put back from
the image: the crop's ink columns show a blank run between two characters,
and a run much wider than the gaps between letters is a word gap.  The same
blank runs give sharper character edges than the recogniser's columns alone,
which is what lets a PII sub-box stop at the word boundary.
"""

from __future__ import annotations

import cv2
import numpy as np

# A word gap, in crop pixels (the crop is 48 px tall, text about 60 % of it):
# at least MIN_WORD_GAP, and at least WORD_GAP_SHARE of the line's widest gap,
# capped at MAX_WORD_GAP so that one very wide gap does not hide the others.
# Measured on DejaVu chat lines: letter gaps 1-12 px (a "1" has wide side
# bearings), word gaps 14-28 px.
MIN_WORD_GAP = 12.0
MAX_WORD_GAP = 20.0
WORD_GAP_SHARE = 0.55


def ink_columns(crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per crop column: whether it holds ink (the minority tone of an Otsu split), in the
    middle band (top and bottom 15 % left out) and in nearly the full height.

    Gaps are found in the middle band: the detector's margin can catch the edge
    of a panel or of the next line, which would fill every gap.  The full band
    then narrows a gap to the descenders and hooks that reach into it (the tail
    of a serif "J" runs under the space before it).
    """
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    _, split = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    ink = split > 0
    if ink.mean() > 0.5:
        ink = ~ink
    rows = ink.shape[0]
    middle = ink[int(rows * 0.15):int(rows * 0.85)].any(axis=0)
    full = ink[int(rows * 0.03):rows - int(rows * 0.03)].any(axis=0)
    return middle, full


def widest_blank(ink: np.ndarray, left: float, right: float) -> tuple[float, float] | None:
    """The widest ink-free run of columns strictly between two x positions, as (start, end)."""
    lo, hi = int(np.ceil(left)), int(np.floor(right))
    if hi <= lo:
        return None
    blank = ~ink[lo:hi]
    if not blank.any():
        return None
    # Run boundaries: +1 where a blank run starts, -1 one past where it ends.
    change = np.diff(np.concatenate([[0], blank.astype(np.int8), [0]]))
    starts, ends = np.nonzero(change == 1)[0], np.nonzero(change == -1)[0]
    k = int(np.argmax(ends - starts))
    return float(lo + starts[k]), float(lo + ends[k])


def _gap(ink: tuple[np.ndarray, np.ndarray], left: float, right: float):
    """The width of the blank run between two characters (middle band), and the run itself
    narrowed to what is blank over the full height; None where the ink shows no gap."""
    middle, full = ink
    gap = widest_blank(middle, left, right)
    if gap is None:
        return None
    return gap[1] - gap[0], widest_blank(full, gap[0] - 1, gap[1] + 1) or gap


def lay_out(chars: list[str], centres: np.ndarray, ink: tuple[np.ndarray, np.ndarray], width: float):
    """Text with restored spaces, its character edges and the indices of the inserted spaces.

    ``chars``/``centres``: the recogniser's characters and their crop x; ``ink``:
    the two column profiles of ``ink_columns``.  Returns
    (text, edges, inserted) with len(edges) == len(text) + 1: character i lies
    between edges i and i+1; a space spans its blank run.
    """
    glyphs = [(c, float(x)) for c, x in zip(chars, centres) if c != " "]
    # A space the recogniser did read is kept even where the ink shows no gap:
    # read_space holds the index of the glyph each read space comes before.
    read_space, seen = set(), 0
    for c in chars:
        if c != " ":
            seen += 1
        elif 0 < seen < len(glyphs):
            read_space.add(seen)
    found = [_gap(ink, glyphs[k - 1][1], glyphs[k][1]) for k in range(1, len(glyphs))]
    threshold = min(MAX_WORD_GAP, max(MIN_WORD_GAP, WORD_GAP_SHARE * max((f[0] for f in found if f), default=0.0)))
    text, edges, inserted = [], [0.0], []
    for k, (char, x) in enumerate(glyphs):
        if k:
            middle = (glyphs[k - 1][1] + x) / 2
            gap = found[k - 1][1] if found[k - 1] else None
            wide = found[k - 1] is not None and found[k - 1][0] >= threshold
            if wide or k in read_space:
                if k not in read_space:
                    inserted.append(len(text))
                text.append(" ")
                edges += [gap[0], gap[1]] if gap is not None else [middle, middle]
            else:
                edges.append((gap[0] + gap[1]) / 2 if gap is not None else middle)
        text.append(char)
    edges.append(float(width))
    return "".join(text), np.asarray(edges, dtype=np.float32), tuple(inserted)
