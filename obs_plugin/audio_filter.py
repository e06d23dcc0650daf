""""PrivaStream Audio Filter": delays audio by the video filter's delay and bleeps what the server marks.

Every packet OBS hands in is sent to the client undelayed, written into a sample ring at the
place OBS will play it, and replaced by the samples from exactly D earlier on that timeline, where
D is the video delay line's K frame times (same rounding as the video filter, so both stay in
sync).  Before going out, those samples are bleeped on the intervals `client.audio_decision`
returns; anything past `decided_until`, or everything when there is no server, is muted (fail
closed).
"""

from __future__ import annotations

import bisect
import ctypes
import logging
import math
import threading
import time

import numpy as np

from . import bleep
from .client_link import CallTimer, LinkedFilter
from .libobs import MAX_AV_PLANES, LibObs, ObsAudioData
from .properties import audio_properties
from .settings import delay_frames, settings_from_data, video_frame_time_s

log = logging.getLogger("privastream.obs.audio")

HISTORY_S = 8.0
"""Samples kept beyond the delay, so a reversed bleep can read its whole interval."""
SMOOTHING_S = 0.07
"""OBS's TS_SMOOTHING_THRESHOLD: a packet stamped this close to the end of the previous one is
played right after it (obs-source.c, source_output_audio_data, which runs after the filters), so
the ring places it there too.  A larger gap or overlap OBS keeps, and so does the ring: counting
samples through it would shift the delayed audio against the video by the jump for up to D."""
JUMP_LOG_S = 10.0
"""Kept jumps are logged at most this often (a bursty microphone can jump several times a second)."""
CLOCK_RESET_S = 2.0
"""OBS's MAX_TS_VAR: a timestamp this far back is a new clock, not an overlap; OBS re-times it to
follow on, and so does the ring."""


