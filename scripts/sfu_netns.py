"""Network namespaces and SFU processes for the SFU tests and benchmark.

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
import logging
import os
import re
import secrets
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

logger = logging.getLogger("privastream.sfu_netns")

ROOT = Path(__file__).resolve().parent.parent
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


@dataclass
class SfuProcess:
    """`npm --prefix sfu start` with the given settings, stopped by `stop()`."""

    proc: subprocess.Popen
    base_url: str
    publish_token: str
    admin_token: str
    log: list[str] = field(default_factory=list)

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
        proc = subprocess.Popen(
            ["node", str(ROOT / "sfu" / "server.js")], env={**os.environ, **settings},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        sfu = cls(proc, f"http://{listen_ip}:{port}", settings["SFU_PUBLISH_TOKEN"], settings["SFU_ADMIN_TOKEN"])
        listening = threading.Event()

        def pump() -> None:
            for line in proc.stdout:  # type: ignore[union-attr]
                sfu.log.append(line.rstrip())
                if "| listening [" in line:
                    listening.set()

        threading.Thread(target=pump, daemon=True).start()
        if not listening.wait(timeout):
            sfu.stop()
            raise RuntimeError("SFU did not print its listening line:\n" + "\n".join(sfu.log[-30:]))
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

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def log_matches(self, pattern: str) -> list[str]:
        return [line for line in self.log if re.search(pattern, line)]


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


def wait_until(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    """Polls `predicate` until it returns something truthy; raises TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
