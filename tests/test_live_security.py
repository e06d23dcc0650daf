"""Who may talk to the live server, and whom the client trusts: the real server process, the real
LiveClient, and a real websocket server standing in for a process that took the server's port.

Threats: a local process that holds the port after the server crashed (it must learn no secret
and get no trust), a web page in the streamer's browser (it must not reach the control socket),
a flood of connections or of big messages before login, and any local user reading /stats.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed, InvalidStatus

from inference_server.client import LiveClient
from inference_server.protocol import CONTROL_PATH
from privastream_testkit.processes import wait_until
from privastream_testkit.server import TARGETS_OFF, ServerProcess, login

LEFTOVER_TOKEN = "token-of-the-server-that-crashed"
PRIVATE_WORD = "Wisteria Lane 4"


@pytest.fixture
def server(tmp_path):
    proc = ServerProcess(tmp_path / "server.json", "--no-preload").start()
    yield proc
    proc.stop()


class Impostor:
    """A process that took the crashed server's port: it answers every frame with "nothing to
    cover" and records every byte the client sends it.  ``challenge`` decides how it answers a
    hello: with a welcome at once, or with a challenge carrying a proof it had to make up."""

    def __init__(self, state_file, challenge: bool):
        self.challenge = challenge
        self.received: list[bytes] = []
        self.decisions_sent = 0
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        ready = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._serve(ready),), daemon=True)
        self.thread.start()
        ready.wait(5)
        # The crashed server's state file, left behind, now names the impostor's port.
        state_file.write_text(json.dumps({"pid": os.getpid(), "port": self.port, "token": LEFTOVER_TOKEN}))
        os.chmod(state_file, 0o600)

    async def _serve(self, ready: threading.Event) -> None:
        async with serve(self._handler, "127.0.0.1", 0) as srv:
            self.port = next(iter(srv.sockets)).getsockname()[1]
            ready.set()
            await self.stop.wait()

    async def _handler(self, ws) -> None:
        beats = None
        try:
            async for raw in ws:
                self.received.append(raw if isinstance(raw, bytes) else raw.encode())
                msg = json.loads(raw)
                if msg["type"] == "hello" and self.challenge:
                    await ws.send(json.dumps({"v": 1, "type": "challenge", "nonce": "ab" * 16, "proof": "00" * 32}))
                elif msg["type"] in ("hello", "auth"):
                    await ws.send(json.dumps({"v": 1, "type": "welcome", "session": 1, "server_pid": 1}))
                    beats = beats or asyncio.create_task(self._heartbeats(ws))
                elif msg["type"] == "frame":
                    await ws.send(json.dumps({"v": 1, "type": "decision", "frame_id": msg["frame_id"],
                                              "regions": []}))
                    self.decisions_sent += 1
        except ConnectionClosed:
            pass
        finally:
            if beats:
                beats.cancel()

    async def _heartbeats(self, ws) -> None:
        while True:
            await ws.send(json.dumps({"v": 1, "type": "heartbeat", "t": time.monotonic()}))
            await asyncio.sleep(0.05)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(5)


@pytest.mark.parametrize("challenge, refusal", [(False, "expected challenge, got welcome"),
                                                (True, "cannot prove that it knows the token")],
                         ids=["welcome-at-once", "made-up-proof"])
def test_a_process_on_the_crashed_servers_port_gets_no_secret_and_no_trust(tmp_path, challenge, refusal):
    impostor = Impostor(tmp_path / "server.json", challenge)
    settings = {**TARGETS_OFF, "custom_terms": [PRIVATE_WORD]}
    client = LiveClient(source="cam", delay_s=0.3, settings=settings, state_file=tmp_path / "server.json")
    try:
        frame = np.full((36, 64, 4), 200, np.uint8)
        deadline = time.monotonic() + 1.5
        frame_id = 0
        while time.monotonic() < deadline:
            client.submit_frame(frame_id, frame_id / 30, frame)
            frame_id += 1
            time.sleep(1 / 30)
        time.sleep(0.4)  # every deadline has passed
        decisions = [client.frame_decision(i) for i in range(frame_id)]
        status = client.status
    finally:
        client.close()
        impostor.close()
    sent = b"".join(impostor.received)
    assert impostor.received, "the client never dialled the port in the state file"
    assert LEFTOVER_TOKEN.encode() not in sent, "the client handed its token to the impostor"
    assert PRIVATE_WORD.encode() not in sent, "the client handed its private words to the impostor"
    assert status.state != "connected" and refusal in status.message, status
    assert impostor.decisions_sent == 0 and all(d is not None and d.fail_closed for d in decisions), \
        [(i, d) for i, d in enumerate(decisions) if d is None or not d.fail_closed][:3]


def test_the_real_server_proves_itself_and_the_client_trusts_it(server):
    with LiveClient(source="cam", settings=TARGETS_OFF, state_file=server.state_file) as client:
        wait_until(lambda: client.status.state == "connected", 5.0)


def test_browser_origins_other_than_the_dashboard_are_refused(server):
    """Any web page can open ws://127.0.0.1:PORT/control; the browser always names the page's origin."""
    url = f"ws://127.0.0.1:{server.port}{CONTROL_PATH}"

    async def attempt(origin: str | None):
        try:
            async with connect(url, origin=origin) as ws:
                return (await login(ws, server.token))["type"]
        except InvalidStatus as exc:
            return exc.response.status_code

    assert asyncio.run(attempt("https://evil.example")) == 403
    assert asyncio.run(attempt("http://127.0.0.1:1")) == 403  # another local service's page
    assert asyncio.run(attempt(f"http://127.0.0.1:{server.port}")) == "welcome"  # the dashboard's own
    assert asyncio.run(attempt(None)) == "welcome"  # not a browser: our clients


