"""`privastream setup-obs`: make OBS's script find this environment, and configure a running OBS
over obs-websocket (OBS 28+, websocket protocol 5).

    privastream setup-obs
    privastream setup-obs --source "Webcam" [--audio-source "Mic/Aux"] \\
        [--password PW | $OBS_WEBSOCKET_PASSWORD] [--delay S] [--whip-url URL --whip-token TOKEN]

First records this Python environment for an OBS whose Python has the same version
(environment.py) and prints the path of the script to add under Tools -> Scripts; without
--source that is all it does.  With --source, adds "PrivaStream Filter" to --source and
"PrivaStream Audio Filter" to --audio-source (default: --source, when that source has audio),
both with the same delay so audio and video stay in sync; a filter already there is updated
instead of added twice.  With --whip-url, sets the stream output to WHIP with the SFU's URL and
publish token; that needs OBS 30 or later (Debian 12 ships OBS 29 without WHIP, so there only the
version check runs).  Prints every change, and exits 1 with one clear line when OBS is not
reachable, the password is wrong, a source does not exist or the PrivaStream script is not loaded.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import simpleobsws

from obs_plugin import environment
from obs_plugin.settings import DEFAULTS  # numpy-free; loads no libobs

SCRIPT = Path(__file__).resolve().parent / "privastream_filter.py"
VIDEO_KIND, VIDEO_NAME = "privastream_filter", "PrivaStream Filter"
AUDIO_KIND, AUDIO_NAME = "privastream_audio_filter", "PrivaStream Audio Filter"
WHIP_MIN_MAJOR = 30
NOT_FOUND = 600  # obs-websocket RequestStatus::ResourceNotFound
INVALID_KIND = 605  # obs-websocket RequestStatus::InvalidResourceType


class SetupError(Exception):
    """One line for the user, no traceback."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="OBS host (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=4455, help="obs-websocket port (default 4455)")
    parser.add_argument("--password", default=os.environ.get("OBS_WEBSOCKET_PASSWORD", ""),
                        help="obs-websocket password (default: $OBS_WEBSOCKET_PASSWORD)")
    parser.add_argument("--source", help="video source to protect (e.g. your camera or screen capture); without it, "
                                          "only this environment is recorded for OBS's script")
    parser.add_argument("--audio-source", help="audio source to bleep (default: --source if it has audio)")
    parser.add_argument("--delay", type=float, default=DEFAULTS["delay_s"], metavar="S",
                        help="delay in seconds for both filters: more gives the server more time "
                             f"(default {DEFAULTS['delay_s']})")
    parser.add_argument("--whip-url", help="SFU WHIP endpoint to stream to (OBS 30+)")
    parser.add_argument("--whip-token", default="", help="publish token for the WHIP endpoint")


class Obs:
    def __init__(self, ws: simpleobsws.WebSocketClient):
        self.ws = ws

    async def call(self, request: str, data: dict | None = None) -> simpleobsws.RequestResponse:
        return await self.ws.call(simpleobsws.Request(request, data), timeout=15)

    async def ok(self, request: str, data: dict | None = None) -> dict:
        resp = await self.call(request, data)
        if not resp.ok():
            raise SetupError(f"OBS refused {request}: {resp.requestStatus.comment or resp.requestStatus.code}")
        return resp.responseData or {}


async def connect(host: str, port: int, password: str) -> Obs:
    url = f"ws://{host}:{port}"
    ws = simpleobsws.WebSocketClient(url=url, password=password)
    try:
        await ws.connect()
    except OSError as e:
        raise SetupError(f"cannot reach obs-websocket at {url} ({e.strerror or e}); is OBS running with "
                         "Tools -> WebSocket Server Settings -> Enable WebSocket server?") from None
    except Exception as e:
        raise SetupError(f"cannot reach obs-websocket at {url} ({e})") from None
    if not await ws.wait_until_identified(timeout=5):
        await ws.disconnect()
        raise SetupError(f"obs-websocket at {url} refused the password (see Tools -> WebSocket Server Settings)")
    return Obs(ws)


