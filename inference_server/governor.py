"""How often each detector group runs on one live video session, from what its runs cost here.

Pure bookkeeping, no threads and no clock of its own: the scheduler tells it of frames, scene cuts
and finished runs, and asks whether a group is due on the newest frame.  Faces aim to keep their
worker busy GATE_UTILISATION of the time, text at most a third as often as faces and half of its
worker's time, so faces keep most of the CPU; following and change cover the frames between runs
(vision.py).  Runs are shared across sessions (one worker per group), so every interval grows with
the number of sessions.  One lock: the loop thread (frames, cuts) and the detection threads (runs)
write it, the detection threads read it.
"""

from __future__ import annotations

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


class Governor:
    def __init__(self):
        self._lock = threading.Lock()
        self.duration = dict(INITIAL_DURATION_S)
        """Seconds a run of each group takes here (smoothed)."""
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
