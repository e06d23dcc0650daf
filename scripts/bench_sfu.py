"""SFU fan-out benchmark: one 720p H.264 stream at 2.5 Mbit/s to N viewers, N growing.

Prints, per step: RTP packets/s leaving the SFU, Mbit/s, mediasoup worker CPU (all
workers together, % of one core), CPU per viewer, and loss.

How it drives N viewers on a 2-core machine: a viewer is an SRTP PlainTransport
consuming audio + video through the SFU's admin `rtp-out` API, placed and spread
over workers by the same code as browser viewers (a router per
`--router-max-consumers`, pipeToRouter between them). The SFU encrypts and sends
every packet to every viewer exactly as for a browser; only ICE/DTLS and the
receiver's congestion feedback are absent. All viewers send to one UDP sink in a
separate process, which counts packets and sequence gaps per SSRC without
decrypting (RTP headers are clear in SRTP). The publisher is aiortc sending x264
packets over WHIP. Everything runs in a network namespace (root needed).

    sudo .venv/bin/python scripts/bench_sfu.py --viewers 50,100,200,300 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import socket
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import whip_client  # noqa: E402
from sfu_netns import Netns, SfuProcess  # noqa: E402

SINK_PORT = 5004
SO_RCVBUFFORCE = 33


def sink(ip: str, conn, stop) -> None:
    """Counts RTP packets and per-SSRC sequence gaps; answers {"packets", "expected", "bytes"} on request."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # Root may exceed rmem_max: a deep buffer keeps the sink's own scheduling
    # hiccups from being counted as SFU loss.
    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 * 1024 * 1024)
    sock.bind((ip, SINK_PORT))
    sock.settimeout(0.05)
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
        except socket.timeout:
            continue
        if n < 12 or (buf[1] & 0x7F) >= 72 and (buf[1] & 0x7F) <= 76:
            continue  # RTCP (muxed), not media
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


def worker_cpu_ms(sfu: SfuProcess) -> float:
    return sum(w["cpuUserMs"] + w["cpuSystemMs"] for w in sfu.stats()["workers"])


def admin(sfu: SfuProcess) -> dict[str, str]:
    return {"Authorization": f"Bearer {sfu.admin_token}", "Content-Type": "application/json"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", default="25,50,100,200,300",
                        help="comma-separated viewer counts to step through (default 25,50,100,200,300)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measurement window per step (default 10)")
    parser.add_argument("--bitrate", type=int, default=2_500_000, help="video bits per second (default 2500000)")
    parser.add_argument("--size", default="1280x720", metavar="WxH", help="video size (default 1280x720)")
    parser.add_argument("--workers", type=int, default=0, help="mediasoup workers (default: one per core)")
    parser.add_argument("--router-max-consumers", type=int, default=200,
                        help="consumers per router before the room spreads to another worker (default 200)")
    args = parser.parse_args()
    steps = [int(v) for v in args.viewers.split(",")]
    width, height = (int(v) for v in args.size.lower().split("x"))

    env = {"SFU_ROUTER_MAX_CONSUMERS": str(args.router_max_consumers), "SFU_RATE_LIMIT_PER_MINUTE": "100000",
           "SFU_RTC_MAX_PORT": "49999", "SFU_LOG_LEVEL": "warn"}
    if args.workers:
        env["SFU_WORKERS"] = str(args.workers)
    with Netns("ps-sfu-bench", "198.18.6.1/24") as ns, ns.entered():
        sfu = SfuProcess.start(ns.ip, env=env)
        stop = mp.Event()
        here, there = mp.Pipe()
        sink_proc = mp.Process(target=sink, args=(ns.ip, there, stop), daemon=True)
        sink_proc.start()
        assert here.recv() == "ready"
        publisher = whip_client.BackgroundPublisher()
        try:
            publisher.publish(f"{sfu.base_url}/whip/bench", sfu.publish_token,
                              lambda: whip_client.X264PacketTrack(whip_client.moving_pattern(width, height), width,
                                                                  height, fps=30, bitrate=args.bitrate),
                              whip_client.ToneAudioTrack)
            time.sleep(2.0)
            print(f"publisher: {width}x{height} H.264 High at {args.bitrate / 1e6:.1f} Mbit/s + Opus; "
                  f"workers: {len(sfu.stats()['workers'])}; window {args.seconds:.0f} s per step", flush=True)
            print(f"{'viewers':>7} {'pkts/s out':>10} {'Mbit/s':>7} {'worker CPU':>10} "
                  f"{'CPU/viewer':>10} {'loss':>7} {'routers':>7}", flush=True)
            current = 0
            for target in steps:
                while current < target:
                    status, _, body = sfu.request("POST", "/api/rooms/bench/rtp-out",
                                                  json.dumps({"ip": ns.ip, "port": SINK_PORT}).encode(), admin(sfu))
                    if status != 201:
                        raise RuntimeError(f"rtp-out answered {status}: {body!r}")
                    current += 1
                time.sleep(2.0)  # let keyframes and new routers settle
                here.send("reset")
                here.recv()
                cpu0, t0 = worker_cpu_ms(sfu), time.monotonic()
                time.sleep(args.seconds)
                here.send("read")
                counts = here.recv()
                cpu1, t1 = worker_cpu_ms(sfu), time.monotonic()
                elapsed = t1 - t0
                cpu_pct = (cpu1 - cpu0) / (elapsed * 1000) * 100
                loss = 1 - counts["packets"] / counts["expected"] if counts["expected"] else float("nan")
                routers = len(sfu.stats()["rooms"][0]["routers"])
                print(f"{target:>7} {counts['packets'] / elapsed:>10.0f} {counts['bytes'] * 8 / elapsed / 1e6:>7.1f} "
                      f"{cpu_pct:>9.0f}% {cpu_pct / target:>9.2f}% {loss * 100:>6.2f}% {routers:>7}", flush=True)
        finally:
            publisher.shutdown()
            stop.set()
            sink_proc.join(5)
            sfu.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
