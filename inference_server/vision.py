"""The vision engine: detectors + scene cuts + temporal coverage, for one video stream.

The live server and the offline redactor drive it the same way: ``observe``
every frame, ``detect`` on the frames their schedule picks, ``decide`` what
to cover at any instant.  It owns no clock, no file and no transport.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np

from . import tracking
from .coverage import Coverage, KindPolicy
from .history import FrameHistory, cell_boxes, unexplained_cells
from .read_memory import ReadMemory
from .regions import TRACKED_KINDS, FrameDecision, Region, clip_box
from .scenecut import SceneCutDetector
from .settings import Settings, as_settings

log = logging.getLogger("privastream.vision")

# Which detector finds which kinds: one OCR run yields both on-screen text and plates.
DETECTOR_OF_KIND = {"face": "faces", "text": "text", "plate": "text"}
TARGET_OF_KIND = {"face": "faces", "text": "text", "plate": "plates"}
MAX_CHANGE_SHARE = 0.5
"""An estimate whose unvouched change covers more of the picture than this covers all of it."""
MAX_CHANGE_BOXES = 48
EDGE_PX = 2.0
MOVES_WITH_FACE = 1.0
"""A face's shift explains the change this many face sizes around its box: hair, ears, neck and
shoulders move with it (and the background they uncover), whereas further off something else may
have moved by the same distance."""


def enabled_kinds(settings: Settings) -> tuple[str, ...]:
    return tuple(k for k, t in TARGET_OF_KIND.items() if settings.targeted(t))


@lru_cache(maxsize=4)
def _face_detector(threads: int, provider: str):
    from .detectors.faces import FaceDetector

    return FaceDetector(threads=threads, provider=provider)


@lru_cache(maxsize=4)
def _text_detector(threads: int, provider: str, custom_terms: tuple[str, ...]):
    from .detectors.text import TextDetector

    return TextDetector(threads=threads, provider=provider, custom_terms=custom_terms)


class Detectors:
    """The detectors some settings enable, each loaded once per process and shared.  Stateless: the
    live server's detection workers use them alone (the server keeps the coverage), redact through
    a VisionEngine."""

    def __init__(self, settings: Settings, threads: int = 0, provider: str = "auto"):
        self.threads, self.provider = threads, provider
        self.kinds = enabled_kinds(settings)
        self.custom_terms = settings.custom_terms

    def _for(self, kinds) -> list:
        groups = {DETECTOR_OF_KIND[k] for k in kinds if k in self.kinds}
        found = []
        if "faces" in groups:
            found.append(_face_detector(self.threads, self.provider))
        if "text" in groups:
            found.append(_text_detector(self.threads, self.provider, self.custom_terms))
        return found

    def load(self) -> None:
        """Load every enabled detector now rather than on the first frame."""
        self._for(self.kinds)

    def detect(self, frame: np.ndarray, kinds, text_areas=None,
               face_scale: float | None = None) -> list[tuple[tuple[str, ...], list[Region]]]:
        """For each detector ``kinds`` needs: the enabled kinds it looked for in ``frame``, and what it
        found.  ``text_areas`` (frame pixels): the text detector reads only these rectangles of the
        frame (read_memory.py); None, all of it.  ``face_scale``: the face detector's input is the
        frame scaled by it (governor.face_input_scale); None, its own default size."""
        return [(tuple(k for k in detector.kinds if k in self.kinds),
                 _read_areas(detector, frame, text_areas) if DETECTOR_OF_KIND[detector.kinds[0]] == "text"
                 else detector.detect(frame, face_scale))
                for detector in self._for(kinds)]


def _read_areas(detector, frame: np.ndarray, areas) -> list[Region]:
    """The detector's regions in ``areas`` of the frame (all of it when None), in frame pixels."""
    if areas is None:
        return detector.detect(frame)
    found: list[Region] = []
    h, w = frame.shape[:2]
    for box in areas:
        x0, y0, x1, y1 = (int(v) for v in clip_box((np.floor(box[0]), np.floor(box[1]), np.ceil(box[2]),
                                                     np.ceil(box[3])), w, h))
        if x1 > x0 and y1 > y0:
            found += [r.with_box((r.box[0] + x0, r.box[1] + y0, r.box[2] + x0, r.box[3] + y0))
                      for r in detector.detect(frame[y0:y1, x0:x1])]
    return found