def test_login_messages_are_small_and_logins_are_capped(server):
    """Before login a message may not exceed MAX_LOGIN_BYTES (the connection closes, 1009, nothing is
    parsed), and at most MAX_LOGINS connections may be logging in at once; a real client still gets in
    once they are gone."""
    from inference_server.protocol import MAX_LOGIN_BYTES
    from inference_server.server import MAX_LOGINS

    url = f"ws://127.0.0.1:{server.port}{CONTROL_PATH}"

    async def big_first_message() -> int:
        async with connect(url, max_size=None) as ws:
            await ws.send(b" " * (MAX_LOGIN_BYTES + 1))
            try:
                await asyncio.wait_for(ws.recv(), 2.0)
            except ConnectionClosed as exc:
                return exc.rcvd.code
        return 0

    async def many_silent_connections() -> list[int | None]:
        sockets = [await connect(url) for _ in range(MAX_LOGINS + 4)]
        waited = 0.0
        while sum(ws.close_code is not None for ws in sockets) < 4 and waited < 1.5:  # < LOGIN_TIMEOUT_S
            await asyncio.sleep(0.05)
            waited += 0.05
        codes = [ws.close_code for ws in sockets]
        for ws in sockets:
            await ws.close()
        return codes

    assert asyncio.run(big_first_message()) == 1009
    codes = asyncio.run(many_silent_connections())
    assert codes.count(None) == MAX_LOGINS and codes.count(1013) == 4, codes
    with LiveClient(source="after", settings=TARGETS_OFF, state_file=server.state_file) as client:
        wait_until(lambda: client.status.state == "connected", 5.0)


def test_stats_are_only_for_the_dashboard_key(server, tmp_path):
    """Any local user can reach 127.0.0.1: the figures (source names, sessions) need the key derived
    from the token, which the dashboard URL the server prints carries in its fragment."""
    url = f"http://127.0.0.1:{server.port}/stats.json"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {server.token}"}):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5)
        assert err.value.code == 403, headers
    assert server.stats()["server"]["port"] == server.port
