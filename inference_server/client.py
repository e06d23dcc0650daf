"""LiveClient: the one client of the live inference server (OBS filters, demo publisher, tests).

It loads inside OBS's embedded Python, so it imports only the standard library, numpy,
websockets and our protocol/regions/errors modules, and it never spawns a process.

``LiveClient(kind=...)`` is a VideoClient (submit_frame, frame_decision) or an AudioClient
(submit_audio, audio_decision).  The caller's thread (OBS's render or audio thread) only copies
into shared memory and reads dictionaries; the connection (connection.py) runs in one background
thread.  Privacy first: any frame or sample the client cannot vouch for (server dead, dropped,
deadline passed) is reported fail-closed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .connection import ServerConnection
from .errors import PrivaStreamError, ProtocolError
from .frame_ledger import FrameLedger
from .mute_ledger import FAILCLOSED, MuteLedger
from .protocol import (FORMAT_F32_PLANAR, FORMAT_RGBA8, KIND_AUDIO, KIND_VIDEO, MAX_AUDIO_CHANNELS, MAX_AUDIO_SAMPLES,
                       MAX_FRAME_SIDE, AudioNotice, Decision, FrameNotice, Message, MuteUpdate, decision_from_message)
from .regions import FrameDecision
from .settings import Settings
from .shm import slot_size_for_video

AUDIO_SLOT_SIZE = 8 * 4096 * 4
"""8 channels of 4096 samples; OBS hands 1024 frames per call."""


@dataclass
class ClientStatus:
    state: str
    """connecting | connected | late | failclosed"""
    latency_ms: float = 0.0
    """Median submit -> final decision over the last frames."""
    fps: float = 0.0
    """Final decisions per second."""
    detections: dict = field(default_factory=dict)
    """Detector runs per second by kind, as the server reports them."""
    message: str = ""


class LiveClient:
    """One source's session with the live server; see the module docstring and docs/protocol.md."""

    kind = ""

    def __new__(cls, source: str = "source", kind: str | None = None, *args, **kwargs):
        if cls is LiveClient:
            kind = kind or KIND_VIDEO
            if kind not in CLIENTS:
                raise ValueError(f"kind must be 'video' or 'audio' (got {kind!r})")
            cls = CLIENTS[kind]
        return super().__new__(cls)

    def __init__(self, source: str = "source", kind: str | None = None, delay_s: float = 1.0,
                 settings: Settings | dict | None = None, host: str = "127.0.0.1", port: int | None = None,
                 token: str | None = None, stream: str = "default", state_file: Path | None = None):
        """``kind``: KIND_VIDEO or KIND_AUDIO; LiveClient's default is video, and a VideoClient or
        AudioClient knows its own."""
        if kind is not None and kind != self.kind:
            raise ValueError(f"a {type(self).__name__} is not for kind {kind!r}")
        self.source, self.stream = source, stream
        self._connection = ServerConnection(source, self.kind, stream, delay_s, settings or {}, host=host, port=port,
                                            token=token, state_file=state_file, on_message=self._on_message,
                                            on_lost=self._on_lost, on_tick=self._on_tick)

    @property
    def delay_s(self) -> float:
        return self._connection.delay_s

    @property
    def status(self) -> ClientStatus:
        state, message = self._connection.state
        latency, fps, late = self._figures()
        if state == "connected" and late:
            state = "late"
        return ClientStatus(state=state, latency_ms=round(latency, 1), fps=round(fps, 1),
                            detections=dict(self._connection.server_stats.get("cadence_hz", {})), message=message)

    def update_settings(self, changes: dict) -> None:
        """Replace the settings ``changes`` names (wire keys; a "delay_s" among them moves the deadlines)."""
        self._connection.update_settings(changes)

    def close(self) -> None:
        """Say bye, stop the thread and unlink the shared memory.  Safe to call twice."""
        self._connection.close()
        self._on_closed()

    def __enter__(self) -> "LiveClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ what each kind adds

    def _figures(self) -> tuple[float, float, bool]:
        """(latency in ms, decisions per second, whether something was decided late lately)."""
        return 0.0, 0.0, False

    def _on_message(self, msg: Message) -> None:
        """A decision message from the server (background thread)."""

    def _on_lost(self) -> None:
        """The server went away: fail closed whatever waited for it (background thread)."""

    def _on_tick(self, now: float) -> None:
        """Every few ms on the background thread."""

    def _on_closed(self) -> None:
        """After close."""


