"""PrivaStream's inference engine: what to cover in each video frame and which audio to bleep.

Nothing here knows about OBS; the live service, the offline `redact` command
and the OBS plugin (through the protocol module) all use it.
"""

from .errors import ModelLoadError, PrivaStreamError, ProtocolError, StateError
from .regions import Detector, FrameDecision, Region

__all__ = ["Detector", "FrameDecision", "ModelLoadError", "PrivaStreamError", "ProtocolError", "Region", "StateError"]
