"""The demo's media: a generated clip redacted live through the same client/server path OBS uses.

Like the OBS filters, the demo submits each frame and audio chunk D seconds
before it is shown, and plays it out the way they do (`inference_server.playout`):
regions covered, or the whole frame covered when no decision came in time, and
audio bleeped where decided and muted, sample by sample, where not (fail closed).
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import threading
import time
from collections import Counter

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import AUDIO_PTIME

from inference_server.client import LiveClient
from inference_server.masking import MaskOptions, apply_masks, cover_all
from inference_server.playout import DelayLine, frame_cover, play_audio
from privastream_testkit.scenes import Clip
from privastream_testkit.speech import speak

log = logging.getLogger("privastream.demo")

DEMO_SPEECH = (
    "Hi everyone, welcome back to the stream. If you want to reach me, my phone number is "
    "five five five, one two three, four five six seven. Today we are looking at the new update."
)


class RedactedVideo:
    """Redacted frames of the clip at its frame rate, prepared on a thread of their own.

    The thread submits frame i + K (K = D x fps) and finishes frame i with its decision,
    paced by the wall clock.  ``frames(index)`` (the publisher's callback, on its event
    loop) never waits: it returns the newest finished frame, so a slow moment repeats
    a frame instead of stalling audio and RTCP.
    """

    def __init__(self, clip: Clip, client: LiveClient, delay_s: float, masks: MaskOptions, epoch: float):
        self.clip, self.client, self.masks, self.epoch = clip, client, masks, epoch
        self.lookahead = max(1, round(delay_s * clip.fps))
        self.shown = self.failed_closed = 0
        self.reasons: Counter[str] = Counter()  # why frames were covered whole, for the status line
        self._rgba: dict[int, np.ndarray] = {}  # the clip loops: render each frame once
        self._latest = cover_all(clip.frame(0)[0])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="demo-video")
        self._thread.start()

    def _source(self, index: int) -> np.ndarray:
        """RGBA frame of the looping clip."""
        key = index % self.clip.frames
        if key not in self._rgba:
            rgb = self.clip.frame(key)[0]
            self._rgba[key] = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
        return self._rgba[key]

    def _run(self) -> None:
        # Like OBS: at wall-clock frame n, frame n is submitted (the camera's newest) and the frame
        # due D later is shown with its decision.  The first K frames have nothing to show yet.
        fps = self.clip.fps
        line = DelayLine(self.lookahead / fps, 1 / fps)
        start = self.epoch
        n, submitted = 0, -1
        while not self._stop.is_set():
            # When behind, skip ahead rather than drift.
            n = max(n, int((time.monotonic() - start) * fps))
            for i in range(max(submitted + 1, n - self.lookahead), n + 1):
                self.client.submit_frame(i, i / fps, self._source(i))
                line.push(i, i / fps, self._source(i))
            submitted = n
            due = line.due(n / fps)
            if due is not None:
                frame = due[1][..., :3].copy()
                regions, whole, reason = frame_cover(self.client.frame_decision(due[0]), False, None, "no decision")
                if whole:
                    self.failed_closed += 1
                    self.reasons[reason] += 1
                    frame = cover_all(frame)
                else:
                    frame = apply_masks(frame, regions, self.masks)
                self._latest = frame
                self.shown += 1
            n += 1
            self._stop.wait(max(0.0, start + n / fps - time.monotonic()))

    def __call__(self, index: int) -> np.ndarray:
        return self._latest

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


class RedactedAudioTrack(MediaStreamTrack):
    """Speech with PII, looped, sent D ahead to the server and played back with its mute intervals."""

    kind = "audio"

    def __init__(self, client: LiveClient, delay_s: float, epoch: float, bleep_mode: str = "beep",
                 sample_rate: int = 48000):
        super().__init__()
        self.client, self.delay_s, self.bleep_mode, self.rate = client, delay_s, bleep_mode, sample_rate
        self.epoch = epoch
        speech = speak(DEMO_SPEECH, sample_rate=sample_rate)
        self.loop = np.concatenate([np.zeros(sample_rate // 2, np.float32), speech, np.zeros(sample_rate, np.float32)])
        self.chunk = int(AUDIO_PTIME * sample_rate)
        self._sent = 0  # samples played; the speech they come from is delay_s older
        self._lag = int(delay_s * sample_rate)
        self._start: float | None = None  # audio starts when the peer asks for it, after the video
        self.muted_chunks = self.chunks = 0

    def _samples(self, start: int, n: int) -> np.ndarray:
        idx = (np.arange(start, start + n)) % len(self.loop)
        return self.loop[idx]

    async def recv(self) -> av.AudioFrame:
        self._start = self._start or time.monotonic()
        await asyncio.sleep(max(0.0, self._start + self._sent / self.rate - time.monotonic()))
        offset = self._start - self.epoch  # pts of the first sample, on the video's clock
        # Like a microphone: the newest chunk goes to the server now; what plays is delay_s older.
        self.client.submit_audio(offset + self._sent / self.rate, self._samples(self._sent, self.chunk)[None, :],
                                 self.rate)
        played = self._sent - self._lag  # absolute index of the first sample played now
        pcm = self._samples(played, self.chunk)[None, :].copy()
        pcm[:, :min(max(-played, 0), self.chunk)] = 0.0  # before the speech began: nothing yet
        first = max(played, 0)
        pieces = [(first, played + self.chunk, offset + first / self.rate)] if played + self.chunk > first else []
        self.chunks += 1
        if play_audio(pcm, played, pieces, self.client.audio_decision, self.rate, self.bleep_mode, False):
            self.muted_chunks += 1  # chunks with a sample not decided in time (muted)
        stereo = np.repeat((np.clip(pcm[0], -1, 1) * 32767).astype(np.int16), 2).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
        frame.sample_rate, frame.pts = self.rate, self._sent
        frame.time_base = fractions.Fraction(1, self.rate)
        self._sent += self.chunk
        return frame
