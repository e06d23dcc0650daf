"""What the server has decided about the audio a client handed it: pure bookkeeping, no socket, no thread.

The server answers with mute intervals and a "decided up to" pts (protocol.MuteUpdate).  That
mark is a point on the audio's own clock, and that clock is not monotonic: a media source
restarting, a device reconnecting or one bad timestamp sends it back, or far ahead and back.
A mark that only ever moved forward would then vouch for audio the server never analysed.

So the ledger keeps the audio it handed over as *runs*: stretches whose timestamps follow on
from each other (the same rule by which the speech redactor restarts its stream: back by more
than JITTER_S or ahead by more than MAX_GAP_S).  The server works through them in order, and
each of its marks is placed in the run it is deciding; a mark that fits no run still ahead
vouches for nothing.  A query is decided only as far as every run it overlaps that the server
has not left yet is (a run it left is decided or muted to its end).

Mute intervals of one kind are merged as they come, so a long outage (one fail-closed packet
every 21 ms) stays one interval instead of a list that every query has to walk.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

FAILCLOSED = "failclosed"
JITTER_S = 0.02
"""Timestamps this close to the expected one are the same instant (OBS rounds audio pts)."""
MAX_GAP_S = 10.0
"""A longer jump ahead starts a new run, as it restarts the server's speech redactor."""
MERGE_GAP_S = 0.001
"""Intervals of one kind this close are one: OBS's packets meet within its nanosecond rounding."""
KEPT_S = 120.0
"""Intervals ending this long before the newest audio are forgotten (the filter plays D <= 30 s late)."""
RUN_KEPT_S = 40.0
"""A run replaced by a newer one is forgotten, with the intervals it brought, after this much newer
audio: by then its audio has been played (the server's delay is at most 30 s).  Kept longer, its
bleeps would land on the new clock's audio when that reaches the same timestamps."""


@dataclass
class _Run:
    first: float
    end: float
    """pts just after its newest packet."""
    decided: float = float("-inf")
    """The server's mark inside this run, while the server is deciding it."""
    retired_at: float = float("inf")
    """Audio seconds handed over (the ledger's own clock) when a newer run started."""

    def holds(self, pts: float) -> bool:
        return self.first - JITTER_S <= pts <= self.end + JITTER_S


@dataclass
class _Interval:
    start: float
    end: float
    heard: float
    """The ledger's audio clock when it was added (see RUN_KEPT_S)."""


