"""The vision engine: detectors + scene cuts + temporal coverage, for one video stream.

The live server and the offline redactor drive it the same way: ``observe``
every frame, ``detect`` on the frames their schedule picks, ``decide`` what
to cover at any instant.  It owns no clock, no file and no transport.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np

from .coverage import Coverage, KindPolicy
from .regions import FrameDecision, Region, clip_box
from .scenecut import SceneCutDetector

log = logging.getLogger("privastream.vision")

# Which detector finds which kinds: one OCR run yields both on-screen text and plates.
DETECTOR_OF_KIND = {"face": "faces", "text": "text", "plate": "text"}
TARGET_OF_KIND = {"face": "faces", "text": "text", "plate": "plates"}


def enabled_kinds(settings: dict) -> tuple[str, ...]:
    targets = settings.get("targets", {})
    return tuple(k for k, t in TARGET_OF_KIND.items() if targets.get(t, True))


@lru_cache(maxsize=4)
def _face_detector(threads: int, provider: str):
    from .detectors.faces import FaceDetector

    return FaceDetector(threads=threads, provider=provider)


@lru_cache(maxsize=4)
def _text_detector(threads: int, provider: str, custom_terms: tuple[str, ...]):
    from .detectors.text import TextDetector

    return TextDetector(threads=threads, provider=provider, custom_terms=custom_terms)


class VisionEngine:
    def __init__(self, settings: dict | None = None, threads: int = 0, provider: str = "auto",
                 policies: dict[str, KindPolicy] | None = None):
        self.threads, self.provider = threads, provider
        self.settings: dict = {}
        self.coverage = Coverage(kinds=(), policies=policies)
        self._cuts = SceneCutDetector()
        self.frame_size: tuple[int, int] | None = None
        self.update_settings(settings or {})

    @property
    def kinds(self) -> tuple[str, ...]:
        return self.coverage.kinds

    def update_settings(self, settings: dict) -> None:
        self.settings = {**self.settings, **settings}
        self.coverage.kinds = enabled_kinds(self.settings)
        log.info("update_settings() | kinds:%s", ",".join(self.coverage.kinds) or "none")

    def _detectors_for(self, kinds) -> dict[str, object]:
        groups = {DETECTOR_OF_KIND[k] for k in kinds if k in self.coverage.kinds}
        out = {}
        if "faces" in groups:
            out["faces"] = _face_detector(self.threads, self.provider)
        if "text" in groups:
            terms = tuple(self.settings.get("custom_terms", ()))
            out["text"] = _text_detector(self.threads, self.provider, terms)
        return out

    def load(self) -> None:
        """Load every enabled detector now rather than on the first frame."""
        self._detectors_for(self.coverage.kinds)

    def observe(self, t: float, frame: np.ndarray, size: tuple[int, int] | None = None) -> bool:
        """Every frame, in order: notes its size and whether it starts a new scene.

        ``size`` (width, height): the frame's size when ``frame`` is only a thumbnail of it
        (the live server never copies whole frames, issue 4).
        """
        size = size or (frame.shape[1], frame.shape[0])
        resized = self.frame_size is not None and size != self.frame_size
        self.frame_size = size
        cut = self._cuts.is_cut(frame) or resized
        if cut:
            self.coverage.add_cut(t)
            log.debug("observe() | scene cut [t:%.3f]", t)
        return cut

    def detect(self, t: float, frame: np.ndarray, kinds) -> list[Region]:
        """Run the detectors for ``kinds`` on the frame at t and record what they found."""
        found: list[Region] = []
        for detector in self._detectors_for(kinds).values():
            regions = detector.detect(frame)
            covered = tuple(k for k in detector.kinds if k in self.coverage.kinds)
            self.coverage.add_run(t, covered, regions)
            found.extend(regions)
        return found

    def decide(self, t: float, final: bool = True) -> FrameDecision | None:
        decision = self.coverage.decide(t, final=final)
        if decision is None or decision.fail_closed or self.frame_size is None:
            return decision
        w, h = self.frame_size
        clipped = [r.with_box(clip_box(r.box, w, h)) for r in decision.regions]
        return FrameDecision(regions=[r for r in clipped if r.width > 0 and r.height > 0])

    def prune(self, before_t: float) -> None:
        self.coverage.prune(before_t)
