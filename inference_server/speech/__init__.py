"""Spoken PII (issue 3): streaming Whisper with word times, spoken-PII rules, bleeps, mouth blur.

    redactor = SpeechRedactor(latency_s=2.0, custom_terms=("Jane Doe",), background=True)
    redactor.push(pts, planar, 48000); intervals, decided_until = redactor.poll()
    intervals, redacted = redact_audio(planar, 48000)          # offline, whole recording
    regions = mouth_regions(frame_t, face_regions, intervals)   # for the mask path
"""

from .intervals import FAILCLOSED, MuteInterval, merge_intervals
from .mouth import mouth_regions
from .redactor import SpeechRedactor, redact_audio
from .render import BLEEP_MODES, render

__all__ = ["BLEEP_MODES", "FAILCLOSED", "MuteInterval", "SpeechRedactor", "merge_intervals", "mouth_regions",
           "redact_audio", "render"]
