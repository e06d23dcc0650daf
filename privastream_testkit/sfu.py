"""The SFU and what talks to it, for the SFU tests, the benchmarks and the demo test: network
namespaces, the SFU process, viewers (headless Chromium, or bare HTTP sessions), the WHIP
publisher on a thread or in a process of its own, and an RTP sink that counts what arrives.

Why namespaces: with only the loopback interface Chromium gathers no ICE candidates
and aioice ignores loopback, so WebRTC needs a real interface; a namespace with a
veth pair gives one without touching the machine's network. Everything (SFU,
publisher, browsers) runs inside it; nothing leaves this machine.

    with Netns("ps-sfu", "198.18.7.1/24") as ns:      # needs root
        with ns.entered():                              # this thread's sockets live in ns
            sfu = SfuProcess.start(listen_ip=ns.ip, env={...})

`entered()` switches only the calling thread (setns(2)); processes it starts
(the SFU, Playwright's driver and its Chromium) inherit the namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import multiprocessing as mp
import os
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

from . import REPO, whip
from .processes import LoggedProcess, wait_until

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def _run(*args: str) -> None:
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {result.stderr.strip()}")


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), f"setns failed: {os.strerror(ctypes.get_errno())}")


class Netns:
    """A named network namespace with lo up and a veth pair.

    `peer` None: both veth ends stay inside with `cidr` on the first (a lone
    namespace). `peer` another Netns: the second end goes there with `peer_cidr`,
    linking the two (origin and edge SFU on "two machines"). `cidr` None: only the
    namespace, for a peer that another Netns links to.
    """

    def __init__(self, name: str, cidr: str | None = None, peer: "Netns | None" = None,
                 peer_cidr: str | None = None):
        self.name = name
        self.cidr = cidr
        self.ip = cidr.split("/")[0] if cidr else (peer_cidr or "").split("/")[0]
        self.peer = peer
        self.peer_cidr = peer_cidr
        self._veth = f"v{secrets.token_hex(3)}"

    def __enter__(self) -> "Netns":
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        _run("ip", "netns", "add", self.name)
        _run("ip", "-n", self.name, "link", "set", "lo", "up")
        if not self.cidr:
            return self
        a, b = f"{self._veth}a", f"{self._veth}b"
        _run("ip", "link", "add", a, "netns", self.name, "type", "veth", "peer", "name", b,
             "netns", self.peer.name if self.peer else self.name)
        _run("ip", "-n", self.name, "addr", "add", self.cidr, "dev", a)
        _run("ip", "-n", self.name, "link", "set", a, "up")
        other = self.peer.name if self.peer else self.name
        if self.peer and self.peer_cidr:
            _run("ip", "-n", other, "addr", "add", self.peer_cidr, "dev", b)
        _run("ip", "-n", other, "link", "set", b, "up")
        # A default route, so that Chromium and aioice treat the veth as usable.
        _run("ip", "-n", self.name, "route", "add", "default", "dev", a)
        if self.peer:
            self.peer.ip = self.peer_cidr.split("/")[0]
            _run("ip", "-n", other, "route", "add", "default", "dev", b)
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Moves the calling thread into this namespace for the block."""
        with open("/proc/thread-self/ns/net") as original, open(f"/run/netns/{self.name}") as target:
            _setns(target.fileno())
            try:
                yield
            finally:
                _setns(original.fileno())