class MuteLedger:
    """Handed-over audio, the server's decisions about it, and the mutes of audio it never got."""

    def __init__(self) -> None:
        self._runs: list[_Run] = []
        self._server = 0
        """Index of the run the server is deciding; == len(_runs) while it waits for a new one."""
        self._new_run = False
        """The next handed-over packet starts a run (a new connection starts the server afresh)."""
        self._mutes: dict[str, list[_Interval]] = {}
        self._open: float | None = None
        """Start of the outage mute whose end is the next handed-over packet."""
        self._heard = 0.0
        """Seconds of audio submitted so far: the clock that ages replaced runs."""

    # ------------------------------------------------------------ what the client did

    def handed_over(self, pts: float, end: float) -> None:
        """A packet [pts, end) went to the server, which will decide it."""
        self._heard += max(end - pts, 0.0)
        if self._open is not None:
            self._add(FAILCLOSED, self._open, pts)  # the outage's mute ends where decidable audio resumes
            self._open = None
        last = self._runs[-1] if self._runs else None
        if last is None or self._new_run or pts < last.end - JITTER_S or pts > last.end + MAX_GAP_S:
            if last is not None:
                last.retired_at = self._heard
            self._runs.append(_Run(pts, end))
            self._new_run = False
        else:
            last.end = max(last.end, end)
        self._forget()

    def refused(self, pts: float, end: float) -> None:
        """A packet [pts, end) could not be handed over: it is muted."""
        self._heard += max(end - pts, 0.0)
        self._add(FAILCLOSED, pts, end)

    def connection_lost(self) -> None:
        """Whatever the server had not decided is muted, and so is what follows until audio is
        handed over again; the next connection's server starts with a new run."""
        for i in range(self._server, len(self._runs)):
            run = self._runs[i]
            self._add(FAILCLOSED, max(run.first, run.decided), run.end)
        if self._runs and self._open is None:
            self._open = self._runs[-1].end
        self._server = len(self._runs)
        self._new_run = True

    # ------------------------------------------------------------ what the server said

    def update(self, intervals: Iterable[Sequence[Any]], decided_until: float) -> None:
        """A MuteUpdate: new intervals ((start, end, kind) each) and the server's mark."""
        for start, end, kind in intervals:
            self._add(str(kind), float(start), float(end))
        i = self._server
        if i < len(self._runs) and self._runs[i].holds(decided_until) \
                and decided_until >= self._runs[i].decided - JITTER_S:
            self._runs[i].decided = max(self._runs[i].decided, decided_until)
            return
        for j in range(i + 1, len(self._runs)):
            if self._runs[j].holds(decided_until):
                self._server = j  # the runs before j are behind the server: what it did not decide it muted
                self._runs[j].decided = decided_until
                return

    # ------------------------------------------------------------ what the filter asks

    def decision(self, start: float, end: float) -> tuple[list[tuple[float, float, str]], float]:
        """Mute intervals overlapping [start, end) (an open outage mute reported up to ``end``) and
        the pts from which audio in [start, end) is not decided."""
        out = [(iv.start, iv.end, kind) for kind, ivs in self._mutes.items() for iv in self._overlapping(ivs, start, end)]
        if self._open is not None and self._open < end:
            out.append((self._open, end, FAILCLOSED))
        out.sort()
        touched = [i for i, run in enumerate(self._runs) if run.first - JITTER_S < end and start < run.end]
        ahead = [self._mark(i) for i in touched if i >= self._server]
        if ahead:
            return out, min(ahead)
        # Only runs the server has left: decided or muted to their ends.
        return out, max((self._runs[i].end for i in touched), default=self.current_mark())

    def current_mark(self) -> float:
        """The server's mark on the newest clock: decided up to here (-inf before anything is)."""
        if self._server < len(self._runs):
            return self._mark(self._server)
        return self._runs[-1].end if self._runs else float("-inf")

    def interval_count(self) -> int:
        return sum(len(ivs) for ivs in self._mutes.values()) + (self._open is not None)

    # ------------------------------------------------------------ helpers

    def _mark(self, i: int) -> float:
        if i < self._server:
            return self._runs[i].end  # behind the server: decided or muted to its end
        if i == self._server:
            return self._runs[i].decided
        return self._runs[i].first  # not reached yet: nothing of it is decided

    @staticmethod
    def _overlapping(ivs: list[_Interval], start: float, end: float) -> list[_Interval]:
        # Merged intervals of one kind are disjoint and sorted: their ends are sorted too.
        lo = bisect.bisect_right(ivs, start, key=lambda iv: iv.end)
        hi = bisect.bisect_left(ivs, end, key=lambda iv: iv.start)
        return ivs[lo:hi]

    def _add(self, kind: str, start: float, end: float) -> None:
        if not end > start:
            return
        ivs = self._mutes.setdefault(kind, [])
        lo = bisect.bisect_left(ivs, start - MERGE_GAP_S, key=lambda iv: iv.end)
        hi = bisect.bisect_right(ivs, end + MERGE_GAP_S, key=lambda iv: iv.start)
        if lo < hi:  # it touches ivs[lo:hi]: one interval covers them all
            start, end = min(start, ivs[lo].start), max(end, ivs[hi - 1].end)
        ivs[lo:hi] = [_Interval(start, end, self._heard)]

    def _forget(self) -> None:
        """Drop replaced runs and intervals the filter can no longer ask about."""
        old = 0
        while old < len(self._runs) - 1 and self._heard - self._runs[old].retired_at > RUN_KEPT_S:
            old += 1
        if old:
            cutoff = self._runs[old - 1].retired_at
            del self._runs[:old]
            self._server = max(self._server - old, 0)
            for kind, ivs in self._mutes.items():
                self._mutes[kind] = [iv for iv in ivs if iv.heard > cutoff]
        # The oldest kept run's end: the newest run's could be one bad timestamp far ahead.
        horizon = min(run.end for run in self._runs) - KEPT_S
        for kind, ivs in self._mutes.items():
            if ivs and ivs[0].end < horizon:
                del ivs[:bisect.bisect_left(ivs, horizon, key=lambda iv: iv.end)]
