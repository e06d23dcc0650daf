"""A stand-in for obs-websocket 5 that reports an OBS version Debian 12 does not ship (a mock).

Why a mock: `privastream setup-obs` sets WHIP only on OBS 30 or later, and Debian 12 has OBS 29,
so that branch cannot run against a real OBS here.  The stub speaks the real wire protocol
(msgpack over a websocket, Hello -> Identify -> Identified, Request -> RequestResponse), answers
the requests setup_obs makes as OBS 30 does for a source without filters, and records every
request so the test can assert what OBS would have been told.
"""

from __future__ import annotations

import asyncio
import threading

import msgpack
from websockets.asyncio.server import serve

from privastream_testkit.obs import free_port

HELLO, IDENTIFY, IDENTIFIED, REQUEST, REQUEST_RESPONSE = 0, 1, 2, 6, 7


class ObsWebsocketStub:
    def __init__(self, obs_version: str, sources: tuple[str, ...]):
        self.obs_version, self.sources = obs_version, sources
        self.port = free_port()
        self.requests: list[tuple[str, dict]] = []
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Future | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._serve(),), daemon=True)

    def __enter__(self) -> "ObsWebsocketStub":
        self._thread.start()
        assert self._ready.wait(10), "the obs-websocket stub did not start"
        return self

    def __exit__(self, *_):
        self._loop.call_soon_threadsafe(self._stop.set_result, None)
        self._thread.join(10)

    async def _serve(self) -> None:
        self._stop = self._loop.create_future()
        async with serve(self._session, "127.0.0.1", self.port, subprotocols=["obswebsocket.msgpack"]):
            self._ready.set()
            await self._stop

    async def _session(self, ws) -> None:
        await ws.send(msgpack.packb({"op": HELLO, "d": {"obsWebSocketVersion": "5.5.0", "rpcVersion": 1}}))
        async for message in ws:
            payload = msgpack.unpackb(message)
            if payload["op"] == IDENTIFY:
                await ws.send(msgpack.packb({"op": IDENTIFIED, "d": {"negotiatedRpcVersion": 1}}))
            elif payload["op"] == REQUEST:
                d = payload["d"]
                self.requests.append((d["requestType"], d.get("requestData") or {}))
                code, data = self._answer(d["requestType"], d.get("requestData") or {})
                await ws.send(msgpack.packb({"op": REQUEST_RESPONSE, "d": {
                    "requestType": d["requestType"], "requestId": d["requestId"], "responseData": data,
                    "requestStatus": {"result": code == 100, "code": code}}}))

    def _answer(self, request: str, data: dict) -> tuple[int, dict]:
        """(obs-websocket RequestStatus code, responseData): 100 success, 600 not found, 204 unknown."""
        if request == "GetVersion":
            return 100, {"obsVersion": self.obs_version, "obsWebSocketVersion": "5.5.0", "rpcVersion": 1}
        if request in ("GetSourceFilterList", "GetInputAudioTracks", "CreateSourceFilter"):
            source = data.get("sourceName", data.get("inputName"))
            if source not in self.sources:
                return 600, {}
            return 100, ({"filters": []} if request == "GetSourceFilterList" else
                         {"inputAudioTracks": {"1": True}} if request == "GetInputAudioTracks" else {})
        if request == "SetStreamServiceSettings":
            return 100, {}
        return 204, {}