class VisionEngine:
    def __init__(self, settings: Settings | dict | None = None, threads: int = 0, provider: str = "auto",
                 policies: dict[str, KindPolicy] | None = None, follow: bool = False):
        """follow: keep the recent frames (history.py) to follow faces between runs (tracking.py), so
        a face between two runs is covered where it is measured, and so an estimate
        (``decide(final=False)``, the live path) can cover what changed since the newest run.
        Detectors load on the first ``detect`` (the live server detects in its workers instead)."""
        self.threads, self.provider = threads, provider
        self.settings = as_settings(settings)
        self.detectors = Detectors(self.settings, threads, provider)
        self.coverage = Coverage(kinds=(), policies=policies)
        self._cuts = SceneCutDetector()
        self.history = FrameHistory() if follow else None
        self.reads = ReadMemory()
        self._unfollowable: set[tuple[int, float]] = set()
        self._followed: dict[int, dict[float, tuple]] = {}
        """Each followed face's box by frame time: as detected, then as measured (before margins and
        edge holds), for the motion that explains change near it."""
        """(track, detection time) whose face could not be followed after that detection."""
        self.frame_size: tuple[int, int] | None = None
        self.update_settings(self.settings)

    @property
    def kinds(self) -> tuple[str, ...]:
        return self.coverage.kinds

    def update_settings(self, settings: Settings | dict) -> None:
        self.settings = as_settings(settings)
        self.coverage.kinds = enabled_kinds(self.settings)
        self.detectors = Detectors(self.settings, self.threads, self.provider)
        self.reads.forget()  # what was read is judged again under the new targets and custom terms
        log.info("update_settings() | kinds:%s", ",".join(self.coverage.kinds) or "none")

    def observe(self, t: float, frame: np.ndarray, size: tuple[int, int] | None = None) -> bool:
        """Every frame, in order: notes its size and whether it starts a new scene.

        ``size`` (width, height): the frame's size when ``frame`` is only every n-th pixel of it
        (the live server never copies whole frames).
        """
        size = size or (frame.shape[1], frame.shape[0])
        resized = self.frame_size is not None and size != self.frame_size
        self.frame_size = size
        cut = self._cuts.is_cut(frame) or resized
        if cut:
            self.coverage.add_cut(t)
            log.debug("observe() | scene cut [t:%.3f]", t)
        if self.history is not None:
            self.history.add(t, frame, size)
        return cut

    def detect(self, t: float, frame: np.ndarray, kinds) -> list[Region]:
        """Run the detectors for ``kinds`` on the frame at t and record what they found."""
        found: list[Region] = []
        for covered, regions in self.detectors.detect(frame, kinds, self.text_areas(kinds, t)):
            found.extend(self.add_run(t, covered, regions))
        return found

    def text_areas(self, kinds, t: float):
        """Where a run for ``kinds`` on the frame at t reads text (frame pixels): only what changed
        since it was last read (read_memory.py), when the engine keeps the frames' history; None,
        everywhere."""
        if self.history is None or not any(DETECTOR_OF_KIND[k] == "text" for k in kinds):
            return None
        return self.reads.plan(t, self.history.at(t), self.history.scale)

    def add_run(self, t: float, kinds, regions: list[Region]) -> list[Region]:
        """Record a run for ``kinds`` on the frame at t that found ``regions`` (in the ``text_areas``
        asked for first, for text) and return what it found in the whole frame."""
        if self.history is not None and any(DETECTOR_OF_KIND[k] == "text" for k in kinds):
            whole = self.reads.remember(t, regions)
            if whole is None:
                log.info("add_run() | text run at t:%.3f dropped: the settings changed while it ran", t)
                return []
            regions = whole
        self.coverage.add_run(t, kinds, regions)
        return regions

    def decide(self, t: float, final: bool = True) -> FrameDecision | None:
        if self.history is not None:
            self._follow_faces(t)
        decision = self.coverage.decide(t, final=final)
        if decision is None or decision.fail_closed or self.frame_size is None:
            return decision
        if not final and self.history is not None:
            decision = self._cover_unvouched_change(t, decision)
            if decision.fail_closed:
                return decision
        w, h = self.frame_size
        clipped = [r.with_box(clip_box(r.box, w, h)) for r in decision.regions]
        return FrameDecision(regions=[r for r in clipped if r.width > 0 and r.height > 0])

    def _follow_faces(self, t: float) -> None:
        """Measure each face the newest run saw in every kept frame after it, up to t."""
        if "face" not in self.coverage.kinds:
            return
        for track_id, seen_at, seen_box, last_t, last_box in self.coverage.followable("face", t):
            frames = self.history.times_between(last_t, t)
            if not frames or (track_id, seen_at) in self._unfollowable:
                continue  # settling and auditing ask about frames already followed, many times a second
            face = tracking.template(self.history, seen_at, seen_box)
            if face is None:
                self._unfollowable.add((track_id, seen_at))
                continue
            boxes = self._followed.setdefault(track_id, {})
            boxes[seen_at] = seen_box
            for ft in frames:
                found = tracking.measure(self.history, ft, face, last_box)
                if found is None:
                    self._unfollowable.add((track_id, seen_at))
                    break
                last_box = found[0]
                boxes[ft] = last_box
                self.coverage.add_measurement(track_id, "face", ft, self._held_to_edges(last_box, seen_box))

    def _held_to_edges(self, box, seen_box):
        """A face the frame's edge cut at its detection may have come further into view since: its
        followed box keeps reaching that edge until a run sees it whole."""
        w, h = self.frame_size or (0, 0)
        x0, y0, x1, y1 = box
        return (0.0 if seen_box[0] <= EDGE_PX else x0, 0.0 if seen_box[1] <= EDGE_PX else y0,
                float(w) if seen_box[2] >= w - EDGE_PX else x1, float(h) if seen_box[3] >= h - EDGE_PX else y1)

    def _cover_unvouched_change(self, t: float, decision: FrameDecision) -> FrameDecision:
        """Add a cover over every part of the picture that changed since the newest run of some kind
        and that no tracked region explains (history.py), or cover all when that is too much."""
        explained = [r.box for r in decision.regions]
        changed = None
        for kind in self.coverage.kinds:
            since = self.coverage.newest_run_before(kind, t)
            if since is None or since == t:
                continue
            then = [r.box for k in TRACKED_KINDS for r in self.coverage.regions_at(k, since)]
            motions = [_motion(b[since], b[t]) for b in self._followed.values() if t in b and since in b]
            cells = unexplained_cells(self.history, since, t, explained + then, motions)
            if cells is None:
                return FrameDecision(fail_closed=True, reason=f"the frame of the last {kind} detection is gone")
            changed = cells if changed is None else changed | cells
        if changed is None or not changed.any():
            return decision
        boxes = cell_boxes(self.history, changed)
        if changed.mean() > MAX_CHANGE_SHARE or len(boxes) > MAX_CHANGE_BOXES:
            return FrameDecision(fail_closed=True, reason="too much changed since the last detection")
        return FrameDecision(regions=decision.regions + [Region("change", box, origin="tracked") for box in boxes])

    def prune(self, before_t: float) -> None:
        self.coverage.prune(before_t)
        self._unfollowable = {(i, seen) for i, seen in self._unfollowable if seen >= before_t}
        self._followed = {i: kept for i, boxes in self._followed.items()
                          if (kept := {bt: b for bt, b in boxes.items() if bt >= before_t})}


def _motion(then, now) -> tuple[tuple[float, float], tuple[float, float, float, float]]:
    """A followed face's shift from its box ``then`` to its box ``now``, and the box within which
    that shift explains change: both boxes and MOVES_WITH_FACE face sizes around them."""
    pad = MOVES_WITH_FACE * max(now[2] - now[0], now[3] - now[1])
    shift = ((now[0] + now[2] - then[0] - then[2]) / 2, (now[1] + now[3] - then[1] - then[3]) / 2)
    return shift, (min(then[0], now[0]) - pad, min(then[1], now[1]) - pad,
                   max(then[2], now[2]) + pad, max(then[3], now[3]) + pad)
