"""The PrivaStream demo: inference server + SFU + a generated clip redacted live and published by WHIP.

    .venv/bin/python scripts/demo.py [--seconds N] [--room demo] [--delay 1.0] [--size 1280x720]

Run through `./scripts/demo.sh`, which first sets up whatever is missing.  It
starts the inference server and the SFU, generates a clip locally (public-
domain photos moving, rendered PII text, espeak-ng speech with a phone
number), redacts it through the same LiveClient/server path the OBS filters
use, publishes it to the SFU over WHIP, and prints the viewer URL, the
dashboard URL and the OBS instructions.  Ctrl-C (or --seconds) stops
everything.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

from inference_server.client import LiveClient
from inference_server.masking import MaskOptions
from inference_server.protocol import dashboard_url, read_state_file
from privastream_testkit import REPO, whip
from privastream_testkit.processes import LoggedProcess
from privastream_testkit.scenes import Clip

from demo_media import RedactedAudioTrack, RedactedVideo  # beside this script

log = logging.getLogger("privastream.demo")


def primary_ip() -> str:
    """The first non-loopback IPv4 address: WebRTC needs a real interface (ICE ignores loopback)."""
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    ipv4 = [a for a in out if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", a) and not a.startswith("127.")]
    if not ipv4:
        raise SystemExit("error: this machine has no non-loopback IPv4 address; pass --ip")
    return ipv4[0]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=0, help="stop after this long (default: 0 = until Ctrl-C)")
    p.add_argument("--room", default="demo", help="SFU room (default: demo)")
    p.add_argument("--delay", type=float, default=2.0, help="stream delay D in seconds (default: 2.0)")
    p.add_argument("--size", default="960x540", help="clip size WxH (default: 960x540)")
    p.add_argument("--ip", default=None, help="address the SFU listens on and announces (default: first non-loopback)")
    p.add_argument("--sfu-port", type=int, default=8080, help="SFU HTTP port (default: 8080)")
    p.add_argument("--server-port", type=int, default=7788, help="inference server port (default: 7788)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    width, height = (int(v) for v in args.size.lower().split("x"))
    ip = args.ip or os.environ.get("SFU_LISTEN_IP") or primary_ip()
    token = os.environ.get("SFU_PUBLISH_TOKEN") or secrets.token_urlsafe(18)
    state = Path(tempfile.mkdtemp(prefix="privastream-demo-")) / "server.json"
    python = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv").exists() else sys.executable

    echo = partial(print, flush=True) if os.environ.get("PRIVASTREAM_DEMO_VERBOSE") else None
    services: list[LoggedProcess] = []
    publisher = None
    clients: list[LiveClient] = []
    video = None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        print("starting the inference server (loading models) ...", flush=True)
        server = LoggedProcess("server", [python, "-m", "inference_server", "serve", "--port", str(args.server_port),
                                          "--state-file", str(state)], r"inference server on http", cwd=REPO,
                               echo=echo)
        services.append(server)
        print("starting the SFU ...", flush=True)
        sfu = LoggedProcess("sfu", ["npm", "--prefix", "sfu", "start", "--silent"], r"\| listening \[", cwd=REPO,
                            env={"SFU_HTTP_PORT": str(args.sfu_port), "SFU_LISTEN_IP": ip, "SFU_PUBLISH_TOKEN": token},
                            echo=echo)
        services.append(sfu)
        server.wait_ready(300)
        sfu.wait_ready(120)

        settings = {"targets": {"faces": True, "text": True, "plates": True, "speech": True}, "mouth_blur": True}
        video_client = LiveClient(source="demo-video", kind="video", delay_s=args.delay, settings=settings,
                                  stream="demo", state_file=state)
        audio_client = LiveClient(source="demo-audio", kind="audio", delay_s=args.delay, settings=settings,
                                  stream="demo", state_file=state)
        clients += [video_client, audio_client]
        clip = Clip(width=width, height=height)
        epoch = time.monotonic()  # pts 0 of both tracks: mouth blur matches video and audio by pts, as in OBS
        video = RedactedVideo(clip, video_client, args.delay, MaskOptions(), epoch)
        whip_url = f"http://{ip}:{args.sfu_port}/whip/{args.room}"
        print("publishing the redacted demo clip over WHIP ...", flush=True)
        publisher = whip.BackgroundPublisher()
        publisher.publish(whip_url, token,
                          lambda: whip.X264PacketTrack(video, width, height, clip.fps),
                          lambda: RedactedAudioTrack(audio_client, args.delay, epoch))
        print(f"""
PrivaStream demo is live.
  Viewer:      http://{ip}:{args.sfu_port}/room/{args.room}
  Dashboard:   {dashboard_url("127.0.0.1", args.server_port, read_state_file(state)[1])}
  OBS:         Tools > Scripts > + {REPO / 'obs_plugin' / 'privastream_filter.py'}
               then add "PrivaStream Filter" to a video source and "PrivaStream Audio Filter" to the mic.
               Settings > Stream > Service: WHIP, Server: http://{ip}:{args.sfu_port}/whip/<room>,
               Bearer Token: {token}   (encoder without B-frames; see docs/sfu.md)
Press Ctrl-C to stop.""", flush=True)
        started = time.monotonic()
        while not stop.wait(5):
            if args.seconds and time.monotonic() - started >= args.seconds:
                break
            for s in services:
                if s.proc.poll() is not None:
                    print(f"error: the {s.name} exited:\n" + "\n".join(s.lines[-15:]), file=sys.stderr)
                    return 1
            why = ", ".join(f"{reason}: {n}" for reason, n in video.reasons.most_common(3))
            why = f" ({why})" if why else ""
            print(f"  video: {video.shown} frames shown, {video.failed_closed} fail-closed{why}; "
                  f"server: {video_client.status.state}, {video_client.status.latency_ms:.0f} ms", flush=True)
        return 0
    except KeyboardInterrupt:
        return 0
    except whip.WhipError as exc:
        print(f"error: the SFU refused the demo stream: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # a service that did not start: its last lines say why
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        print("stopping ...", flush=True)
        if publisher is not None:
            try:
                publisher.shutdown()
            except Exception as exc:  # the SFU may already be gone; nothing is left to undo
                log.warning("main() | publisher shutdown: %s", exc)
        if video is not None:
            video.close()
        for c in clients:
            c.close()
        for s in reversed(services):
            s.stop()


if __name__ == "__main__":
    sys.exit(main())
