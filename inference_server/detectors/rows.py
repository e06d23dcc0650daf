"""Detected lines that are one row of text: the PP-OCR detector splits a row at wide gaps.

A card number can come out as "card 4111 1111" and "1111 1111 exp", a plate
as "AB12" and "CDE"; neither half is recognisable alone.  Lines continue one
another when they have about the same height and centre line and a gap of
at most ROW_GAP text heights between them (overlap allowed: unclipped boxes
of close groups overlap).
"""

from __future__ import annotations

from typing import Callable

from .ocr import TextLine

ROW_GAP = 1.5  # times the text height


def same_row(left: TextLine, right: TextLine) -> bool:
    """Whether ``right`` continues ``left`` on the same row."""
    (_, ay0, ax1, ay1), (bx0, by0, _, by1) = left.bounds(), right.bounds()
    ha, hb = ay1 - ay0, by1 - by0
    h = max(ha, hb)
    if h <= 0 or min(ha, hb) < 0.7 * h:
        return False
    if abs((ay0 + ay1) / 2 - (by0 + by1) / 2) > 0.35 * h:
        return False
    return -0.6 * h <= bx0 - ax1 <= ROW_GAP * h


def group_rows(lines: list[TextLine], accept: Callable[[TextLine], bool] = lambda line: True,
               max_len: int = 0) -> list[list[int]]:
    """Indices of ``lines`` grouped into rows, each left to right (single lines are rows too).

    Only lines that ``accept`` takes are grouped; a row grows to ``max_len`` lines
    at most (0: no limit).
    """
    order = sorted((i for i, line in enumerate(lines) if accept(line)), key=lambda i: lines[i].bounds()[0])
    rows: list[list[int]] = []
    for i in order:
        row = next((r for r in rows if (not max_len or len(r) < max_len) and same_row(lines[r[-1]], lines[i])), None)
        if row is None:
            rows.append([i])
        else:
            row.append(i)
    return rows
