"""A video client's frames: the deadline of each one in flight, and the one decision each one gets.

Privacy first: a frame the server has not answered by its deadline, or cannot answer (an outage, the
client closing), is decided fail-closed here, and a late answer never replaces that.  Called from the
caller's thread (OBS's render thread) and the client's background thread, so it keeps its own lock.
"""

from __future__ import annotations

import collections
import statistics
import threading
import time
from typing import Callable

from .regions import FrameDecision

DECISIONS_KEPT = 1024
LATE_WINDOW_S = 2.0
"""A miss this recent makes the client's state "late", and the figures cover this window."""


def fail_closed(reason: str) -> FrameDecision:
    return FrameDecision(regions=[], fail_closed=True, reason=reason)


class FrameLedger:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._decisions: collections.OrderedDict[int, FrameDecision] = collections.OrderedDict()
        self._pending: dict[int, tuple[float, float]] = {}
        """frame_id -> (taken, deadline), on the monotonic clock."""
        self._latencies: collections.deque[float] = collections.deque(maxlen=120)
        self._decided_at: collections.deque[float] = collections.deque(maxlen=240)
        self._misses: collections.deque[float] = collections.deque(maxlen=64)

    def expect(self, frame_id: int, taken: float, deadline: float) -> None:
        """A frame is on its way to the server (before its notice goes out: the answer may come at once)."""
        with self._lock:
            self._pending[frame_id] = (taken, deadline)

    def refuse(self, frame_id: int, reason: str) -> None:
        """A frame the client could not hand over: fail-closed now, so the caller covers it."""
        with self._lock:
            self._store(frame_id, fail_closed(reason))

    def answer(self, frame_id: int, decision: FrameDecision) -> None:
        """The server's decision for a frame; one after the deadline is a miss, fail-closed."""
        now = self._clock()
        with self._lock:
            pending = self._pending.get(frame_id)
            if pending is None:  # already failed (deadline, outage) or never ours: keep what we said
                return
            taken, deadline = pending
            if now >= deadline:
                self._miss(frame_id, "decision arrived after the deadline")
                return
            self._latencies.append(now - taken)
            self._decided_at.append(now)
            self._store(frame_id, decision)

    def decision(self, frame_id: int) -> FrameDecision | None:
        """The final decision for a frame, or None while it may still come."""
        with self._lock:
            decision = self._decisions.get(frame_id)
            if decision is None:
                pending = self._pending.get(frame_id)
                if pending is not None and self._clock() >= pending[1]:
                    decision = self._miss(frame_id, "no decision before the deadline")
            return decision

    def expire(self) -> None:
        """Fail closed every frame whose deadline has passed."""
        now = self._clock()
        with self._lock:
            for frame_id, (_, deadline) in list(self._pending.items()):
                if now >= deadline:
                    self._miss(frame_id, "no decision before the deadline")

    def fail_pending(self, reason: str) -> None:
        """Nothing the server says can be trusted for the frames in flight (an outage, the client closing)."""
        with self._lock:
            for frame_id in list(self._pending):
                self._miss(frame_id, reason)

    def figures(self) -> tuple[float, float, bool]:
        """(median submit -> decision in ms, decisions per second, whether a frame was missed lately)."""
        with self._lock:
            now = self._clock()
            recent = [t for t in self._decided_at if now - t <= LATE_WINDOW_S]
            fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
            latency = statistics.median(self._latencies) * 1000 if self._latencies else 0.0
            late = any(now - t <= LATE_WINDOW_S for t in self._misses)
            return latency, fps, late

    def _store(self, frame_id: int, decision: FrameDecision) -> None:
        self._pending.pop(frame_id, None)
        self._decisions[frame_id] = decision
        while len(self._decisions) > DECISIONS_KEPT:
            self._decisions.popitem(last=False)

    def _miss(self, frame_id: int, reason: str) -> FrameDecision:
        """Lock held: decide a frame fail-closed because no decision can be trusted for it."""
        decision = fail_closed(reason)
        self._store(frame_id, decision)
        self._misses.append(self._clock())
        return decision