class SfuProcess(LoggedProcess):
    """`node sfu/server.js` with the given settings, stopped by `stop()`."""

    def __init__(self, listen_ip: str, settings: dict[str, str]):
        super().__init__("sfu", ["node", str(REPO / "sfu" / "server.js")], r"\| listening \[", env=settings)
        self.base_url = f"http://{listen_ip}:{settings['SFU_HTTP_PORT']}"
        self.publish_token, self.admin_token = settings["SFU_PUBLISH_TOKEN"], settings["SFU_ADMIN_TOKEN"]

    @classmethod
    def start(cls, listen_ip: str, env: dict[str, str] | None = None, port: int = 8080,
              timeout: float = 30.0) -> "SfuProcess":
        settings = {
            "SFU_HTTP_PORT": str(port),
            "SFU_LISTEN_IP": listen_ip,
            "SFU_PUBLISH_TOKEN": secrets.token_urlsafe(16),
            "SFU_ADMIN_TOKEN": secrets.token_urlsafe(16),
            "SFU_RTC_MIN_PORT": "40000",
            "SFU_RTC_MAX_PORT": "40999",
            **(env or {}),
        }
        sfu = cls(listen_ip, settings)
        try:
            sfu.wait_ready(timeout)
        except RuntimeError:
            sfu.stop()
            raise
        return sfu

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request; returns (status, headers, body) for error statuses too."""
        req = urllib.request.Request(self.base_url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=15) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def open_viewer(self, room: str, forwarded_for: str | None = None) -> "ViewerSession":
        """A room-page viewer session without a browser (see ViewerSession)."""
        return ViewerSession.open(self, room, forwarded_for)

    def stats(self) -> dict:
        status, _, body = self.request("GET", "/api/stats", headers={"Authorization": f"Bearer {self.admin_token}"})
        if status != 200:
            raise RuntimeError(f"/api/stats answered {status}: {body!r}")
        return json.loads(body)


class ViewerSession:
    """What the room page does over HTTP, without media: the event stream that holds the
    viewer session open, and the WebRtcTransport it asks for. Cheap enough to open
    hundreds, which is what an anonymous visitor trying to exhaust the SFU would do.

    `forwarded_for` is sent as X-Forwarded-For, as a reverse proxy in front of the SFU
    would; the SFU believes it only from an address in SFU_TRUSTED_PROXIES.
    `status` is 200 for an admitted viewer, else the refusal's status and `reason`.
    """

    def __init__(self, sfu: SfuProcess, room: str, headers: dict[str, str]):
        self.sfu, self.room, self.headers = sfu, room, headers
        self.status, self.reason, self.viewer_id = 0, "", ""
        self._conn: http.client.HTTPConnection | None = None

    @classmethod
    def open(cls, sfu: SfuProcess, room: str, forwarded_for: str | None = None) -> "ViewerSession":
        session = cls(sfu, room, {"X-Forwarded-For": forwarded_for} if forwarded_for else {})
        host, port = sfu.base_url.split("//")[1].split(":")
        session._conn = http.client.HTTPConnection(host, int(port), timeout=15)
        session._conn.request("GET", f"/api/rooms/{room}/events", headers=session.headers)
        response = session._conn.getresponse()
        session.status = response.status
        if response.status != 200:
            session.reason = response.read().decode().strip()
            session.close()
            return session
        line = b""
        while not line.startswith(b"data: "):
            line = response.readline()
        session.viewer_id = json.loads(line[6:])["viewerId"]
        return session

    def transport(self) -> tuple[int, dict]:
        """Asks for the viewer's WebRtcTransport: (status, body)."""
        status, _, body = self.sfu.request(
            "POST", f"/api/rooms/{self.room}/viewers/{self.viewer_id}/transport", b"{}",
            {"Content-Type": "application/json", **self.headers})
        return status, json.loads(body) if status == 200 else {"error": body.decode().strip()}

    def close(self) -> None:
        if self._conn:
            self._conn.close()
            self._conn = None


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]

# A plain RTCPeerConnection WHEP player (no mediasoup-client), as any standard player would be.
WHEP_PLAYER = """async (url) => {
    const pc = new RTCPeerConnection();
    // Chromium decodes remote audio only for a track that plays somewhere.
    pc.ontrack = (event) => {
        const element = document.createElement(event.track.kind);
        element.muted = true;
        element.srcObject = new MediaStream([event.track]);
        document.body.appendChild(element);
        element.play();
    };
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((done) => {
        if (pc.iceGatheringState === 'complete') return done();
        pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && done();
    });
    const response = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/sdp' },
                                         body: pc.localDescription.sdp });
    if (response.status !== 201) return { status: response.status, text: await response.text() };
    await pc.setRemoteDescription({ type: 'answer', sdp: await response.text() });
    window.whep = pc;
    return { status: 201, location: response.headers.get('Location') };
}"""

WHEP_STATS = """async () => {
    const out = {};
    (await window.whep.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp') out[s.kind] = { framesDecoded: s.framesDecoded, samples: s.totalSamplesReceived };
    });
    return out;
}"""


