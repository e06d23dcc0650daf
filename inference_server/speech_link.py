"""Mouth blur on the live path: the audio sessions a video session follows tell it when to cover mouths.

Sessions opened with the same ``stream`` key (protocol.Hello) belong to one OBS scene: while
a spoken secret is bleeped, lips could still give it away, so the video decisions of that
stream get ``kind="mouth"`` regions over every face (``speech.mouth_regions``).  Audio and
video pts are on the same stream clock (OBS timestamps).

A stream often has several audio sessions (the microphone, desktop audio), each decided at
its own pace.  A video session follows the audio sessions its ``mouth_audio_sources``
setting names (their OBS source names), or, when it names none, every audio session of its
stream; a frame is decided for mouths only once *each* of them is decided past it (its
``decided_until``), so a fast track never lets a frame out before a slower one's bleeps are
known.  A frame whose deadline comes first gets every mouth covered ("failclosed"), never an
uncovered mouth during an unknown bleep, and so does every frame while a named source has no
audio session.  A video session that follows no audio session has nothing to bleep and no
mouth regions.
"""

from __future__ import annotations

import threading
import time

from .regions import Region

KEPT_S = 30.0
"""Mute intervals further than this from the newest decided audio (behind it, or ahead of it on a
clock that has since gone back) are forgotten."""
SILENT_S = 0.5
"""An audio session that has received nothing for this long (OBS sends a packet every 21 ms) is
silent: a source without an audio track, a stopped or hidden one.  Audio that never comes cannot be
bleeped, so its video does not wait for it past the end of what it did receive."""


class AudioTrack:
    """What one audio session has decided: its mute intervals and its mark on the audio's real clock."""

    def __init__(self, source: str):
        self.source = source
        self._lock = threading.Lock()
        self._intervals: list[tuple[float, float, str]] = []
        self.decided_until = float("-inf")
        self._heard_until = float("-inf")
        self._heard_at = time.monotonic()

    def add(self, intervals, decided_until: float) -> None:
        """New mute intervals ([start, end, kind] each) and the session's newest mark.  The mark is
        taken as it is, not as a maximum: after a clock reset the audio is decided only up to it."""
        with self._lock:
            self._intervals.extend((float(s), float(e), str(k)) for s, e, k in intervals)
            self.decided_until = decided_until
            self._intervals = [iv for iv in self._intervals
                               if decided_until - KEPT_S < iv[1] and iv[0] < decided_until + KEPT_S]

    def heard(self, end_pts: float) -> None:
        """A packet ending at ``end_pts`` reached the session (taken as it is: clocks restart)."""
        with self._lock:
            self._heard_until, self._heard_at = end_pts, time.monotonic()

    def decided_past(self, t: float, pad: float) -> bool:
        """True when no bleep within ``pad`` of t can still be announced: the session decided past it,
        or it has gone silent (SILENT_S) before t - pad."""
        with self._lock:
            silent = time.monotonic() - self._heard_at > SILENT_S and self._heard_until <= t - pad
            return self.decided_until >= t + pad or silent

    def near(self, t: float, pad: float) -> list[tuple[float, float, str]]:
        with self._lock:
            return [iv for iv in self._intervals if iv[0] - pad <= t < iv[1] + pad]


class SpeechLinks:
    """The server's audio tracks by stream, and the links its video sessions read them through."""

    def __init__(self):
        self._lock = threading.Lock()
        self._tracks: dict[str, list[AudioTrack]] = {}

    def open(self, stream: str, source: str) -> AudioTrack:
        track = AudioTrack(source)
        with self._lock:
            self._tracks.setdefault(stream, []).append(track)
        return track

    def close(self, stream: str, track: AudioTrack) -> None:
        with self._lock:
            tracks = self._tracks.get(stream, [])
            if track in tracks:
                tracks.remove(track)
            if not tracks:
                self._tracks.pop(stream, None)

    def tracks(self, stream: str) -> list[AudioTrack]:
        with self._lock:
            return list(self._tracks.get(stream, ()))

    def follow(self, stream: str, sources: tuple[str, ...] = ()) -> "SpeechLink":
        return SpeechLink(self, stream, sources)


class SpeechLink:
    """The audio one video session's mouth blur follows (read by its scheduler)."""

    def __init__(self, links: SpeechLinks, stream: str, sources: tuple[str, ...] = ()):
        self._links, self._stream = links, stream
        self.sources = sources
        """Audio source names followed; empty: every audio session of the stream."""

    def _followed(self) -> tuple[list[AudioTrack], bool]:
        """The tracks followed, and whether a named source has no audio session (nothing vouches for it)."""
        tracks = self._links.tracks(self._stream)
        if not self.sources:
            return tracks, False
        named = [tr for tr in tracks if tr.source in self.sources]
        return named, not set(self.sources) <= {tr.source for tr in named}

    def waiting(self, t: float) -> bool:
        """True while a bleep around t may still be announced (the caller holds the frame at t back)."""
        from .speech.mouth import MOUTH_PAD_S

        tracks, missing = self._followed()
        return missing or not all(tr.decided_past(t, MOUTH_PAD_S) for tr in tracks)

    def mouths(self, t: float, regions: list[Region], final: bool) -> list[Region] | None:
        """Mouth regions for a frame at t showing ``regions``' faces.

        None while the audio is not decided around t and ``final`` is False (the caller may
        wait); with final=True an undecided t covers every mouth.
        """
        tracks, missing = self._followed()
        if not tracks and not missing:
            return []  # no audio followed: nothing is bleeped (and no speech import needed)
        from .speech import FAILCLOSED, MuteInterval, mouth_regions
        from .speech.mouth import MOUTH_PAD_S

        if self.waiting(t):
            if not final:
                return None
            return mouth_regions(t, regions, [MuteInterval(t, t, FAILCLOSED)])
        # Called for every pending frame, often: only the few intervals near t become objects.
        near = [iv for tr in tracks for iv in tr.near(t, MOUTH_PAD_S)]
        return mouth_regions(t, regions, [MuteInterval(*iv) for iv in near])
