"""One video session's pending frames, and the one decision each of them gets before its deadline.

The scheduler's threads (scheduler.py) decide; this object owns what is pending and publishes under
one lock, so whichever thread answers a frame first (settled, estimate, fail-closed) is the only one
heard.  A decision that reaches its frame's publication after the deadline goes out fail-closed and
counted: the client would cover the frame anyway, and the panel must say why.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable

from .regions import FrameDecision, Region, overlap_share
from .session_stats import SessionStats

log = logging.getLogger("privastream.publisher")

PUBLISH_MARGIN_S = 0.15
"""Publish this long before a frame's deadline, for the trip back to the client and for a decision
thread that a busy machine wakes late (with OBS rendering 720p in software on two cores, 60 ms let
a fifth of the frames miss their deadline: scripts/bench_obs_load.py, "deadline missed").  An
estimate this early costs little: faces are followed and change is covered up to the frame itself."""
AUDITED_KEPT = 512
"""Estimates kept until their frame settles, to count the regions they missed."""


@dataclass(eq=False)  # identity: two frames may share a pts
class PendingFrame:
    frame_id: int
    t: float
    """pts, seconds on the client's stream clock."""
    submitted: float
    """Client's time.monotonic() at submit."""
    deadline: float
    ref: object = None
    """Where the detection worker reads the full frame (detect_worker.FrameRef); None if it was lost."""
    published: bool = False


class FramePublisher:
    """Pending frames in arrival (time) order; ``publish(frame, decision)`` is called once per frame.

    ``clock`` is the clock deadlines are on (time.monotonic; tests pass their own).
    """

    def __init__(self, publish: Callable[[PendingFrame, FrameDecision], None], stats: SessionStats | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.stats = stats if stats is not None else SessionStats()
        self._publish = publish
        self._clock = clock
        self._lock = threading.Lock()
        self._frames: collections.deque[PendingFrame] = collections.deque()
        self._estimates: collections.OrderedDict[float, list[Region]] = collections.OrderedDict()
        self.emitted_t = -math.inf
        """pts of the newest frame published with a known pts (the engine forgets what lies well before it)."""

    def __len__(self) -> int:
        return len(self._frames)

    def add(self, frame: PendingFrame) -> None:
        with self._lock:
            self.stats.frames_in += 1
            self._frames.append(frame)

    def refuse(self, frame: PendingFrame, reason: str, lost: bool = False) -> None:
        """A frame that cannot be decided at all (``lost``: its pixels never arrived): fail-closed now."""
        with self._lock:
            self.stats.frames_in += 1
            self.stats.dropped += lost
        self._emit(frame, FrameDecision(fail_closed=True, reason=reason), settled=False)

    def newest(self) -> PendingFrame | None:
        with self._lock:
            return self._frames[-1] if self._frames else None

    def settle(self, settled: Callable[[float], bool], decide: Callable[[PendingFrame], FrameDecision | None]) -> None:
        """Publish, in time order, the pending frames the detections have settled (``settled(t)``), each with
        ``decide(frame)``; None leaves that frame pending (its audio is not decided yet)."""
        with self._lock:
            frames = list(self._frames)
        for f in frames:
            if not settled(f.t):
                break  # frames come in time order: the later ones are not settled either
            decision = decide(f)
            if decision is not None:
                self._emit(f, decision, settled=True)

    def fallback(self, horizon: float, estimate: Callable[[PendingFrame], FrameDecision]) -> None:
        """Frames whose publication time (deadline less PUBLISH_MARGIN_S) comes before ``horizon`` get
        ``estimate(frame)`` now."""
        with self._lock:
            frames = [f for f in self._frames if f.deadline - PUBLISH_MARGIN_S <= horizon]
        for f in frames:
            self._emit(f, estimate(f), settled=False)

    def fail_all(self, reason: str) -> None:
        with self._lock:
            frames = list(self._frames)
        for f in frames:
            self._emit(f, FrameDecision(fail_closed=True, reason=reason), settled=False)

    def audit(self, settled_answer: Callable[[float], FrameDecision | None]) -> None:
        """Count published estimates that missed a region their frame's settled answer covers
        (``settled_answer(t)``, None while that frame is not settled)."""
        while True:
            with self._lock:
                if not self._estimates:
                    return
                t, estimate = next(iter(self._estimates.items()))
            settled = settled_answer(t)
            if settled is None:
                return  # later frames settle later
            with self._lock:
                self._estimates.pop(t, None)
            # Margins differ between an estimated and a settled box of the same object, so "missed"
            # means that less than half of it lay under any one estimated region.
            missed = [] if settled.fail_closed else [
                r for r in settled.regions if r.kind != "change"
                and max((overlap_share(r.box, e.box) for e in estimate), default=0.0) < 0.5]
            if missed:
                self.stats.estimate_misses += 1
                log.warning("audit() | an estimate missed regions [t:%.3f kinds:%s origins:%s]", t,
                            ",".join(r.kind for r in missed), ",".join(r.origin for r in missed))

    def _emit(self, f: PendingFrame, decision: FrameDecision, settled: bool) -> None:
        with self._lock:
            if f.published:
                return
            f.published = True
            try:
                self._frames.remove(f)
            except ValueError:  # refused: it was never pending
                pass
            now = self._clock()
            st = self.stats
            if now >= f.deadline:
                st.deadline_misses += 1
                if not decision.fail_closed:
                    decision = FrameDecision(fail_closed=True, reason="deadline missed")
            st.frames_out += 1
            if decision.fail_closed:
                st.fail_closed += 1
                st.fail_closed_reasons[decision.reason] += 1
            elif settled:
                st.settled += 1
            else:
                st.tracked += 1
                self._estimates[f.t] = decision.regions
                while len(self._estimates) > AUDITED_KEPT:
                    self._estimates.popitem(last=False)
            st.record_latency(now - f.submitted)
            if math.isfinite(f.t):
                self.emitted_t = f.t
            # Under the lock: decisions leave in the order they were made.
            self._publish(f, decision)
