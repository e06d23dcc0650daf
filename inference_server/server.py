"""python -m inference_server serve: the live inference service.

One process, one asyncio loop (websockets) on 127.0.0.1 only:
- ``/control``: one websocket per client session (protocol: inference_server/protocol.py,
  docs/protocol.md).  Client and server first prove to each other that they know the token
  from the user-only state file; frames and audio arrive through the client's shared-memory ring.
- ``/`` and ``/stats.json`` on the same port: the dashboard (a browser page, or an OBS
  Custom Browser Dock where OBS has its browser plugin);
  the figures only for whoever presents the dashboard key.

Each video session (VideoSession) is scheduled by its decision thread and one detection thread
per detector group (inference_server/scheduler.py, publisher.py); the detectors themselves run
in child processes shared by all sessions, one per detector group
(inference_server/detect_worker.py), which read frames straight from the clients' rings,
so detection never holds this process's GIL and the loop keeps answering heartbeats.  This
process reads only a thumbnail of each frame, in place.  Nothing here writes a frame or a
sample anywhere but the client's own shared memory.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import logging
import math
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from .errors import AuthError, PrivaStreamError, ProtocolError, StateError
from .protocol import (CLIENT_KINDS, CONTROL_PATH, FORMAT_F32_PLANAR, FORMAT_RGBA8, HEARTBEAT_INTERVAL_S,
                       KIND_AUDIO, KIND_VIDEO, LOGIN_TIMEOUT_S, MAX_LOGIN_BYTES, ROLE_CLIENT, ROLE_SERVER, Auth,
                       AudioNotice, Bye, Challenge, ErrorReply, FrameNotice, Heartbeat, Hello, Message, MuteUpdate,
                       RingAnnounce, SettingsUpdate, Welcome, auth_proof, check_nonce, dashboard_key,
                       decision_to_message, dashboard_url, new_nonce, parse_message, proof_matches, state_file_path)
from .regions import FrameDecision
from .detect_worker import DetectWorker, FrameRef, WorkerDetector, start_workers
from .history import HISTORY_HEIGHT, HISTORY_WIDTH
from .publisher import PendingFrame
from .scheduler import LIVE_POLICIES, AudioScheduler, DetectionGate, VideoScheduler, preload_speech
from .shm import RingReader, SlotOverwritten, reclaim_stale_segments
from .stage_cpu import stage_cpu_seconds
from .settings import Settings
from .speech_link import SpeechLinks
from .vision import VisionEngine  # imported before serving: importing cv2 mid-session would stall the loop

log = logging.getLogger("privastream.server")

DEFAULT_PORT = 7788
WS_MAX_SIZE = 1 << 20
"""After login, websocket messages up to this size are read and then refused by parse_message with
an error reply (MAX_CONTROL_BYTES); larger ones close the connection (1009).  Before login the
limit is MAX_LOGIN_BYTES."""
MAX_LOGINS = 8
"""Connections still logging in at once; more are closed at once (1013): each may hold LOGIN_TIMEOUT_S."""
MAX_SESSIONS = 64
"""Logged-in sessions at once (a streamer has a few filters); more are refused (1013)."""
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
RINGS_KEPT = 2
"""A client replacing its ring (size change) may still have frames announced in the previous one."""
DASHBOARD_DIR = Path(__file__).with_name("dashboard")
DASHBOARD_FILES = {"/": ("index.html", "text/html; charset=utf-8"),
                   "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
                   "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8")}


# ---------------------------------------------------------------- state file

def write_state_file(path: Path, port: int | None, token: str | None) -> None:
    """Port and token for local clients, user-only (directory 0700, file 0600), replaced atomically.
    Without them the file says the server is warming up, so clients can say so while it loads."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    state = {"pid": os.getpid(), "port": port, "token": token} if port else {"pid": os.getpid(), "warming": True}
    with os.fdopen(fd, "w") as f:
        json.dump(state, f)
    os.replace(tmp, path)


def _running_server(path: Path) -> int | None:
    """pid of a live server that owns this state file, if any."""
    try:
        pid = int(json.loads(path.read_text())["pid"])
        os.kill(pid, 0)
        return pid if pid != os.getpid() else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ---------------------------------------------------------------- machine figures

