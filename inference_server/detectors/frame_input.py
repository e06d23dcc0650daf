"""What every detector does first: check the frame and pick a detection size.

Frames come from OBS (RGBA), ffmpeg (RGB) or tests; anything else is a caller
bug that must be reported clearly rather than run through a model.
"""

from __future__ import annotations

import math

import numpy as np


def rgb_view(frame: np.ndarray) -> np.ndarray:
    """The HxWx3 RGB part of an RGB or RGBA uint8 frame (a view, no copy).

    Raises ValueError naming what is wrong, so a caller never gets a model's
    shape error (or, worse, a silently empty result) for a malformed frame.
    """
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise ValueError(f"frame must be uint8, got {frame.dtype}")
    if frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise ValueError(f"frame must be HxWx3 (RGB) or HxWx4 (RGBA), got shape {frame.shape}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"frame is empty (shape {frame.shape})")
    return frame[:, :, :3]


def detection_size(height: int, width: int, max_side: int, multiple: int = 32) -> tuple[int, int]:
    """(h, w) for a detector input: long side at most ``max_side``, both multiples of ``multiple``.

    Frames are only ever shrunk (upscaling adds no detail and costs time); the
    rounding is to the nearest multiple so the aspect ratio stays close.
    """
    scale = min(1.0, max_side / max(height, width))
    h = max(multiple, math.ceil(height * scale / multiple) * multiple)
    w = max(multiple, math.ceil(width * scale / multiple) * multiple)
    return h, w


def scaled_size(height: int, width: int, scale: float, multiple: int = 32) -> tuple[int, int]:
    """(h, w) for a detector input of the frame scaled by ``scale``, both multiples of ``multiple``."""
    return (max(multiple, round(height * scale / multiple) * multiple),
            max(multiple, round(width * scale / multiple) * multiple))


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression, best score first."""
    order = np.argsort(-scores)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        ix = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
        iy = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
        inter = ix * iy
        union = areas[i] + areas[rest] - inter
        order = rest[inter <= iou_threshold * np.maximum(union, 1e-9)]
    return np.asarray(keep, dtype=np.int64)


def ms_since(start: float, now: float) -> float:
    return round((now - start) * 1000.0, 2)


__all__ = ["detection_size", "ms_since", "nms", "rgb_view", "scaled_size"]
