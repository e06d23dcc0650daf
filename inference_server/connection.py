"""A live client's link to the inference server: the websocket thread, login, reconnects, its rings.

It loads inside OBS's embedded Python (client.py says what that allows).  Everything here runs in
one background thread with its own asyncio loop, which blocks only in select() (GIL released);
the caller's thread only posts messages and writes into shared memory.  What the server decides
goes to the owner's ``on_message``; an outage to ``on_lost`` (the owner fails closed what it was
waiting for); ``on_tick(now)`` runs every WATCHDOG_PERIOD_S (the owner expires its deadlines).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import AuthError, PrivaStreamError, ProtocolError, StateError
from .protocol import (CONTROL_PATH, FORMAT_RGBA8, HEARTBEAT_TIMEOUT_S, LOGIN_TIMEOUT_S, MAX_CONTROL_BYTES,
                       ROLE_CLIENT, ROLE_SERVER, Auth, Bye, Challenge, ErrorReply, Heartbeat, Hello, Message,
                       RingAnnounce, SettingsUpdate, Welcome, auth_proof, check_nonce, new_nonce, parse_message,
                       proof_matches, read_state_file)
from .settings import Settings, as_settings, check_delay
from .shm import RingWriter, reclaim_stale_segments

log = logging.getLogger("privastream.client")

VIDEO_SLOTS = 6
"""200 ms of 30 fps: the server copies a frame out as soon as its notice arrives."""
AUDIO_SLOTS = 64
OUTBOX_LIMIT = 256
RECONNECT_BACKOFF_S = (0.05, 1.0)
WATCHDOG_PERIOD_S = 0.01
STALL_RECONNECT_S = 1.0
"""A server silent this long is dropped and dialled again; a shorter silence only sets the "failclosed" state
(frames undecided at their deadline are covered either way)."""
OLD_RING_GRACE_S = 2.0
"""A replaced ring stays linked this long, so the server can still read frames already announced in it."""


def _expect(msg, cls):
    """``msg`` if it is a ``cls`` message; the server's refusal or anything else raises."""
    if isinstance(msg, ErrorReply):
        raise ProtocolError(f"server refused the session: {msg.message}")
    if not isinstance(msg, cls):
        raise ProtocolError(f"expected {cls.type}, got {msg.type}")
    return msg


class ServerConnection:
    """One source's connection, dialled again whenever it drops, until ``close``."""

    def __init__(self, source: str, kind: str, stream: str, delay_s: float, settings: Settings | dict | None, *,
                 host: str, port: int | None, token: str | None, state_file: Path | None,
                 on_message: Callable[[Message], None], on_lost: Callable[[], None],
                 on_tick: Callable[[float], None]):
        self.source, self.kind, self.stream = source, kind, stream
        self.delay_s = check_delay(float(delay_s))
        self.settings = as_settings(settings)
        """Both checked here: a D or a setting the server would refuse is the caller's error, said at once
        (refused at each login instead, the client would dial again and again)."""
        self._host, self._port, self._token, self._state_file = host, port, token, state_file
        self._on_message, self._on_lost, self._on_tick = on_message, on_lost, on_tick
        self._lock = threading.Lock()
        self._last_rx = 0.0
        self._stop: asyncio.Event | None = None
        self._rings: list[RingWriter] = []
        self._generation = 0
        self._state = "connecting"
        self._message = "connecting to the inference server"
        self._ring_problem = ""
        self.server_stats: dict = {}
        """What the server's last heartbeat said about this session."""
        self.connected = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outbox: asyncio.Queue | None = None
        self._ws = None
        reclaim_stale_segments()
        self._thread = threading.Thread(target=self._thread_main, name=f"privastream-client-{source}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ caller side (non-blocking)

    @property
    def state(self) -> tuple[str, str]:
        """(connecting | connected | failclosed, why); a ring that cannot be made fails everything closed."""
        with self._lock:
            if self._state == "connected" and self._ring_problem:
                return "failclosed", self._ring_problem
            return self._state, self._message

    def hand_over(self, fmt: int, slot_size: int, array: np.ndarray, frame_id: int, pts: float, taken: float,
                  sample_rate: int = 0) -> tuple[int, int, int]:
        """Copy ``array`` into this client's ring -> (generation, slot, seq) for the notice.
        Raises PrivaStreamError, OSError or ValueError when it cannot."""
        ring = self._ring_for(fmt, slot_size)
        slot, seq = ring.write(array, frame_id, pts, taken, sample_rate=sample_rate)
        return self._generation, slot, seq

    def post(self, msg: Message) -> str | None:
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

    def update_settings(self, changes: dict) -> None:
        """The settings with ``changes`` (wire keys) replaced, sent whole; ProtocolError names a bad one."""
        self.settings = self.settings.updated(changes)
        if "delay_s" in changes:
            self.delay_s = self.settings.delay_s
        self.post(SettingsUpdate(settings=self.settings, delay_s=self.delay_s))

    def close(self) -> None:
        """Say bye, stop the thread and unlink the shared memory.  Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.post(Bye())
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

    # ------------------------------------------------------------ rings

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
            problem = self.post(RingAnnounce(name=ring.name, generation=self._generation))
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

    # ------------------------------------------------------------ background thread

    def _stop_event_set(self) -> None:
        if self._stop is not None:
            self._stop.set()

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception:  # the thread must never die silently: say so, and the caller covers everything
            log.exception("_thread_main() | client thread crashed [source:%s]", self.source)
            with self._lock:
                self._state, self._message = "failclosed", "client thread crashed; covering everything"
                self.connected = False

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
            was = self.connected
            self.connected = False
            self._ws = None
            if was or self._state != "connecting":
                self._state = "failclosed"
            message = f"inference server unavailable ({why}); covering everything"
            # Once per reason: a reconnect attempt that fails the same way every second is not news.
            news, self._message = message != self._message, message
        self._on_lost()
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
                self._state, self._message, self.connected = "connected", "connected", True
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
                                     settings=self.settings)))
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
            if isinstance(msg, Heartbeat):
                self.server_stats = msg.stats
            elif isinstance(msg, ErrorReply):
                log.warning("_recv_loop() | server error [code:%s]: %s", msg.code, msg.message)
                with self._lock:
                    self._message = f"server: {msg.message}"
                if msg.fatal:
                    raise ProtocolError(msg.message)
            else:
                self._on_message(msg)

    async def _watchdog(self) -> None:
        """Every 10 ms: a silent server is a dead server; the owner expires what passed its deadline."""
        while True:
            await asyncio.sleep(WATCHDOG_PERIOD_S)
            now = time.monotonic()
            ws = self._ws
            silent = now - self._last_rx
            if ws is not None and self.connected and silent > STALL_RECONNECT_S:
                self._disconnected(f"no heartbeat for {int(silent * 1000)} ms")
                asyncio.ensure_future(ws.close())
            elif ws is not None and self.connected and silent > HEARTBEAT_TIMEOUT_S:
                with self._lock:
                    if self._state != "failclosed":
                        log.warning("_watchdog() | server silent [ms:%d source:%s]", silent * 1000, self.source)
                    # Starved or hung.  Frames in flight keep their deadlines: an answer that still comes
                    # in time is as sound as any (a hiccup of 150 ms must not blank D seconds of video),
                    # and one that does not is covered by the owner.  Audio past the watermark is muted.
                    self._state = "failclosed"
                    self._message = (f"inference server silent for {int(silent * 1000)} ms; "
                                     "covering what it has not decided")
            self._on_tick(now)