class VideoClient(LiveClient):
    kind = KIND_VIDEO

    def __init__(self, *args, **kwargs):
        self._frames = FrameLedger()
        super().__init__(*args, **kwargs)

    def submit_frame(self, frame_id: int, pts: float, rgba: np.ndarray, captured: float | None = None) -> bool:
        """Copy one RGBA frame into shared memory and announce it; False if it was dropped.

        ``captured``: time.monotonic() when the frame was taken, if earlier than now (OBS reads a
        frame back one render later, and a lagging OBS renders seldom): its deadline, D later, runs
        from then, since that is when it will be shown.  A dropped frame is decided fail-closed at
        once, so the caller covers it.
        """
        now = time.monotonic()
        taken = now if captured is None else min(float(captured), now)
        conn = self._connection
        problem = _check_frame(frame_id, rgba)
        if problem is None and not conn.connected:
            problem = "not connected to the inference server"
        if problem is None:
            self._frames.expect(frame_id, taken, taken + conn.delay_s)
            try:
                generation, slot, seq = conn.hand_over(FORMAT_RGBA8, slot_size_for_video(rgba.shape[1], rgba.shape[0]),
                                                       rgba, frame_id, float(pts), taken)
                problem = conn.post(FrameNotice(frame_id=frame_id, generation=generation, slot=slot, seq=seq))
            except (PrivaStreamError, OSError, ValueError) as exc:
                problem = f"could not hand the frame over ({exc})"
        if problem is not None:
            self._frames.refuse(frame_id, problem)
        return problem is None

    def frame_decision(self, frame_id: int) -> FrameDecision | None:
        """The final decision for a frame, or None while it may still come (the caller covers at its deadline)."""
        return self._frames.decision(frame_id)

    def _figures(self) -> tuple[float, float, bool]:
        return self._frames.figures()

    def _on_message(self, msg: Message) -> None:
        if isinstance(msg, Decision):
            try:
                decision = decision_from_message(msg)
            except ProtocolError as exc:
                decision = FrameDecision(regions=[], fail_closed=True, reason=str(exc))
            self._frames.answer(msg.frame_id, decision)

    def _on_lost(self) -> None:
        self._frames.fail_pending("inference server unavailable")

    def _on_tick(self, now: float) -> None:
        self._frames.expire()

    def _on_closed(self) -> None:
        self._frames.fail_pending("client closed")


class AudioClient(LiveClient):
    kind = KIND_AUDIO

    def __init__(self, *args, **kwargs):
        self._lock = threading.Lock()
        self._mutes = MuteLedger()
        super().__init__(*args, **kwargs)

    def submit_audio(self, pts: float, planar: np.ndarray, sample_rate: int = 48000) -> bool:
        """Copy one planar float32 packet into shared memory; False (and muted) if it was dropped."""
        problem = None
        conn = self._connection
        n = planar.shape[-1] if isinstance(planar, np.ndarray) and planar.ndim == 2 else 0
        if not (isinstance(planar, np.ndarray) and planar.ndim == 2 and planar.dtype == np.float32
                and 0 < planar.shape[0] <= MAX_AUDIO_CHANNELS and 0 < n <= MAX_AUDIO_SAMPLES):
            problem = "audio must be a (channels, n) float32 array"
        elif not conn.connected:
            problem = "not connected to the inference server"
        else:
            try:
                generation, slot, seq = conn.hand_over(FORMAT_F32_PLANAR, max(AUDIO_SLOT_SIZE, planar.nbytes), planar,
                                                       0, float(pts), time.monotonic(), sample_rate=int(sample_rate))
                problem = conn.post(AudioNotice(generation=generation, slot=slot, seq=seq))
            except (PrivaStreamError, OSError, ValueError) as exc:
                problem = f"could not hand the audio over ({exc})"
        end = float(pts) + (n / sample_rate if sample_rate > 0 else 0.0)
        with self._lock:
            if problem is None:
                self._mutes.handed_over(float(pts), end)
            else:
                self._mutes.refused(float(pts), end)
        return problem is None

    def audio_decision(self, start_pts: float, end_pts: float) -> tuple[list[tuple[float, float, str]], float]:
        """Mute intervals overlapping [start, end) and the pts from which audio in it is not decided
        (mute_ledger.py: the audio's clock may have gone back or jumped since).

        While the server is silent, everything after that pts is reported as a "failclosed"
        interval, so the caller mutes it even if it ignored the mark.
        """
        silent = self._connection.state[0] == "failclosed"
        with self._lock:
            out, decided = self._mutes.decision(start_pts, end_pts)
        from_pts = max(start_pts, decided)
        if silent and end_pts > decided and not any(s <= from_pts and e >= end_pts for s, e, _ in out):
            out.append((from_pts, end_pts, FAILCLOSED))
        return out, decided

    def _on_message(self, msg: Message) -> None:
        if isinstance(msg, MuteUpdate):
            with self._lock:
                self._mutes.update([tuple(m) for m in msg.intervals if len(m) == 3], msg.decided_until)

    def _on_lost(self) -> None:
        with self._lock:
            self._mutes.connection_lost()


CLIENTS: dict[str, type[LiveClient]] = {KIND_VIDEO: VideoClient, KIND_AUDIO: AudioClient}


def _check_frame(frame_id: int, rgba) -> str | None:
    if not isinstance(rgba, np.ndarray) or rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
        return "frame must be an HxWx4 uint8 array"
    if not (0 < rgba.shape[0] <= MAX_FRAME_SIDE and 0 < rgba.shape[1] <= MAX_FRAME_SIDE):
        return f"frame size {rgba.shape[1]}x{rgba.shape[0]} is outside 1..{MAX_FRAME_SIDE}"
    if not isinstance(frame_id, int) or frame_id < 0:
        return "frame_id must be a non-negative int"
    return None