def missing_prerequisites() -> list[str]:
    """What the SFU tests need and this machine lacks, each with how to get it."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root for network namespaces (run the tests as root, e.g. `sudo ./scripts/test.sh`)")
    for tool, package in (("ip", "iproute2"), ("node", "nodejs")):
        if shutil.which(tool) is None:
            missing.append(f"`{tool}` ({package}; scripts/setup.sh installs it)")
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (Debian's chromium; scripts/setup.sh installs it)")
    return missing


@contextlib.contextmanager
def sfu_in_netns(name: str, cidr: str, env: dict[str, str]) -> Iterator[SfuProcess]:
    """An SFU with these settings in a namespace of its own, which the calling thread enters."""
    with Netns(name, cidr) as ns, ns.entered():
        process = SfuProcess.start(ns.ip, env=env)
        try:
            yield process
        finally:
            process.stop()


class PublisherThread(whip.BackgroundPublisher):
    """The tests' publisher: OBS-shaped x264 High profile + a tone, or aiortc's own VP8."""

    def publish(self, url: str, token: str, *, obs_shaped: bool = True,  # type: ignore[override]
                size: tuple[int, int] = (640, 360), obs_offer: str | None = None) -> whip.WhipPublisher:
        width, height = size
        if obs_shaped:
            def make_video():
                return whip.X264PacketTrack(whip.moving_pattern(width, height), width, height,
                                                   fps=30, bitrate=800_000, profile="high")
        else:
            def make_video():
                return whip.SyntheticVideoTrack(width, height, fps=30)
        return super().publish(url, token, make_video, whip.ToneAudioTrack, obs_shaped=obs_shaped,
                               obs_offer=obs_offer)

    def try_publish(self, url: str, token: str) -> int:
        """Publishes and returns 201, or the refusal status (e.g. 409)."""
        try:
            self.publish(url, token)
            return 201
        except whip.WhipError as error:
            return error.status


class Viewers:
    """Headless Chromium with one page per viewer, each playing /room/<room>."""

    def __init__(self, executable: str = CHROMIUM) -> None:
        from playwright.sync_api import sync_playwright

        # Playwright gives every launch a fresh temporary profile of its own.
        self._playwright = sync_playwright().start()
        self._browser = self._playwright.chromium.launch(executable_path=executable, headless=True,
                                                         args=CHROMIUM_FLAGS)
        self.pages = []

    def __enter__(self) -> "Viewers":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self, url: str):
        page = self._browser.new_context().new_page()
        page.goto(url)
        self.pages.append(page)
        return page

    @staticmethod
    def stats(page) -> dict:
        return page.evaluate("window.privastream.stats()")

    def wait_decoding(self, page, frames: int = 30, timeout: float = 40.0) -> dict:
        """Waits until the page has decoded `frames` more video frames and some audio."""
        start = self.stats(page)
        base = (start.get("video") or {}).get("framesDecoded") or 0

        def decoding():
            s = self.stats(page)
            video, audio = s.get("video") or {}, s.get("audio") or {}
            ok = (s["status"] == "live" and (video.get("framesDecoded") or 0) >= base + frames
                  and (audio.get("totalSamplesReceived") or 0) > 0)
            return s if ok else None

        return wait_until(decoding, timeout, interval=0.5, what=f"{frames} decoded frames on {page.url}")

    @staticmethod
    def play_whep(page, url: str) -> dict:
        """Runs WHEP_PLAYER on `page` against `url`: {"status", "location"} or {"status", "text"}."""
        return page.evaluate(WHEP_PLAYER, url)

    @staticmethod
    def wait_whep_decoding(page, frames: int = 30, timeout: float = 30.0) -> dict:
        """Waits until the page's WHEP player has decoded more than `frames` video frames."""
        return wait_until(lambda: (s := page.evaluate(WHEP_STATS)).get("video", {}).get("framesDecoded", 0) > frames
                          and s, timeout, interval=0.5, what="WHEP frames decoded")

    def close_page(self, page) -> None:
        page.context.close()
        self.pages.remove(page)

    def close(self) -> None:
        for page in list(self.pages):
            self.close_page(page)
        self._browser.close()
        self._playwright.stop()


# The RTP sink: viewers of the admin `rtp-out` API send here.
SINK_PORT = 5004
BLACKHOLE_PORT = 5006
SAMPLE_EVERY = 10
SO_RCVBUFFORCE = 33


