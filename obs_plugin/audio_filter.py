""""PrivaStream Audio Filter": delays audio by the video filter's delay and bleeps what the server marks.

Every packet OBS hands in is sent to the client undelayed, written into a sample ring at the
place OBS will play it, and replaced by the samples from exactly D earlier on that timeline, where
D is the video delay line's K frame times (same rounding as the video filter, so both stay in
sync).  Before going out, `inference_server.playout.play_audio` (the demo's too) bleeps those
samples on the intervals `client.audio_decision` returns and mutes, sample by sample, anything past
`decided_until`, or everything when there is no server (fail closed).  This filter's own part is
placing packets on OBS's timeline and cutting them where its timestamps jump.
"""

from __future__ import annotations

import bisect
import ctypes
import logging
import math
import threading
import time

import numpy as np

from inference_server.playout import play_audio

from .client_link import CallTimer, LinkedFilter
from .libobs import MAX_AV_PLANES, LibObs, ObsAudioData
from .properties import audio_properties
from .settings import delay_frames, settings_from_data, video_frame_time_s

log = logging.getLogger("privastream.obs.audio")

HISTORY_S = 8.0
"""Samples kept beyond the delay: a packet stamped up to CLOCK_RESET_S back overlaps what is there."""
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
STAMP_TOLERANCE_S = 1e-6
"""Stamps this close to where the previous packet's would be are the same clock (OBS rounds to ns)."""


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
        k = delay_frames(self.settings.delay_s, video_frame_time_s(self.obs))
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
        return audio_properties(self.obs, self.status_shown, self.settings.fails_open)

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

    def _clocks(self, first: int, n: int) -> list[tuple[int, int, float]]:
        """[first, first+n) cut where the stamps jump: (lo, hi, stamp of sample lo) for each piece.

        Each piece is on one clock, and is asked about on its own: across a jump OBS smoothed over,
        the stamps move on by up to 70 ms, and across a new clock they go back, so neither the
        packet's first stamp nor one range of stamps stands for all of its samples."""
        i = max(bisect.bisect_right(self.marks_index, first) - 1, 0)
        pieces: list[tuple[int, int, float]] = []
        at = first
        while at < first + n:
            stop = min(self.marks_index[i + 1] if i + 1 < len(self.marks_index) else first + n, first + n)
            pts = self.marks_pts[i] + (at - self.marks_index[i]) / self.rate
            if pieces and abs(pieces[-1][2] + (at - pieces[-1][0]) / self.rate - pts) < STAMP_TOLERANCE_S:
                pieces[-1] = (pieces[-1][0], stop, pieces[-1][2])
            else:
                pieces.append((at, stop, pts))
            at, i = stop, i + 1
        return pieces

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
        client = self.client  # one read: update() may swap the client
        muted = play_audio(out, out_first, self._clocks(max(out_first, 0), out_first + n - max(out_first, 0)),
                           client.audio_decision if client is not None else None, self.rate,
                           self.settings.bleep_mode, self.settings.fails_open)
        if muted != self.muted_logged:
            self.muted_logged = muted
            level = logging.WARNING if muted else logging.INFO
            log.log(level, "filter_audio() | %s [source:%s, reason:%s]", "muting" if muted else "unmuted",
                    self.name, self.problem or "span not decided in time" if muted else "decided")
