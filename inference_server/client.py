"""LiveClient: the one client of the live inference server (OBS filters, demo publisher, tests).

It loads inside OBS's embedded Python, so it imports only the standard library, numpy,
websockets and our protocol/regions/errors modules, and it never spawns a process.

The caller's thread (OBS's render or audio thread) only copies into shared memory and
reads dictionaries; everything else runs in one background thread with its own asyncio
loop, which blocks only in select() (GIL released).  Privacy first: any frame or sample the
client cannot vouch for (server dead, dropped, deadline passed) is reported fail-closed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import AuthError, PrivaStreamError, ProtocolError, StateError
from .mute_ledger import FAILCLOSED, MuteLedger
from .protocol import (CONTROL_PATH, FORMAT_F32_PLANAR, FORMAT_RGBA8, HEARTBEAT_TIMEOUT_S, KIND_AUDIO, KIND_VIDEO,
                       LOGIN_TIMEOUT_S, MAX_AUDIO_CHANNELS, MAX_AUDIO_SAMPLES, MAX_CONTROL_BYTES, MAX_FRAME_SIDE,
                       ROLE_CLIENT, ROLE_SERVER, Auth, AudioNotice, Bye, Challenge, Decision, ErrorReply, FrameNotice,
                       Heartbeat, Hello, MuteUpdate, RingAnnounce, SettingsUpdate, Welcome, auth_proof, check_nonce,
                       decision_from_message, new_nonce, parse_message, proof_matches, read_state_file)
from .regions import FrameDecision
from .shm import RingWriter, reclaim_stale_segments, slot_size_for_video

log = logging.getLogger("privastream.client")

VIDEO_SLOTS = 6
"""200 ms of 30 fps: the server copies a frame out as soon as its notice arrives."""
AUDIO_SLOTS = 64
AUDIO_SLOT_SIZE = 8 * 4096 * 4
"""8 channels of 4096 samples; OBS hands 1024 frames per call."""
DECISIONS_KEPT = 1024
OUTBOX_LIMIT = 256
RECONNECT_BACKOFF_S = (0.05, 1.0)
WATCHDOG_PERIOD_S = 0.01
STALL_RECONNECT_S = 1.0
"""A server silent this long is dropped and dialled again; a shorter silence only sets the "failclosed" state
(frames undecided at their deadline are covered either way)."""
OLD_RING_GRACE_S = 2.0
"""A replaced ring stays linked this long, so the server can still read frames already announced in it."""


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


def _expect(msg, cls):
    """``msg`` if it is a ``cls`` message; the server's refusal or anything else raises."""
    if isinstance(msg, ErrorReply):
        raise ProtocolError(f"server refused the session: {msg.message}")
    if not isinstance(msg, cls):
        raise ProtocolError(f"expected {cls.type}, got {msg.type}")
    return msg


def _fail_closed(reason: str) -> FrameDecision:
    return FrameDecision(regions=[], fail_closed=True, reason=reason)