def sink(ip: str, conn, stop) -> None:
    """Counts RTP packets and per-SSRC sequence gaps; answers {"packets", "expected", "bytes"} on request."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # Root may exceed rmem_max: a deep buffer keeps the sink's own scheduling
    # hiccups from being counted as SFU loss.
    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 * 1024 * 1024)
    sock.bind((ip, SINK_PORT))
    blackhole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # never read
    blackhole.bind((ip, BLACKHOLE_PORT))
    # A kernel receive timeout instead of settimeout(): one syscall per packet, not two.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 50_000))
    seqs: dict[int, list[int]] = {}  # ssrc -> [first extended seq, last extended seq]
    packets = nbytes = 0
    buf = bytearray(2048)
    conn.send("ready")
    while not stop.is_set():
        if conn.poll():
            conn.recv()
            expected = sum(last - first + 1 for first, last in seqs.values())
            conn.send({"packets": packets, "expected": expected, "bytes": nbytes})
            seqs, packets, nbytes = {}, 0, 0
        try:
            n = sock.recv_into(buf)
        except BlockingIOError:
            continue
        payload_type = buf[1] & 0x7F
        # Skip muxed RTCP (200-206 appear as 72-78 here), and mediasoup's bandwidth
        # probation packets (PT 127, one SSRC shared by every transport).
        if n < 12 or 72 <= payload_type <= 78 or payload_type == 127:
            continue
        seq, ssrc = struct.unpack_from("!H4xI", buf, 2)
        packets += 1
        nbytes += n
        state = seqs.get(ssrc)
        if state is None:
            seqs[ssrc] = [seq, seq]
            continue
        last = state[1]
        delta = (seq - last) & 0xFFFF
        if delta < 0x8000:
            state[1] = last + delta


def udp_datagrams_in() -> int:
    """Datagrams that reached a UDP socket in this thread's namespace, queued or dropped for a full buffer."""
    with open("/proc/thread-self/net/snmp") as snmp:
        header, values = [line.split() for line in snmp if line.startswith("Udp:")][:2]
    fields = dict(zip(header[1:], map(int, values[1:])))
    return fields["InDatagrams"] + fields["RcvbufErrors"]


def start_publisher(sfu: SfuProcess, room: str, size: str = "1280x720", bitrate: int = 2_500_000) -> LoggedProcess:
    """scripts/whip_client.py replaying x264 High + Opus into `room`, returned once it publishes.

    It gets a process of its own: in the measuring one it would share the GIL with the
    measurement.
    """
    publisher = LoggedProcess("publisher", [sys.executable, str(REPO / "scripts" / "whip_client.py"),
                                            f"{sfu.base_url}/whip/{room}", f"--token={sfu.publish_token}",
                                            "--seconds", "86400", "--size", size, "--bitrate", str(bitrate), "--loop"],
                              r"^publishing")
    publisher.wait_ready(120)
    return publisher


def stop_publisher(publisher: LoggedProcess) -> None:
    if not publisher.running():
        print(f"publisher exited early ({publisher.proc.returncode}):\n" + "\n".join(publisher.lines))
    publisher.stop()


@contextlib.contextmanager
def sfu_with_sink(name: str, cidr: str, env: dict[str, str]) -> Iterator[tuple[Netns, SfuProcess, object]]:
    """An SFU in a namespace of its own, and a sink process counting what reaches SINK_PORT
    (send it "reset" or "read" on the yielded pipe). On exit both stop, and the SFU's
    warnings and errors are printed."""
    with Netns(name, cidr) as ns, ns.entered():
        sfu = SfuProcess.start(ns.ip, env=env)
        stop = mp.Event()
        here, there = mp.Pipe()
        sink_proc = mp.Process(target=sink, args=(ns.ip, there, stop), daemon=True)
        sink_proc.start()
        try:
            assert here.recv() == "ready"
            yield ns, sfu, here
        finally:
            stop.set()
            sink_proc.join(5)
            sfu.stop()
            for line in sfu.log_matches(r" (ERROR|WARN) "):
                print(line)


def admin(sfu: SfuProcess) -> dict[str, str]:
    return {"Authorization": f"Bearer {sfu.admin_token}", "Content-Type": "application/json"}
