"""Spoken PII: streaming Whisper with word times, spoken-PII rules, bleeps, mouth blur.

    redactor = SpeechRedactor(latency_s=2.0, custom_terms=("Jane Doe",), background=True)
    redactor.push(pts, planar, 48000); intervals, decided_until = redactor.poll()
    intervals, redacted = redact_audio(planar, 48000)          # offline, whole recording
    regions = mouth_regions(frame_t, face_regions, intervals)   # for the mask path
"""

from importlib import import_module

from .intervals import FAILCLOSED, MuteInterval, merge_intervals
from .mouth import mouth_regions
from .render import BLEEP_MODES, render

__all__ = ["BLEEP_MODES", "FAILCLOSED", "MuteInterval", "SpeechRedactor", "merge_intervals", "mouth_regions",
           "redact_audio", "render"]


def __getattr__(name: str):
    """The redactor (and through it spaCy and Whisper) loads on first use, so the numpy-only
    parts above load inside OBS's embedded Python on their own."""
    if name in ("SpeechRedactor", "redact_audio"):
        return getattr(import_module(".redactor", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
