"""Detectors behind the one ``Detector`` interface of ``inference_server.regions``.

``FaceDetector`` (CenterFace) reports kind "face" with five landmarks;
``TextDetector`` (PP-OCRv4 + the PII classifier) reports kinds "text" (the
private part of a line) and "plate".  Each keeps ``last_timing``: the
pre-processing, inference and post-processing milliseconds of its last call.
"""

from .faces import FaceDetector
from .text import TextDetector

__all__ = ["FaceDetector", "TextDetector"]