class MachineStats:
    """CPU and memory of the server and its detection workers (psutil), GPU use (nvidia-smi, when there is one)."""

    def __init__(self):
        import psutil

        self._proc = psutil.Process()
        self._children: dict[int, object] = {}
        self._psutil = psutil
        self._proc.cpu_percent(None)
        psutil.cpu_percent(None)
        self.gpu: list[dict] | str = "none"
        self._nvidia_smi = shutil.which("nvidia-smi")
        if self._nvidia_smi:
            threading.Thread(target=self._poll_gpu, name="privastream-gpu-stats", daemon=True).start()

    def _poll_gpu(self) -> None:
        while True:
            try:
                out = subprocess.run([self._nvidia_smi, "--query-gpu=name,utilization.gpu,memory.used,memory.total",
                                      "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5)
                self.gpu = [dict(zip(("name", "util_percent", "mem_used_mb", "mem_total_mb"),
                                     (v.strip() for v in line.split(",")))) for line in out.stdout.splitlines()]
            except (OSError, subprocess.SubprocessError) as exc:
                self.gpu = f"nvidia-smi failed ({exc.__class__.__name__})"
            time.sleep(2.0)

    def _workers(self) -> list:
        """The detection worker processes, the same psutil objects between calls (cpu_percent needs them)."""
        try:
            alive = {p.pid: p for p in self._proc.children()}
        except self._psutil.Error:
            return []
        self._children = {pid: self._children.get(pid, p) for pid, p in alive.items()}
        return list(self._children.values())

    def snapshot(self) -> dict:
        cpu, rss = 0.0, 0
        for p in self._workers():
            try:
                cpu, rss = cpu + p.cpu_percent(None), rss + p.memory_info().rss
            except self._psutil.Error:  # a worker exiting meanwhile
                pass
        return {"cpu_percent": self._proc.cpu_percent(None), "system_cpu_percent": self._psutil.cpu_percent(None),
                "cores": os.cpu_count(), "rss_mb": round(self._proc.memory_info().rss / 2**20, 1),
                "workers_cpu_percent": cpu, "workers_rss_mb": round(rss / 2**20, 1), "gpu": self.gpu}


# ---------------------------------------------------------------- sessions

class Session:
    """One client connection: its rings and its outgoing queue (VideoSession and AudioSession add their
    scheduler and what their media notices carry)."""

    ring_format = 0
    """The format of the rings this kind of session reads (protocol.FORMAT_*)."""

    def __init__(self, server: "LiveServer", session_id: int, hello: Hello, settings: Settings,
                 loop: asyncio.AbstractEventLoop):
        self.server, self.id, self.hello, self.loop = server, session_id, hello, loop
        self.kind, self.source, self.stream = hello.kind, hello.source, hello.stream
        self.settings = settings
        self.delay_s = hello.delay_s
        self.started = time.monotonic()
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        self.rings: dict[int, RingReader] = {}
        self.scheduler: VideoScheduler | AudioScheduler

    def _send_threadsafe(self, msg: Message) -> None:
        """From a scheduler thread."""
        try:
            self.loop.call_soon_threadsafe(self.outbox.put_nowait, msg)
        except RuntimeError:  # loop closed at shutdown
            pass

    # called on the loop
    def handle(self, msg: Message) -> None:
        """Apply one client message; ProtocolError/StateError become error replies."""
        if isinstance(msg, (FrameNotice, AudioNotice)):
            self._on_media(msg)
        elif isinstance(msg, RingAnnounce):
            self._on_ring(msg)
        elif isinstance(msg, SettingsUpdate):
            # parse_message has checked the settings and the delay: nothing here can refuse them half-applied.
            if msg.delay_s > 0:
                self.delay_s = msg.delay_s
            old = self.settings.to_dict()
            changed = sorted(k for k, v in msg.settings.to_dict().items() if v != old[k])
            self.settings = msg.settings
            self._apply_settings(self.settings)
            log.info("handle() | settings updated [session:%d changed:%s]", self.id, ",".join(changed))
        elif isinstance(msg, Hello):
            raise StateError(f"session {self.id} already said hello")
        else:
            raise ProtocolError(f"a client may not send {msg.type!r} messages")

    def _on_media(self, msg: FrameNotice | AudioNotice) -> None:
        raise NotImplementedError

    def _apply_settings(self, settings: Settings) -> None:
        raise NotImplementedError

    def _on_ring(self, msg: RingAnnounce) -> None:
        if msg.generation in self.rings:
            return  # re-announced after a reconnect of the same client
        reader = RingReader(msg.name)
        if reader.header.kind != self.ring_format:
            reader.close()
            raise ProtocolError(f"ring {msg.name} has format {reader.header.kind}, a {self.kind} session needs "
                                f"{self.ring_format}")
        self.rings[msg.generation] = reader
        for old in sorted(self.rings)[:-RINGS_KEPT]:
            self.rings.pop(old).close()
        log.info("_on_ring() | attached [session:%d generation:%d slots:%d slot_size:%d]", self.id, msg.generation,
                 reader.header.slot_count, reader.header.slot_size)

    def _ring(self, generation: int) -> RingReader:
        ring = self.rings.get(generation)
        if ring is None:
            raise StateError(f"no ring of generation {generation} was announced (have {sorted(self.rings)})")
        return ring

    def stats(self, now: float) -> dict:
        return {"id": self.id, "source": self.source, "kind": self.kind, "stream": self.stream,
                "delay_s": self.delay_s, "connected_s": round(now - self.started, 1),
                "error": self.scheduler.error, **self.scheduler.stats.to_dict(now)}

    def close(self) -> None:
        self.scheduler.stop()
        for ring in self.rings.values():
            ring.close()
        self.rings.clear()


class VideoSession(Session):
    """A video source: frames checked for cuts as they arrive, decided by its VideoScheduler."""

    ring_format = FORMAT_RGBA8

    def __init__(self, *args):
        super().__init__(*args)
        self.last_frame_id = -1
        self.speech = self.server.speech.follow(self.stream, self.settings.mouth_audio_sources)
        # This engine only observes and decides (its detectors never load here): detection is the worker's.
        engine = VisionEngine(self.settings, policies=LIVE_POLICIES, follow=True)
        detector = WorkerDetector(self.server.workers, self.settings)
        self.scheduler = VideoScheduler(engine, detector, self.delay_s, self.server.gate, self._publish_decision,
                                        name=f"{self.id}", speech=self.speech)

    def _publish_decision(self, frame: PendingFrame, decision: FrameDecision) -> None:
        self._send_threadsafe(decision_to_message(frame.frame_id, decision))

    def _apply_settings(self, settings: Settings) -> None:
        self.speech.sources = self.settings.mouth_audio_sources
        self.scheduler.update_settings(settings, self.delay_s)

    def _on_media(self, msg: FrameNotice | AudioNotice) -> None:
        if not isinstance(msg, FrameNotice):
            raise StateError("a video session cannot take audio")
        if msg.frame_id <= self.last_frame_id:
            raise ProtocolError(f"frame {msg.frame_id} is out of order (last was {self.last_frame_id})")
        ring = self._ring(msg.generation)
        self.last_frame_id = msg.frame_id
        now = time.monotonic()
        try:
            header, thumb = ring.thumbnail(msg.slot, msg.seq, HISTORY_WIDTH, HISTORY_HEIGHT)
        except SlotOverwritten:
            # The pixels are gone: the frame is decided fail-closed (its pts is unknown: use now).
            self.scheduler.add_frame(msg.frame_id, float("-inf"), now, None)
            return
        if header.frame_id != msg.frame_id or not math.isfinite(header.pts):
            raise ProtocolError(f"slot {msg.slot} holds frame {header.frame_id} pts {header.pts}, "
                                f"not frame {msg.frame_id}")
        # The client's submit time sets the deadline; never trust one from the future.
        self.scheduler.add_frame(msg.frame_id, header.pts, min(header.submitted, now), thumb,
                                 size=(header.width, header.height), ref=FrameRef(ring.segment.name, msg.slot, msg.seq))


class AudioSession(Session):
    """An audio source: packets to its AudioScheduler, mute intervals to the client and to the stream's video."""

    ring_format = FORMAT_F32_PLANAR

    def __init__(self, *args):
        super().__init__(*args)
        self.track = self.server.speech.open(self.stream, self.source)
        self.scheduler = AudioScheduler(self.settings, self._publish_mute, self.delay_s, name=f"{self.id}")

    def _publish_mute(self, intervals: list, decided_until: float) -> None:
        self.track.add(intervals, decided_until)
        self._send_threadsafe(MuteUpdate(intervals=intervals, decided_until=decided_until))

    def _apply_settings(self, settings: Settings) -> None:
        self.scheduler.update_settings(settings)

    def _on_media(self, msg: FrameNotice | AudioNotice) -> None:
        if not isinstance(msg, AudioNotice):
            raise StateError("an audio session cannot take frames")
        ring = self._ring(msg.generation)
        try:
            header, planar = ring.read(msg.slot, msg.seq)
        except SlotOverwritten:
            raise ProtocolError(f"audio slot {msg.slot} was overwritten before it was read") from None
        if not math.isfinite(header.pts):
            raise ProtocolError(f"audio pts {header.pts} is not a number of seconds")
        # A pts behind the last one is taken: the source's clock restarted (a media source, a device
        # reconnecting), and the recogniser starts over on the new clock; refused, it played unanalysed.
        self.scheduler.add_packet(header.pts, planar, header.sample_rate, header.n_samples)
        self.track.heard(header.pts + header.n_samples / header.sample_rate)

    def close(self) -> None:
        super().close()
        self.server.speech.close(self.stream, self.track)


SESSIONS: dict[str, type[Session]] = {KIND_VIDEO: VideoSession, KIND_AUDIO: AudioSession}
"""The session each client kind opens (the login has checked the kind)."""


class LiveServer:
    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, token: str | None = None,
                 threads: int = 0, provider: str = "auto"):
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise StateError(f"the live server binds to loopback only (got --host {host})")
        self.host, self.port = host, port
        self.token = token or secrets.token_urlsafe(24)
        self.dashboard_key = dashboard_key(self.token)
        self.logins = 0
        self.workers = start_workers(threads, provider)
        self.gate = DetectionGate()
        self.sessions: dict[int, Session] = {}
        self.speech = SpeechLinks()
        """Every audio session's decisions, for the mouth blur of the video sessions that follow them."""
        self._ids = itertools.count(1)
        self.started = time.monotonic()
        self.machine = MachineStats()
        self.refused = 0
        self.protocol_errors = 0

    # ------------------------------------------------------------ HTTP side: dashboard and stats

    def _process_request(self, connection, request):
        from websockets.datastructures import Headers
        from websockets.http11 import Response

        host = request.headers.get("Host", "")
        if host.rsplit(":", 1)[0] not in LOOPBACK_NAMES:
            # A page on another site resolving its name to 127.0.0.1 (DNS rebinding) gets nothing.
            return connection.respond(403, "Forbidden host\n")
        path = request.path.split("?", 1)[0]
        if path == CONTROL_PATH:
            # Browsers let any page open a websocket to 127.0.0.1, but always say whose page it is;
            # our clients send no Origin.  Only the dashboard's own origin may (it has no use for it).
            origin = request.headers.get("Origin")
            if origin is not None and origin not in self._own_origins():
                self.refused += 1
                log.warning("_process_request() | refused a browser origin [origin:%s]", origin[:80])
                return connection.respond(403, "Forbidden origin\n")
            return None  # continue the websocket handshake
        if path == "/stats.json":
            if not self._holds_dashboard_key(request.headers.get("Authorization", "")):
                return connection.respond(403, "The figures need the dashboard key: open the dashboard URL "
                                          "the server printed\n")
            body, ctype = json.dumps(self.stats()).encode(), "application/json"
        elif path in DASHBOARD_FILES:
            name, ctype = DASHBOARD_FILES[path]
            body = (DASHBOARD_DIR / name).read_bytes()
        else:
            return connection.respond(404, "Not found\n")
        headers = Headers([("Content-Type", ctype), ("Content-Length", str(len(body))), ("Cache-Control", "no-store"),
                           ("Content-Security-Policy", "default-src 'self'"), ("X-Content-Type-Options", "nosniff")])
        return Response(200, "OK", headers, body)

    def _own_origins(self) -> set[str]:
        return {f"http://{name}:{self.port}" for name in LOOPBACK_NAMES}

    def _holds_dashboard_key(self, authorization: str) -> bool:
        scheme, _, key = authorization.partition(" ")
        return scheme == "Bearer" and hmac.compare_digest(key.strip().encode(), self.dashboard_key.encode())

    def stats(self) -> dict:
        now = time.monotonic()
        return {"server": {"pid": os.getpid(), "port": self.port, "uptime_s": round(now - self.started, 1),
                           "sessions": len(self.sessions), "refused": self.refused,
                           "protocol_errors": self.protocol_errors, **self.machine.snapshot(),
                           "cpu_s": stage_cpu_seconds({g: w.pid for g, w in self.workers.items()}),
                           "workers": {g: {"pid": w.pid, "restarts": w.restarts} for g, w in self.workers.items()}},
                "sessions": [s.stats(now) for s in list(self.sessions.values())]}

    # ------------------------------------------------------------ control channel

    async def _handler(self, ws) -> None:
        busy = (f"{MAX_LOGINS} connections are already logging in" if self.logins >= MAX_LOGINS else
                f"{MAX_SESSIONS} sessions are already open" if len(self.sessions) >= MAX_SESSIONS else "")
        if busy:
            self.refused += 1
            log.warning("_handler() | refused a connection: %s", busy)
            await _send_quietly(ws, ErrorReply(code="state", message=f"server busy: {busy}", fatal=True))
            await ws.close(1013)
            return
        self.logins += 1
        try:
            hello, auth = await self._login(ws)
        except (PrivaStreamError, asyncio.TimeoutError) as exc:
            self.refused += 1
            code = _error_code(exc) if isinstance(exc, PrivaStreamError) else "protocol"
            log.warning("_handler() | refused a connection [code:%s]: %s", code, exc)
            await _send_quietly(ws, ErrorReply(code=code, message=str(exc) or "no login in time", fatal=True))
            await ws.close(1008 if code == "auth" else 1002)
            return
        except Exception:  # the peer went away during the login (a client that found our proof wrong does)
            self.refused += 1
            return
        finally:
            self.logins -= 1
        # Logged in: the session's messages may be as big as WS_MAX_SIZE and get an error reply
        # when they break MAX_CONTROL_BYTES (the next message is still read under the login limit).
        ws.protocol.max_message_size = WS_MAX_SIZE
        try:
            session = SESSIONS[hello.kind](self, next(self._ids), hello, auth.settings,
                                           asyncio.get_running_loop())
        except PrivaStreamError as exc:
            await _send_quietly(ws, ErrorReply(code=_error_code(exc), message=str(exc), fatal=True))
            await ws.close(1011)
            return
        self.sessions[session.id] = session
        log.info("_handler() | session opened [session:%d source:%s kind:%s stream:%s delay:%.2f]", session.id,
                 hello.source, hello.kind, hello.stream, hello.delay_s)
        sender = asyncio.create_task(self._send_loop(ws, session))
        beats = asyncio.create_task(self._heartbeats(session))
        try:
            await ws.send(bytes(Welcome(session=session.id, server_pid=os.getpid())))
            async for raw in ws:
                try:
                    msg = parse_message(raw)
                    if isinstance(msg, Bye):
                        break
                    session.handle(msg)
                except PrivaStreamError as exc:
                    self.protocol_errors += 1
                    log.info("_handler() | error reply [session:%d]: %s", session.id, exc)
                    session.outbox.put_nowait(ErrorReply(code=_error_code(exc), message=str(exc)))
        except Exception as exc:  # connection lost: the client fails closed on its own
            log.info("_handler() | connection ended [session:%d]: %s", session.id, exc.__class__.__name__)
        finally:
            beats.cancel()
            sender.cancel()
            del self.sessions[session.id]
            await asyncio.get_running_loop().run_in_executor(None, session.close)
            reclaim_stale_segments()  # a client that was killed leaves its rings behind
            log.info("_handler() | session closed [session:%d]", session.id)

    async def _login(self, ws) -> tuple[Hello, Auth]:
        """hello -> challenge (with the server's proof) -> auth (with the client's), within LOGIN_TIMEOUT_S."""
        async with asyncio.timeout(LOGIN_TIMEOUT_S):
            hello = parse_message(await ws.recv())
            if not isinstance(hello, Hello):
                raise ProtocolError(f"the first message must be hello (got {hello.type})")
            check_nonce(hello.nonce, "client")
            if hello.kind not in CLIENT_KINDS:
                raise ProtocolError(f"kind must be one of {', '.join(CLIENT_KINDS)} (got {hello.kind[:20]!r})")
            nonce = new_nonce()
            await ws.send(bytes(Challenge(nonce=nonce, proof=auth_proof(self.token, ROLE_SERVER, hello.nonce, nonce))))
            auth = parse_message(await ws.recv())
        if not isinstance(auth, Auth):
            raise ProtocolError(f"the second message must be auth (got {auth.type})")
        if not proof_matches(auth.proof, self.token, ROLE_CLIENT, hello.nonce, nonce):
            raise AuthError("wrong token: the client's proof does not match (read the token from the server's "
                            "state file)")
        return hello, auth

    async def _send_loop(self, ws, session: Session) -> None:
        while True:
            msg = await session.outbox.get()
            await ws.send(bytes(msg))

    async def _heartbeats(self, session: Session) -> None:
        while True:
            now = time.monotonic()
            st = session.scheduler.stats
            session.outbox.put_nowait(Heartbeat(t=now, stats={"cadence_hz": st.cadence_hz(now),
                                                              "error": session.scheduler.error}))
            await asyncio.sleep(HEARTBEAT_INTERVAL_S)

    async def serve(self, ready: asyncio.Event | None = None, stop: asyncio.Event | None = None) -> None:
        from websockets.asyncio.server import serve

        async with serve(self._handler, self.host, self.port, process_request=self._process_request,
                         max_size=MAX_LOGIN_BYTES, ping_interval=None, compression=None) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            if ready is not None:
                ready.set()
            await (stop or asyncio.Event()).wait()


def _error_code(exc: PrivaStreamError) -> str:
    return {"ProtocolError": "protocol", "AuthError": "auth", "StateError": "state", "MediaError": "media",
            "ModelLoadError": "model"}.get(exc.__class__.__name__, "internal")


async def _send_quietly(ws, msg: Message) -> None:
    try:
        await ws.send(bytes(msg))
    except Exception:
        pass


# ---------------------------------------------------------------- command line

def add_arguments(parser) -> None:
    from .runtime import PROVIDER_CHOICES

    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1; "
                        "other addresses are refused)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, metavar="N",
                        help=f"control websocket and dashboard port (default {DEFAULT_PORT}; 0 = any free port)")
    parser.add_argument("--state-file", type=Path, default=None, metavar="PATH",
                        help=f"where to write port and token for clients (default {state_file_path()})")
    parser.add_argument("--threads", type=int, default=0, metavar="N",
                        help="onnxruntime threads per detection worker (default 0 = the cores split between "
                        "the face and the text worker)")
    parser.add_argument("--provider", choices=PROVIDER_CHOICES, default="auto",
                        help="execution provider (default auto: the best this machine has)")
    parser.add_argument("--no-preload", action="store_true",
                        help="load models and the speech package on first use instead of at start")


