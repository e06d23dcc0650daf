"""Mouth blur on the live path: the audio sessions of a stream tell its video sessions when to cover mouths.

Sessions opened with the same ``stream`` key (protocol.Hello) belong to one OBS scene: while
a spoken secret is bleeped, lips could still give it away, so the video decisions of that
stream get ``kind="mouth"`` regions over every face (``speech.mouth_regions``).  Audio and
video pts are on the same stream clock (OBS timestamps).

The audio redactor decides later than the video scheduler could (it needs the words around
a number), so a video frame is decided for mouths only once the audio is decided past it
(its ``decided_until``); a frame whose deadline comes first gets every mouth covered
("failclosed"), never an uncovered mouth during an unknown bleep.  A stream with no audio
session has nothing to bleep and no mouth regions.
"""

from __future__ import annotations

import threading

from .regions import Region

KEPT_S = 30.0
"""Mute intervals older than this (behind the newest decided audio) are forgotten."""


class SpeechLink:
    """The mute intervals of one stream's audio sessions, read by its video sessions' schedulers."""

    def __init__(self):
        self._lock = threading.Lock()
        self._intervals: list = []
        self.decided_until = float("-inf")
        self.audio_sessions = 0

    def count_audio(self, delta: int) -> None:
        """+1 when an audio session of the stream opens, -1 when it closes."""
        with self._lock:
            self.audio_sessions = max(0, self.audio_sessions + delta)

    def add(self, intervals, decided_until: float) -> None:
        """New mute intervals ([start, end, kind] each) and the audio's decided-up-to pts."""
        with self._lock:
            self._intervals.extend((float(s), float(e), str(k)) for s, e, k in intervals)
            self.decided_until = max(self.decided_until, decided_until)
            horizon = self.decided_until - KEPT_S
            self._intervals = [iv for iv in self._intervals if iv[1] > horizon]

    def waiting(self, t: float) -> bool:
        """True while a bleep around t may still be announced (the caller holds the frame at t back)."""
        with self._lock:
            if self.audio_sessions == 0:
                return False  # without an audio session no new bleep can come
            undecided = self.decided_until
        from .speech.mouth import MOUTH_PAD_S

        return undecided < t + MOUTH_PAD_S

    def mouths(self, t: float, regions: list[Region], final: bool) -> list[Region] | None:
        """Mouth regions for a frame at t showing ``regions``' faces.

        None while the audio is not decided around t and ``final`` is False (the caller may
        wait); with final=True an undecided t covers every mouth.
        """
        with self._lock:
            if self.audio_sessions == 0 and not self._intervals:
                return []  # no audio on this stream: nothing is bleeped (and no speech import needed)
        from .speech import FAILCLOSED, MuteInterval, mouth_regions
        from .speech.mouth import MOUTH_PAD_S

        if self.waiting(t):
            if not final:
                return None
            return mouth_regions(t, regions, [MuteInterval(t, t, FAILCLOSED)])
        with self._lock:
            # Called for every pending frame, often: only the few intervals near t become objects.
            near = [iv for iv in self._intervals if iv[0] - MOUTH_PAD_S <= t < iv[1] + MOUTH_PAD_S]
        return mouth_regions(t, regions, [MuteInterval(*iv) for iv in near])