class LiveClient:
    """One source's session with the live server; see the module docstring and docs/protocol.md."""

    def __init__(self, source: str = "source", kind: str = KIND_VIDEO, delay_s: float = 1.0,
                 settings: dict | None = None, host: str = "127.0.0.1", port: int | None = None,
                 token: str | None = None, stream: str = "default", state_file: Path | None = None):
        if kind not in (KIND_VIDEO, KIND_AUDIO):
            raise ValueError(f"kind must be 'video' or 'audio' (got {kind!r})")
        self.source, self.kind, self.stream = source, kind, stream
        self.delay_s = float(delay_s)
        self._settings = dict(settings or {})
        self._host, self._port, self._token, self._state_file = host, port, token, state_file
        self._lock = threading.Lock()
        self._decisions: collections.OrderedDict[int, FrameDecision] = collections.OrderedDict()
        self._pending: dict[int, float] = {}  # frame_id -> deadline (monotonic)
        self._latencies: collections.deque[float] = collections.deque(maxlen=120)
        self._decided_at: collections.deque[float] = collections.deque(maxlen=240)
        self._misses: collections.deque[float] = collections.deque(maxlen=64)
        self._ledger = MuteLedger()
        self._last_rx = 0.0
        self._stop: asyncio.Event | None = None
        self._rings: list[RingWriter] = []
        self._generation = 0
        self._announced = -1
        self._state = "connecting"
        self._message = "connecting to the inference server"
        self._ring_problem = ""
        self._server_stats: dict = {}
        self._connected = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outbox: asyncio.Queue | None = None
        self._ws = None
        reclaim_stale_segments()
        self._thread = threading.Thread(target=self._thread_main, name=f"privastream-client-{source}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ caller side (non-blocking)

    def submit_frame(self, frame_id: int, pts: float, rgba: np.ndarray, captured: float | None = None) -> bool:
        """Copy one RGBA frame into shared memory and announce it; False if it was dropped.

        ``captured``: time.monotonic() when the frame was taken, if earlier than now (OBS reads a
        frame back one render later, and a lagging OBS renders seldom): its deadline, D later, runs
        from then, since that is when it will be shown.  A dropped frame is decided fail-closed at
        once, so the caller covers it.
        """
        now = time.monotonic()
        taken = now if captured is None else min(float(captured), now)
        problem = self._check_frame(frame_id, rgba)
        if problem is None and not self._connected:
            problem = "not connected to the inference server"
        if problem is None:
            with self._lock:  # pending before the notice goes out: the decision may come back at once
                self._pending[frame_id] = taken + self.delay_s
            try:
                ring = self._ring_for(FORMAT_RGBA8, slot_size_for_video(rgba.shape[1], rgba.shape[0]))
                slot, seq = ring.write(rgba, frame_id, float(pts), taken)
                problem = self._post(FrameNotice(frame_id=frame_id, generation=self._generation, slot=slot, seq=seq))
            except (PrivaStreamError, OSError, ValueError) as exc:
                problem = f"could not hand the frame over ({exc})"
        if problem is not None:
            with self._lock:
                self._store_decision(frame_id, _fail_closed(problem))
        return problem is None

    def submit_audio(self, pts: float, planar: np.ndarray, sample_rate: int = 48000) -> bool:
        """Copy one planar float32 packet into shared memory; False (and muted) if it was dropped."""
        problem = None
        n = planar.shape[-1] if isinstance(planar, np.ndarray) and planar.ndim == 2 else 0
        if not (isinstance(planar, np.ndarray) and planar.ndim == 2 and planar.dtype == np.float32
                and 0 < planar.shape[0] <= MAX_AUDIO_CHANNELS and 0 < n <= MAX_AUDIO_SAMPLES):
            problem = "audio must be a (channels, n) float32 array"
        elif not self._connected:
            problem = "not connected to the inference server"
        else:
            try:
                ring = self._ring_for(FORMAT_F32_PLANAR, max(AUDIO_SLOT_SIZE, planar.nbytes))
                slot, seq = ring.write(planar, 0, float(pts), time.monotonic(), sample_rate=int(sample_rate))
                problem = self._post(AudioNotice(generation=self._generation, slot=slot, seq=seq))
            except (PrivaStreamError, OSError, ValueError) as exc:
                problem = f"could not hand the audio over ({exc})"
        end = float(pts) + (n / sample_rate if sample_rate > 0 else 0.0)
        with self._lock:
            if problem is None:
                self._ledger.handed_over(float(pts), end)
            else:
                self._ledger.refused(float(pts), end)
        return problem is None

    def frame_decision(self, frame_id: int) -> FrameDecision | None:
        """The final decision for a frame, or None while it may still come (the caller covers at its deadline)."""
        with self._lock:
            decision = self._decisions.get(frame_id)
            if decision is None:
                deadline = self._pending.get(frame_id)
                if deadline is not None and time.monotonic() >= deadline:
                    decision = self._miss(frame_id, "no decision before the deadline")
            return decision

    def audio_decision(self, start_pts: float, end_pts: float) -> tuple[list[tuple[float, float, str]], float]:
        """Mute intervals overlapping [start, end) and the pts from which audio in it is not decided
        (mute_ledger.py: the audio's clock may have gone back or jumped since).

        While the server is silent, everything after that pts is reported as a "failclosed"
        interval, so the caller mutes it even if it ignored the mark.
        """
        with self._lock:
            out, decided = self._ledger.decision(start_pts, end_pts)
            from_pts = max(start_pts, decided)
            if self._state == "failclosed" and end_pts > decided and not any(
                    s <= from_pts and e >= end_pts for s, e, _ in out):
                out.append((from_pts, end_pts, FAILCLOSED))
            return out, decided

    @property
    def status(self) -> ClientStatus:
        with self._lock:
            now = time.monotonic()
            recent = [t for t in self._decided_at if now - t <= 2.0]
            fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
            latency = statistics.median(self._latencies) * 1000 if self._latencies else 0.0
            state, message = self._state, self._message
            if state == "connected" and self._ring_problem:
                state, message = "failclosed", self._ring_problem
            elif state == "connected" and any(now - t <= 2.0 for t in self._misses):
                state = "late"
            return ClientStatus(state=state, latency_ms=round(latency, 1), fps=round(fps, 1),
                                detections=dict(self._server_stats.get("cadence_hz", {})), message=message)

    def update_settings(self, settings: dict) -> None:
        self._settings.update(settings)
        if "delay_s" in settings:
            self.delay_s = float(settings["delay_s"])
        self._post(SettingsUpdate(settings=dict(self._settings), delay_s=self.delay_s))

    def close(self) -> None:
        """Say bye, stop the thread and unlink the shared memory.  Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._post(Bye())
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._stop_event_set)
            except RuntimeError:  # loop just closed
                pass
        self._thread.join(timeout=2.0)
        for ring in self._rings:
            ring.close()
        self._rings.clear()
        with self._lock:
            for frame_id in list(self._pending):
                self._miss(frame_id, "client closed")

    def __enter__(self) -> "LiveClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ helpers used from both threads

    @staticmethod
    def _check_frame(frame_id: int, rgba) -> str | None:
        if not isinstance(rgba, np.ndarray) or rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
            return "frame must be an HxWx4 uint8 array"
        if not (0 < rgba.shape[0] <= MAX_FRAME_SIDE and 0 < rgba.shape[1] <= MAX_FRAME_SIDE):
            return f"frame size {rgba.shape[1]}x{rgba.shape[0]} is outside 1..{MAX_FRAME_SIDE}"
        if not isinstance(frame_id, int) or frame_id < 0:
            return "frame_id must be a non-negative int"
        return None

    def _ring_for(self, fmt: int, slot_size: int) -> RingWriter:
        """The current ring, or a new one (announced before the next notice) if this payload does not fit."""
        ring = self._rings[-1] if self._rings else None
        if ring is None or ring.header.slot_size < slot_size:
            try:
                ring = RingWriter(fmt, VIDEO_SLOTS if fmt == FORMAT_RGBA8 else AUDIO_SLOTS, slot_size)
            except StateError as exc:  # no room in /dev/shm: every frame or packet fails closed until there is
                self._set_ring_problem(str(exc))
                raise
            self._set_ring_problem("")
            self._rings.append(ring)
            self._generation += 1
            problem = self._post(RingAnnounce(name=ring.name, generation=self._generation))
            if problem:
                raise PrivaStreamError(problem)
            self._rings = [r for r in self._rings if not r.segment.mm.closed]
            if len(self._rings) > 1 and self._loop is not None:
                self._loop.call_soon_threadsafe(self._loop.call_later, OLD_RING_GRACE_S, self._rings[-2].close)
        return ring

    def _set_ring_problem(self, problem: str) -> None:
        """Say in the status, and once in the log, why no ring can be made, and when it can again."""
        with self._lock:
            before, self._ring_problem = self._ring_problem, problem
        if problem and problem != before:
            log.error("_ring_for() | %s; covering everything [source:%s]", problem, self.source)
        elif before and not problem:
            log.info("_ring_for() | shared memory available again [source:%s]", self.source)

    def _post(self, msg) -> str | None:
        """Queue a message for the background thread; a reason string if it cannot be sent."""
        loop, outbox = self._loop, self._outbox
        if loop is None or outbox is None or loop.is_closed():
            return "client thread is not running"
        if outbox.qsize() >= OUTBOX_LIMIT:
            return "control channel is backed up"
        try:
            loop.call_soon_threadsafe(outbox.put_nowait, msg)
        except RuntimeError:
            return "client thread is not running"
        return None

    def _store_decision(self, frame_id: int, decision: FrameDecision) -> None:
        self._pending.pop(frame_id, None)
        self._decisions[frame_id] = decision
        while len(self._decisions) > DECISIONS_KEPT:
            self._decisions.popitem(last=False)

    def _miss(self, frame_id: int, reason: str) -> FrameDecision:
        """Lock held: decide a frame fail-closed because no decision can be trusted for it."""
        decision = _fail_closed(reason)
        self._store_decision(frame_id, decision)
        self._misses.append(time.monotonic())
        return decision

    def _stop_event_set(self) -> None:
        if self._stop is not None:
            self._stop.set()

    # ------------------------------------------------------------ background thread

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception:  # the thread must never die silently: say so, and the caller covers everything
            log.exception("_thread_main() | client thread crashed [source:%s]", self.source)
            with self._lock:
                self._state, self._message = "failclosed", "client thread crashed; covering everything"
                self._connected = False

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self._outbox = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        watchdog = asyncio.create_task(self._watchdog())
        backoff = RECONNECT_BACKOFF_S[0]
        while not self._stop.is_set():
            try:
                await self._session()
                backoff = RECONNECT_BACKOFF_S[0]
            except (OSError, asyncio.TimeoutError, PrivaStreamError) as exc:
                self._disconnected(str(exc) or exc.__class__.__name__)
            except Exception as exc:  # websockets' handshake and close errors
                self._disconnected(f"{exc.__class__.__name__}: {exc}")
            if self._stop.is_set():
                break
            try:
                await asyncio.wait_for(self._stop.wait(), backoff)
            except asyncio.TimeoutError:
                pass
            backoff = min(backoff * 2, RECONNECT_BACKOFF_S[1])
        watchdog.cancel()

    def _disconnected(self, why: str) -> None:
        with self._lock:
            was = self._connected
            self._connected = False
            self._ws = None
            if was or self._state != "connecting":
                self._state = "failclosed"
            message = f"inference server unavailable ({why}); covering everything"
            # Once per reason: a reconnect attempt that fails the same way every second is not news.
            news, self._message = message != self._message, message
            for frame_id in list(self._pending):
                self._miss(frame_id, "inference server unavailable")
            self._ledger.connection_lost()
        if (was or news) and not self._closed:
            log.warning("_disconnected() | %s [source:%s]", why, self.source)

    async def _session(self) -> None:
        from websockets.asyncio.client import connect

        port, token = self._port, self._token
        if port is None or token is None:
            state_port, state_token = read_state_file(self._state_file)
            port, token = port or state_port, token or state_token
        uri = f"ws://{self._host}:{port}{CONTROL_PATH}"
        async with connect(uri, max_size=MAX_CONTROL_BYTES, open_timeout=1.0, ping_interval=None,
                           compression=None, close_timeout=0.2) as ws:
            while not self._outbox.empty():  # notices of the last connection refer to frames already failed
                self._outbox.get_nowait()
            reply = await self._login(ws, port, token)
            self._last_rx = time.monotonic()
            self._ws = ws
            if self._rings:
                await ws.send(bytes(RingAnnounce(name=self._rings[-1].name, generation=self._generation)))
            with self._lock:
                self._state, self._message, self._connected = "connected", "connected", True
            log.info("_session() | connected [source:%s kind:%s session:%d]", self.source, self.kind, reply.session)
            sender = asyncio.create_task(self._send_loop(ws))
            stopper = asyncio.create_task(self._stop.wait())
            receiver = asyncio.create_task(self._recv_loop(ws))
            done, pending = await asyncio.wait({sender, receiver, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            for task in done:
                if task is not stopper and task.exception() is not None:
                    raise task.exception()
            if self._stop.is_set():
                try:
                    while not self._outbox.empty():
                        await ws.send(bytes(self._outbox.get_nowait()))
                except Exception:
                    pass
            raise ConnectionError("connection closed")

    async def _login(self, ws, port: int, token: str) -> Welcome:
        """hello -> challenge -> auth -> welcome.  The token never leaves this process, and the settings
        go out only once the challenge has proven that the peer knows the token too."""
        nonce = new_nonce()
        async with asyncio.timeout(LOGIN_TIMEOUT_S):
            await ws.send(bytes(Hello(nonce=nonce, source=self.source, kind=self.kind, delay_s=self.delay_s,
                                      stream=self.stream, pid=os.getpid())))
            challenge = _expect(parse_message(await ws.recv()), Challenge)
            check_nonce(challenge.nonce, "server")
            if not proof_matches(challenge.proof, token, ROLE_SERVER, nonce, challenge.nonce):
                raise AuthError(f"the process on port {port} cannot prove that it knows the token: it is not the "
                                "inference server, or this token is stale")
            await ws.send(bytes(Auth(proof=auth_proof(token, ROLE_CLIENT, nonce, challenge.nonce),
                                     settings=self._settings)))
            return _expect(parse_message(await ws.recv()), Welcome)

    async def _send_loop(self, ws) -> None:
        while True:
            msg = await self._outbox.get()
            await ws.send(bytes(msg))

    async def _recv_loop(self, ws) -> None:
        async for raw in ws:
            self._last_rx = time.monotonic()
            if self._state == "failclosed":
                with self._lock:
                    self._state, self._message = "connected", "connected (server answered again)"
            try:
                msg = parse_message(raw)
            except ProtocolError as exc:
                log.warning("_recv_loop() | ignoring a bad message from the server: %s", exc)
                continue
            if isinstance(msg, Decision):
                self._on_decision(msg)
            elif isinstance(msg, MuteUpdate):
                self._on_mute(msg)
            elif isinstance(msg, Heartbeat):
                self._server_stats = msg.stats
            elif isinstance(msg, ErrorReply):
                log.warning("_recv_loop() | server error [code:%s]: %s", msg.code, msg.message)
                with self._lock:
                    self._message = f"server: {msg.message}"
                if msg.fatal:
                    raise ProtocolError(msg.message)

    def _on_decision(self, msg: Decision) -> None:
        try:
            decision = decision_from_message(msg)
        except ProtocolError as exc:
            decision = _fail_closed(str(exc))
        now = time.monotonic()
        with self._lock:
            deadline = self._pending.get(msg.frame_id)
            if deadline is None:  # already failed (deadline, outage) or never ours: keep what we said
                return
            if now >= deadline:
                self._miss(msg.frame_id, "decision arrived after the deadline")
                return
            self._latencies.append(now - (deadline - self.delay_s))
            self._decided_at.append(now)
            self._store_decision(msg.frame_id, decision)

    def _on_mute(self, msg: MuteUpdate) -> None:
        with self._lock:
            self._ledger.update([tuple(m) for m in msg.intervals if len(m) == 3], msg.decided_until)

    async def _watchdog(self) -> None:
        """Every 10 ms: a silent server is a dead server; a frame past its deadline is failed."""
        while True:
            await asyncio.sleep(WATCHDOG_PERIOD_S)
            now = time.monotonic()
            ws = self._ws
            silent = now - self._last_rx
            if ws is not None and self._connected and silent > STALL_RECONNECT_S:
                self._disconnected(f"no heartbeat for {int(silent * 1000)} ms")
                asyncio.ensure_future(ws.close())
            elif ws is not None and self._connected and silent > HEARTBEAT_TIMEOUT_S:
                with self._lock:
                    if self._state != "failclosed":
                        log.warning("_watchdog() | server silent [ms:%d source:%s]", silent * 1000, self.source)
                    # Starved or hung.  Frames in flight keep their deadlines: an answer that still comes
                    # in time is as sound as any (a hiccup of 150 ms must not blank D seconds of video),
                    # and one that does not is covered below.  Audio past the watermark is muted.
                    self._state = "failclosed"
                    self._message = (f"inference server silent for {int(silent * 1000)} ms; "
                                     "covering what it has not decided")
            with self._lock:
                for frame_id, deadline in list(self._pending.items()):
                    if now >= deadline:
                        self._miss(frame_id, "no decision before the deadline")