class AudioFilter(LinkedFilter):
    kind = "audio"

    def __init__(self, obs: LibObs, source: int, settings_data: int):
        audio = obs.obs_get_audio()
        self.rate = int(obs.audio_output_get_sample_rate(audio)) or 48000
        self.channels = min(int(obs.audio_output_get_channels(audio)) or 2, MAX_AV_PLANES)
        self.lock = threading.Lock()
        self._link(obs, source, settings_from_data(obs, settings_data))
        self.timer = CallTimer("filter_audio", self.name)
        self.muted_logged = False
        self.jumps_unlogged, self.jump_logged_at = 0, -math.inf
        self._reset_ring()

    def _reset_ring(self) -> None:
        k = delay_frames(self.settings["delay_s"], video_frame_time_s(self.obs))
        self.delay_samples = round(k * video_frame_time_s(self.obs) * self.rate)
        self.capacity = self.delay_samples + int(HISTORY_S * self.rate)
        self.ring = np.zeros((self.channels, self.capacity), np.float32)
        self.end = 0  # ring index just past the newest sample
        self.next_pts: float | None = None  # where OBS expects the next packet, as its next_audio_ts_min
        self.marks_index: list[int] = []
        self.marks_pts: list[float] = []

    # --- settings and panel -------------------------------------------------------------
    def update(self, settings_data: int) -> None:
        new = settings_from_data(self.obs, settings_data)
        with self.lock:
            if self._apply_settings(new):
                self._reset_ring()

    def properties(self) -> int:
        self.status_shown = self.status()
        return audio_properties(self.obs, self.status_shown, self.settings["fail_policy"])

    def destroy(self) -> None:
        with self.lock:
            self._drop_client("filter destroyed")

    def filter_remove(self, _parent: int) -> None:
        with self.lock:
            self._drop_client("filter removed")

    # --- sample ring --------------------------------------------------------------------
    def _place(self, pts: float) -> tuple[int, float]:
        """Ring index of a packet stamped `pts`, and the time OBS will play it at."""
        jump = 0.0 if self.next_pts is None else pts - self.next_pts
        if abs(jump) < SMOOTHING_S:
            return self.end, pts if self.next_pts is None else self.next_pts
        if jump <= -CLOCK_RESET_S:
            return self.end, pts
        self.jumps_unlogged += 1
        if time.monotonic() - self.jump_logged_at >= JUMP_LOG_S:
            log.info("_place() | audio timestamps jumped, kept as a %s [source:%s, ms:%.1f, jumps:%d]",
                     "gap" if jump > 0 else "overlap", self.name, jump * 1000, self.jumps_unlogged)
            self.jumps_unlogged, self.jump_logged_at = 0, time.monotonic()
        return self.end + round(jump * self.rate), pts

    def _write(self, x: np.ndarray, pts: float) -> int:
        """Stores one packet where OBS will play it; returns its ring index."""
        n = x.shape[1]
        start, played_at = self._place(pts)
        self.next_pts = played_at + n / self.rate
        silent = min(start - self.end, self.capacity)  # a kept gap plays as silence, D later
        if silent > 0:
            self._store(np.zeros((self.channels, silent), np.float32), start - silent)
        self._store(x, start)
        cut = bisect.bisect_left(self.marks_index, start)  # an overlap replaces what was there
        del self.marks_index[cut:], self.marks_pts[cut:]
        self.marks_index.append(start)
        self.marks_pts.append(pts)
        if len(self.marks_index) > 4096:
            del self.marks_index[:2048], self.marks_pts[:2048]
        self.end = start + n
        return start

    def _store(self, x: np.ndarray, start: int) -> None:
        n = x.shape[1]
        pos = start % self.capacity
        first = min(n, self.capacity - pos)
        self.ring[:, pos:pos + first] = x[:, :first]
        self.ring[:, : n - first] = x[:, first:]

    def _read(self, start: int, n: int) -> np.ndarray | None:
        """Samples [start, start+n) of the stream, zeros before the stream began; None if overwritten."""
        if start + n > self.end or start < self.end - self.capacity:
            return None
        out = np.zeros((self.channels, n), np.float32)
        lo = max(start, 0)
        idx = np.arange(lo, start + n) % self.capacity
        out[:, lo - start:] = self.ring[:, idx]
        return out

    def _pts_at(self, index: int) -> float:
        i = max(bisect.bisect_right(self.marks_index, index) - 1, 0)
        return self.marks_pts[i] + (index - self.marks_index[i]) / self.rate

    def _undecided_from(self, decided_until: float, first: int, n: int) -> int:
        """Offset of the first sample of [first, first+n) stamped at or after `decided_until`.

        Stamp by stamp, not from the packet's first one: across a jump OBS smoothed over, the
        stamps move on by up to 70 ms within the packet, and those samples may not be decided."""
        if decided_until == math.inf:
            return n
        if decided_until == -math.inf:
            return 0
        i = max(bisect.bisect_right(self.marks_index, first) - 1, 0)
        at = first
        while at < first + n:
            stop = min(self.marks_index[i + 1] if i + 1 < len(self.marks_index) else first + n, first + n)
            before = math.ceil((decided_until - self.marks_pts[i]) * self.rate) - (at - self.marks_index[i])
            if before < stop - at:
                return at - first + max(before, 0)
            at, i = stop, i + 1
        return at - first

    def _index_at(self, pts: float) -> int:
        """Ring index of the sample stamped `pts`.  Across a jump OBS smoothed over, the stamps skip
        forward by up to 70 ms: a time in that skip belongs to the next mark's first sample, not to
        samples past it (a bleep starting there would leave those out)."""
        i = max(bisect.bisect_right(self.marks_pts, pts) - 1, 0)
        index = self.marks_index[i] + round((pts - self.marks_pts[i]) * self.rate)
        return index if i + 1 == len(self.marks_index) else min(index, self.marks_index[i + 1])

    # --- per packet (audio thread) ------------------------------------------------------
    def filter_audio(self, audio_ptr: int) -> int:
        self.timer.start()
        with self.lock:
            packet = ObsAudioData.from_address(audio_ptr)
            planes = [ctypes.cast(packet.data[c], ctypes.POINTER(ctypes.c_float))
                      for c in range(self.channels) if packet.data[c]]
            n = int(packet.frames)
            if not planes or n == 0:
                return audio_ptr
            x = np.stack([np.ctypeslib.as_array(p, shape=(n,)) for p in planes])
            if len(planes) < self.channels:
                x = np.vstack([x, np.repeat(x[-1:], self.channels - len(planes), axis=0)])
            pts = packet.timestamp / 1e9
            if self.client is not None:
                self.client.submit_audio(pts, x, sample_rate=self.rate)
            out_first = self._write(x, pts) - self.delay_samples
            out = self._read(out_first, n)
            if out is None:
                out = np.zeros_like(x)
            if out_first + n > 0:  # any real sample in this packet needs a decision
                self._apply_decisions(out, out_first, n)
            for c, p in enumerate(planes):
                np.ctypeslib.as_array(p, shape=(n,))[:] = out[c]
        self.timer.stop()
        return audio_ptr

    def _apply_decisions(self, out: np.ndarray, out_first: int, n: int) -> None:
        start = self._pts_at(out_first)
        end = self._pts_at(out_first + n - 1) + 1 / self.rate  # a smoothed jump may lie inside
        fade_s = bleep.fade_samples(self.rate) / self.rate  # a span's fade may start in this packet
        fail_open = self.settings["fail_policy"] == "open"
        if self.client is None:
            intervals, decided_until = [], (math.inf if fail_open else -math.inf)
        else:
            intervals, decided_until = self.client.audio_decision(start - fade_s, end + fade_s)
        mode = self.settings["bleep_mode"]
        # The client's own "failclosed" spans (server gone, packet dropped) are muted, not bleeped;
        # fail open skips them: the user's explicit choice, warned about in the panel.
        spans = [bleep.Span(self._index_at(s), self._index_at(e), "silence" if kind == "failclosed" else mode)
                 for s, e, kind in intervals if not (fail_open and kind == "failclosed")]

        def mirrored(span, lo, hi):
            # Reversed speech: output sample j plays source sample span.first + span.stop - 1 - j.
            src = self._read(span.first + span.stop - (out_first + hi), hi - lo)
            return None if src is None else src[:, ::-1]

        bleep.render(out, out_first, spans, self.rate, mirrored)
        undecided_from = n if fail_open else self._undecided_from(decided_until, out_first, n)
        out[:, undecided_from:] = 0.0
        muted = undecided_from < n
        if muted != self.muted_logged:
            self.muted_logged = muted
            level = logging.WARNING if muted else logging.INFO
            log.log(level, "filter_audio() | %s [source:%s, reason:%s]", "muting" if muted else "unmuted",
                    self.name, self.problem or "span not decided in time" if muted else "decided")