def _preload(workers: dict[str, DetectWorker]) -> None:
    try:
        for worker in workers.values():
            worker.load(Settings())  # every target on: each worker loads its models
    except PrivaStreamError as exc:  # sessions will fail closed with the same message
        log.warning("_preload() | models not preloaded: %s", exc)


def run(args) -> int:
    state_file = args.state_file or state_file_path()
    other = _running_server(state_file)
    if other:
        raise StateError(f"a server (pid {other}) already uses {state_file}; stop it or pass --state-file")
    reclaim_stale_segments()
    server = LiveServer(args.host, args.port, threads=args.threads, provider=args.provider)
    if not args.no_preload:
        # Every model loads before the server says it serves, so a session's first frames and
        # first audio are decided at once instead of failing closed while Whisper loads.
        write_state_file(state_file, None, None)
        try:
            _preload(server.workers)
            preload_speech()
        except BaseException:
            state_file.unlink(missing_ok=True)
            for worker in server.workers.values():
                worker.close()
            raise

    async def main() -> None:
        stop, ready = asyncio.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        task = asyncio.create_task(server.serve(ready, stop))
        await asyncio.wait({task, asyncio.create_task(ready.wait())}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
        write_state_file(state_file, server.port, server.token)
        log.info("run() | serving [url:http://%s:%d/ state:%s pid:%d]", args.host, server.port, state_file,
                 os.getpid())
        print(f"PrivaStream inference server on http://{args.host}:{server.port}/ (dashboard: "
              f"{dashboard_url(args.host, server.port, server.token)})", flush=True)
        try:
            await task
        finally:
            state_file.unlink(missing_ok=True)

    try:
        asyncio.run(main())
    except OSError as exc:
        raise StateError(f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc})") from None
    finally:
        for worker in server.workers.values():
            worker.close()
    return 0
