"""A stand-in for LiveClient, loaded inside OBS through PRIVASTREAM_OBS_CLIENT (a mock: see below).

Why a mock: these tests check the OBS side on its own (the shader on a known region list,
the delay lines, the bleep rendering and A/V sync) and must not depend on detector quality or
on the live server being up.  It follows the LiveClient contract:
  - video: every submitted frame is decided at once with the regions in $PRIVASTREAM_FAKE_REGIONS
    (JSON list of {kind, box}, or an object of such lists by the name the filter passes as ``source``); frames never submitted
    get None (the filter covers them);
  - audio: everything submitted is decided at once; spans where the input is loud (RMS > 0.05) are
    returned as bleep intervals, so the output must carry the filter's beep exactly there, D later.
    What is decided is kept by the real client's MuteLedger, so a clock that jumps is read as the
    real client reads it.
"""

from __future__ import annotations

import json
import os
import threading

import numpy as np

from inference_server.client import ClientStatus
from inference_server.mute_ledger import MuteLedger
from inference_server.regions import FrameDecision, Region
from inference_server.settings import as_settings

LOUD_RMS = 0.05


class FakeClient:
    def __init__(self, source="", kind="video", delay_s=1.0, settings=None, **_):
        self.kind, self.settings = kind, as_settings(settings)
        spec = json.loads(os.environ.get("PRIVASTREAM_FAKE_REGIONS", "[]"))
        if isinstance(spec, dict):
            spec = spec.get(source, [])
        self.regions = [Region(kind=r["kind"], box=tuple(r["box"])) for r in spec]
        self.frames: set[int] = set()
        self.lock = threading.Lock()
        self.ledger = MuteLedger()

    def submit_frame(self, frame_id, pts, rgba, captured=None) -> bool:
        assert rgba.ndim == 3 and rgba.shape[2] == 4 and rgba.dtype == np.uint8
        # The real client copies each frame once into shared memory; do the same copy so the
        # benchmark's render-thread figures include it.
        if getattr(self, "shm_copy", None) is None or self.shm_copy.shape != rgba.shape:
            self.shm_copy = np.empty_like(rgba)
        np.copyto(self.shm_copy, rgba)
        self.frames.add(frame_id)
        return True

    def frame_decision(self, frame_id):
        return FrameDecision(regions=list(self.regions)) if frame_id in self.frames else None

    def submit_audio(self, pts, planar, sample_rate=48000) -> bool:
        end = pts + planar.shape[1] / sample_rate
        loud = float(np.sqrt(np.mean(planar.astype(np.float64) ** 2))) > LOUD_RMS
        with self.lock:
            self.ledger.handed_over(pts, end)
            self.ledger.update([(pts, end, "pii")] if loud else [], end)  # touching spans merge into one
        return True

    def audio_decision(self, start_pts, end_pts):
        with self.lock:
            return self.ledger.decision(start_pts, end_pts)

    @property
    def status(self):
        return ClientStatus(state="connected", latency_ms=1.0, fps=30.0, detections={"face": 1}, message="fake")

    def update_settings(self, changes):
        self.settings = self.settings.updated(changes)

    def close(self):
        pass
