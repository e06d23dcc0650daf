"""The demo's media: a generated clip redacted live through the same client/server path OBS uses.

Like the OBS filters, the demo submits each frame and audio chunk D seconds
before it is shown, and shows it with the final decision the server sent for
it: regions covered, or the whole frame covered and the audio muted when no
decision came in time (fail closed).
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections import deque

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import AUDIO_PTIME

from inference_server.client import LiveClient
from inference_server.masking import MaskOptions, apply_masks, cover_all
from inference_server.speech import MuteInterval, render
from scripts.synthclip import Clip, speak

log = logging.getLogger("privastream.demo")

DEMO_SPEECH = (
    "Hi everyone, welcome back to the stream. If you want to reach me, my phone number is "
    "five five five, one two three, four five six seven. Today we are looking at the new update."
)


class RedactedVideo:
    """frames(index) -> the redacted RGB frame to show at index; submits frame index + K meanwhile."""

    def __init__(self, clip: Clip, client: LiveClient, delay_s: float, masks: MaskOptions):
        self.clip, self.client, self.masks = clip, client, masks
        self.lookahead = max(1, round(delay_s * clip.fps))
        self._pending: deque[tuple[int, np.ndarray]] = deque()
        self._next_submit = 0
        self.shown = self.failed_closed = 0

    def _source(self, index: int) -> np.ndarray:
        return self.clip.frame(index % self.clip.frames)[0]

    def __call__(self, index: int) -> np.ndarray:
        while self._next_submit <= index + self.lookahead:
            i = self._next_submit
            rgb = self._source(i)
            rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
            self.client.submit_frame(i, i / self.clip.fps, rgba)
            self._pending.append((i, rgb))
            self._next_submit += 1
        while self._pending and self._pending[0][0] < index:
            self._pending.popleft()
        frame = self._pending[0][1].copy() if self._pending else self._source(index)
        decision = self.client.frame_decision(index)
        self.shown += 1
        if decision is None or decision.fail_closed:
            self.failed_closed += 1
            return cover_all(frame)
        return apply_masks(frame, decision.regions, self.masks)


class RedactedAudioTrack(MediaStreamTrack):
    """Speech with PII, looped, sent D ahead to the server and played back with its mute intervals."""

    kind = "audio"

    def __init__(self, client: LiveClient, delay_s: float, bleep_mode: str = "beep", sample_rate: int = 48000):
        super().__init__()
        self.client, self.delay_s, self.bleep_mode, self.rate = client, delay_s, bleep_mode, sample_rate
        speech = speak(DEMO_SPEECH, sample_rate=sample_rate)
        self.loop = np.concatenate([np.zeros(sample_rate // 2, np.float32), speech, np.zeros(sample_rate, np.float32)])
        self.chunk = int(AUDIO_PTIME * sample_rate)
        self._sent = 0  # samples played
        self._submitted = 0  # samples handed to the server
        self._start: float | None = None
        self.muted_chunks = self.chunks = 0

    def _samples(self, start: int, n: int) -> np.ndarray:
        idx = (np.arange(start, start + n)) % len(self.loop)
        return self.loop[idx]

    async def recv(self) -> av.AudioFrame:
        self._start = self._start or time.monotonic()
        await asyncio.sleep(max(0.0, self._start + self._sent / self.rate - time.monotonic()))
        ahead = self._sent + int(self.delay_s * self.rate)
        while self._submitted < ahead + self.chunk:
            block = self._samples(self._submitted, self.chunk)
            self.client.submit_audio(self._submitted / self.rate, block[None, :], self.rate)
            self._submitted += self.chunk
        t0, t1 = self._sent / self.rate, (self._sent + self.chunk) / self.rate
        pcm = self._samples(self._sent, self.chunk)[None, :].copy()
        intervals, decided = self.client.audio_decision(t0, t1)
        self.chunks += 1
        if decided < t1:
            pcm[:] = 0.0  # undecided speech is never played
            self.muted_chunks += 1
        elif intervals:
            pcm = render(pcm, self.rate, t0, [MuteInterval(s, e, k) for s, e, k in intervals], self.bleep_mode)
        stereo = np.repeat((np.clip(pcm[0], -1, 1) * 32767).astype(np.int16), 2).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
        frame.sample_rate, frame.pts = self.rate, self._sent
        frame.time_base = fractions.Fraction(1, self.rate)
        self._sent += self.chunk
        return frame
