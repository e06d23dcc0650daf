"""A real `python -m inference_server serve` process for the live tests and benchmarks, and the
client's side of the login spoken by hand."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from datetime import datetime
from pathlib import Path

from inference_server.protocol import (ROLE_CLIENT, Auth, Hello, auth_proof, dashboard_key, new_nonce,
                                       parse_message)

from . import REPO
from .processes import LoggedProcess, wait_until

TARGETS_OFF = {"targets": {"faces": False, "plates": False, "text": False, "speech": False}}
FAILCLOSED_LINE = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*muting undecided audio "
                             r"\[reason:decoding later than L, start:[-\d.]+, slowest decode:([\d.]+) s\]")


def failclosed_runs(server_log: str) -> list[tuple[float, float]]:
    """(wall time, slowest recent decode) of each run of audio the server failed closed because
    decoding fell behind L (the redactor logs one line per run)."""
    return [(datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp(), float(m.group(2)))
            for m in map(FAILCLOSED_LINE.match, server_log.splitlines()) if m]


class ServerProcess:
    """The real server in its own process, with its own state file (so tests never meet a user's server)."""

    def __init__(self, state_file: Path, *extra: str):
        self.state_file = state_file
        self.extra = extra
        self._child: LoggedProcess | None = None

    def start(self, timeout: float = 120.0) -> "ServerProcess":
        self.state_file.unlink(missing_ok=True)
        # In the caller's session: a Ctrl-C to a benchmark stops its server too.
        self._child = child = LoggedProcess(
            "server", [sys.executable, "-m", "inference_server", "serve", "--port", "0", "--state-file",
                       str(self.state_file), *self.extra], "inference server on http", cwd=REPO, own_session=False)
        # A server still warming up has written no port yet.
        try:
            wait_until(lambda: "port" in self._state() or not child.running(), timeout, interval=0.02,
                       what="the server's port in its state file")
        except TimeoutError:
            raise RuntimeError(f"server did not start within {timeout:g} s:\n{child.stop()}") from None
        if not child.running():
            raise RuntimeError(f"server did not start:\n{child.stop()}")
        return self

    @property
    def proc(self) -> subprocess.Popen:
        assert self._child is not None, "start() first"
        return self._child.proc

    def _state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    @property
    def port(self) -> int:
        return json.loads(self.state_file.read_text())["port"]

    @property
    def token(self) -> str:
        return json.loads(self.state_file.read_text())["token"]

    def stats(self) -> dict:
        """/stats.json, read as a token holder does: with the dashboard key derived from the token."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/stats.json",
                                         headers={"Authorization": f"Bearer {dashboard_key(self.token)}"})
        with urllib.request.urlopen(request, timeout=5) as r:
            return json.load(r)

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> str:
        """SIGINT (clean stop); returns what the server printed."""
        return "" if self._child is None else self._child.stop(timeout=10, sig=signal.SIGINT)


async def login(ws, token: str, settings: dict | None = None, kind: str = "video") -> dict:
    """The client's side of the login spoken by hand on an open websocket: hello, then auth with the
    proof made with ``token`` (the server's proof is not checked); returns the server's last reply."""
    nonce = new_nonce()
    await ws.send(bytes(Hello(nonce=nonce, source="raw", kind=kind)))
    challenge = parse_message(await ws.recv())
    if challenge.type != "challenge":
        return challenge.to_dict()
    await ws.send(bytes(Auth(proof=auth_proof(token, ROLE_CLIENT, nonce, challenge.nonce),
                             settings=TARGETS_OFF if settings is None else settings)))
    return json.loads(await ws.recv())
