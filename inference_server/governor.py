"""How often each detector group runs on one live video session, and how large a face run's input
is, from what its runs cost here.

Pure bookkeeping, no threads and no clock of its own: the scheduler tells it of frames, scene cuts
and finished runs, and asks whether a group is due on the newest frame.  Faces aim to keep their
worker busy GATE_UTILISATION of the time, text at most a third as often as faces and half of its
worker's time, so faces keep most of the CPU; following and change cover the frames between runs
(vision.py).  Runs are shared across sessions (one worker per group), so every interval grows with
the number of sessions.  One lock: the loop thread (frames, cuts) and the detection threads (runs)
write it, the detection threads read it.
"""

from __future__ import annotations

import math
import threading

GROUP_KINDS = {"faces": ("face",), "text": ("text", "plate")}
GATE_UTILISATION = {"faces": 0.85, "text": 0.5}
"""Share of each group's worker the cadences aim to fill: faces leave room for the decisions and
the transport, text (running beside faces) leaves the CPU to faces half the time."""
TEXT_CADENCE_RATIO = 3.0
"""Text runs at most a third as often as faces: OCR is several times slower and text moves little."""
MIN_INTERVAL_S = {"faces": 1 / 30, "text": 0.25}
INITIAL_DURATION_S = {"faces": 0.1, "text": 0.8}
"""First guesses of a run's duration, replaced by measurements after the first run."""
SLOW_RUN_WEIGHT = 3.0
"""One slow run (a model loading, the machine busy) counts as at most this many typical ones."""
MIN_FACE_PX = 24
"""The smallest face (frame pixels across) every face run must be able to find (docs/privacy.md)."""
DETECTABLE_FACE_PX = 24
RELIABLE_FACE_PX = 48
"""CenterFace finds about two faces in three that are DETECTABLE_FACE_PX across in its input, and
nine in ten at RELIABLE_FACE_PX, also when the frame was enlarged to get there (720p faces of 24 px:
21 of 30 at the frame's own size, 27 of 30 enlarged twice; scripts/bench_vision.py --face-sizes).
So the face input is never smaller than the frame scaled by DETECTABLE / MIN, and is enlarged up
to RELIABLE / MIN where the measured cost leaves room before the deadlines."""
DEADLINE_SHARE = 0.5
"""Face inputs are sized for runs that take at most this share of the time a frame could wait for
one: a run's cost varies with the machine's other load (OBS, speech, OCR) by as much again."""
FACE_SCALE_STEP = 0.25
"""The face input grows or shrinks by this much of the frame's size at a time."""
GROWTH_COST = 2.0
"""A larger input costs up to this many times its share of pixels more (CenterFace on a CPU: 2.25
times the pixels took 3 to 5 times as long), so a step up is taken only when a run that much
dearer still fits."""
SCALE_SETTLE_RUNS = 5
"""Runs at one input size before the next step: the measured duration has caught up with it."""
MAX_FACE_INPUT_MPX = 8.3
"""No face input beyond 4K's pixel count: memory, and a run too long to ever fit a deadline."""


class Governor:
    def __init__(self):
        self._lock = threading.Lock()
        self.duration = dict(INITIAL_DURATION_S)
        """Seconds a run of each group takes here (smoothed)."""
        self._face_scale = DETECTABLE_FACE_PX / MIN_FACE_PX
        self._runs_at_scale = 0
        self._frame_interval = 1 / 30
        self._last_t: float | None = None
        self._last_cut = float("-inf")
        self._last_run: dict[str, float] = {}

    def frame(self, t: float, cut: bool) -> None:
        """A frame at t arrived (``cut``: it starts a new scene)."""
        with self._lock:
            if cut:
                self._last_cut = t
            if self._last_t is not None and t > self._last_t:
                self._frame_interval = 0.9 * self._frame_interval + 0.1 * (t - self._last_t)
            self._last_t = t

    def ran(self, group: str, t: float, took_s: float) -> None:
        """A run of ``group`` on the frame at t took ``took_s`` seconds."""
        with self._lock:
            took = min(took_s, SLOW_RUN_WEIGHT * self.duration[group])
            self.duration[group] = 0.7 * self.duration[group] + 0.3 * took
            self._last_run[group] = t
            self._runs_at_scale += group == "faces"

    def face_scale(self, frame_size: tuple[int, int], deadline_s: float, sessions: int) -> float:
        """The scale of the next face run's input: ``face_input_scale`` from the current one, once
        SCALE_SETTLE_RUNS runs have measured it."""
        with self._lock:
            if self._runs_at_scale >= SCALE_SETTLE_RUNS:
                scale = face_input_scale(frame_size, deadline_s, sessions, self._face_scale, self.duration["faces"])
                if scale != self._face_scale:
                    self._face_scale, self._runs_at_scale = scale, 0
            return self._face_scale

    def interval(self, group: str, sessions: int, groups: tuple[str, ...]) -> float:
        """Seconds between runs of ``group`` when ``groups`` are enabled and ``sessions`` share the workers."""
        with self._lock:
            sessions = max(1, sessions)
            faces = max(MIN_INTERVAL_S["faces"], self._frame_interval,
                        self.duration["faces"] * sessions / GATE_UTILISATION["faces"])
            if group == "faces":
                return faces
            return max(MIN_INTERVAL_S["text"], self.duration["text"] * sessions / GATE_UTILISATION["text"],
                       faces * TEXT_CADENCE_RATIO if "faces" in groups else 0.0)

    def due(self, group: str, newest_t: float, interval: float) -> bool:
        """Whether ``group``, run every ``interval`` (``self.interval``), should run on the newest
        frame (at ``newest_t``) now."""
        with self._lock:
            last, cut = self._last_run.get(group), self._last_cut
        # A group that has not run in the newest frame's scene (or ran at a later t: the clock went
        # back) is due at once: until it runs there, that scene's frames cannot be vouched for.
        return last is None or newest_t < last or last < cut <= newest_t or newest_t - last >= interval