async def ensure_filter(obs: Obs, source: str, kind: str, name: str, settings: dict) -> str:
    resp = await obs.call("GetSourceFilterList", {"sourceName": source})
    if resp.requestStatus.code == NOT_FOUND:
        inputs = (await obs.ok("GetInputList")).get("inputs", [])
        names = ", ".join(sorted(i["inputName"] for i in inputs)) or "none"
        raise SetupError(f"source {source!r} does not exist in OBS (sources: {names})")
    if not resp.ok():
        raise SetupError(f"OBS refused GetSourceFilterList: {resp.requestStatus.comment}")
    existing = [f for f in resp.responseData["filters"] if f["filterKind"] == kind]
    if existing:
        await obs.ok("SetSourceFilterSettings", {"sourceName": source, "filterName": existing[0]["filterName"],
                                                 "filterSettings": settings, "overlay": True})
        return f"updated {existing[0]['filterName']!r} on {source!r}: {settings}"
    created = await obs.call("CreateSourceFilter", {"sourceName": source, "filterName": name, "filterKind": kind,
                                                    "filterSettings": settings})
    if created.requestStatus.code == INVALID_KIND:
        raise SetupError(f"OBS does not know the filter kind {kind!r}: add {SCRIPT} under Tools -> Scripts first")
    if not created.ok():
        raise SetupError(f"OBS refused to add {name!r} to {source!r}: {created.requestStatus.comment}")
    return f"added {name!r} to {source!r}: {settings}"


async def set_whip(obs: Obs, url: str, token: str) -> str:
    version = (await obs.ok("GetVersion"))["obsVersion"]
    major = int(version.split(".")[0])
    if major < WHIP_MIN_MAJOR:
        raise SetupError(f"WHIP output needs OBS {WHIP_MIN_MAJOR} or later (this OBS is {version}); "
                         "the filters are set, the stream output is unchanged")
    resp = await obs.call("SetStreamServiceSettings", {"streamServiceType": "whip_custom",
                                                       "streamServiceSettings": {"server": url, "bearer_token": token}})
    if not resp.ok():
        # OBS builds without the obs-webrtc plugin (Debian's, which lack libdatachannel) have no
        # "whip_custom" service, and obs-websocket can only say it cannot create that type.
        raise SetupError(f"this OBS {version} has no WHIP output (its build lacks the obs-webrtc plugin; "
                         f"OBS said: {resp.requestStatus.comment or resp.requestStatus.code}); the filters are set, "
                         "the stream output is unchanged")
    return f"stream output set to WHIP {url}" + (" with a publish token" if token else " without a token")


async def has_audio(obs: Obs, source: str) -> bool:
    resp = await obs.call("GetInputAudioTracks", {"inputName": source})
    return resp.ok()


async def setup(args: argparse.Namespace) -> list[str]:
    obs = await connect(args.host, args.port, args.password)
    changes: list[str] = []
    try:
        delay = {"delay_s": args.delay}
        changes.append(await ensure_filter(obs, args.source, VIDEO_KIND, VIDEO_NAME, delay))
        audio_source = args.audio_source or (args.source if await has_audio(obs, args.source) else None)
        if audio_source:
            changes.append(await ensure_filter(obs, audio_source, AUDIO_KIND, AUDIO_NAME, delay))
        else:
            changes.append(f"no audio filter: {args.source!r} has no audio (name the microphone with --audio-source)")
        if args.whip_url:
            changes.append(await set_whip(obs, args.whip_url, args.whip_token))
    finally:
        for line in changes:
            print(line)
        await obs.ws.disconnect()
    return changes


def run(args: argparse.Namespace) -> int:
    try:
        path, env = environment.record()
    except OSError as e:
        print(f"setup-obs: cannot record this environment in {environment.environments_file()}: {e}", file=sys.stderr)
        return 1
    print(f"recorded this Python {env.python} environment for OBS in {path}")
    print(f"OBS script (Tools -> Scripts -> +, for an OBS whose Python is {env.python}): {SCRIPT}")
    if not args.source:
        return 0
    try:
        asyncio.run(setup(args))
    except SetupError as e:
        print(f"setup-obs: {e}", file=sys.stderr)
        return 1
    return 0