def face_input_scale(frame_size: tuple[int, int], deadline_s: float, sessions: int, scale: float,
                     run_s: float) -> float:
    """The face detector's input scale after ``scale``, whose runs take ``run_s`` seconds, for frames
    of ``frame_size`` (width, height).

    Never less than what finds a MIN_FACE_PX face (DETECTABLE_FACE_PX in the input), never more than
    what finds it reliably (RELIABLE_FACE_PX).  Between the two, a step up when a run at the larger
    input (GROWTH_COST times dearer than its pixels) still lets every frame be decided finally
    within DEADLINE_SHARE of ``deadline_s`` after its capture, and a step down when the runs at this
    one no longer do.  A frame waits up to one interval for the next run to start and then one run;
    the interval is a run stretched by the sessions sharing the worker and the share of it the
    cadence fills (``Governor.interval``).  When even the smallest input takes longer, the smallest
    it stays: the cadence slows, frames get estimates at their deadlines, and no face that size goes
    unlooked for.
    """
    floor = DETECTABLE_FACE_PX / MIN_FACE_PX
    top = max(floor, min(RELIABLE_FACE_PX / MIN_FACE_PX,
                         math.sqrt(MAX_FACE_INPUT_MPX * 1e6 / max(frame_size[0] * frame_size[1], 1))))
    longest_run_s = DEADLINE_SHARE * deadline_s / (1 + max(1, sessions) / GATE_UTILISATION["faces"])
    if run_s > longest_run_s:
        return max(floor, scale - FACE_SCALE_STEP)
    up = scale + FACE_SCALE_STEP
    if up <= top + 1e-9 and run_s * GROWTH_COST * (up / scale) ** 2 <= longest_run_s:
        return up
    return min(max(scale, floor), top)



SPEECH_COST_RATIO = 2.5
"""whisper-base takes up to this many times tiny.en's time for a window (5 s windows on this
2-core CPU: 0.49-0.54 CPU-s against 0.20-0.26)."""
SPEECH_HEADROOM = 2.0
"""A richer model is chosen only when its decodes would take at most this share of the budget: a
live decode slows by as much again when OBS and the detectors take the cores."""


class SpeechCosts:
    """The slowest recent live decode of each speech model here.  Process-wide, like the models
    themselves: every audio session shares the machine."""

    def __init__(self):
        self._lock = threading.Lock()
        self._slowest: dict[str, float] = {}

    def record(self, model: str, seconds: float) -> None:
        with self._lock:
            self._slowest[model] = seconds

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self._slowest)


def speech_model(models: tuple[str, ...], slowest: dict[str, float], budget_s: float) -> str:
    """The richest of ``models`` (cheapest first) whose decodes fit ``budget_s`` with SPEECH_HEADROOM:
    as measured here (``slowest``), or, before a model has run, estimated from the one before it by
    SPEECH_COST_RATIO.  Nothing measured yet: the cheapest, so the first audio session is decided in time.
    Chosen when an audio session builds its recogniser; the recogniser's own timing then steps
    as often as L needs (speech.redactor)."""
    choice = models[0]
    for cheaper, richer in zip(models, models[1:]):
        if cheaper not in slowest and richer not in slowest:
            break
        estimate = slowest.get(richer, slowest.get(cheaper, math.inf) * SPEECH_COST_RATIO)
        if estimate * SPEECH_HEADROOM > budget_s:
            break
        choice = richer
    return choice
