"""SFU fan-out benchmark: one 720p H.264 stream at 2.5 Mbit/s to N viewers, N growing.

Prints, per step: RTP packets/s leaving the SFU, Mbit/s, mediasoup worker CPU (all
workers together, % of one core), CPU per viewer, loss, routers used, and the
packets/s the SFU receives from the publisher (a drop there means the machine
starves the publisher or the worker's receive path, not the fan-out).

How it drives N viewers on a 2-core machine: a viewer is an SRTP PlainTransport
consuming audio + video through the SFU's admin `rtp-out` API, placed and spread
over workers by the same code as browser viewers (a router per
`--router-max-consumers`, pipeToRouter between them). The SFU encrypts and sends
every packet to every viewer exactly as for a browser; only ICE/DTLS and the
receiver's congestion feedback are absent. Python cannot read ~100k packets/s on
a shared 2-core machine, so every tenth viewer sends to a UDP sink process that
counts packets and sequence gaps per SSRC without decrypting (RTP headers are
clear in SRTP), which gives the loss; the others send to a socket nobody reads,
where the kernel drops them. Packets/s out is the namespace's kernel UDP count
(delivered + dropped for a full buffer), i.e. everything the SFU sent. The publisher is aiortc sending x264
packets over WHIP (`whip_client.py`, in its own process). Everything runs in a network namespace (root needed).

    sudo .venv/bin/python scripts/bench_sfu.py --viewers 50,100,200,300 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import time

from privastream_testkit.sfu import (BLACKHOLE_PORT, SAMPLE_EVERY, SINK_PORT, SfuProcess, admin, sfu_with_sink,
                                    start_publisher, stop_publisher, udp_datagrams_in)

def sfu_counters(sfu: SfuProcess) -> tuple[float, int]:
    """(CPU ms of all mediasoup workers, RTP packets received from the publisher)."""
    stats = sfu.stats()
    publisher = stats["rooms"][0]["publisher"] if stats["rooms"] else None
    return (sum(w["cpuUserMs"] + w["cpuSystemMs"] for w in stats["workers"]),
            publisher["packetsReceived"] if publisher else 0)


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
           "SFU_RTC_MAX_PORT": "49999"}
    if args.workers:
        env["SFU_WORKERS"] = str(args.workers)
    with sfu_with_sink("ps-sfu-bench", "198.18.6.1/24", env) as (ns, sfu, here):
        publisher = None
        try:
            publisher = start_publisher(sfu, "bench", args.size, args.bitrate)
            time.sleep(2.0)
            print(f"publisher: {width}x{height} H.264 High at {args.bitrate / 1e6:.1f} Mbit/s + Opus; "
                  f"workers: {len(sfu.stats()['workers'])}; window {args.seconds:.0f} s per step; "
                  f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
            print(f"{'viewers':>7} {'pkts/s out':>10} {'Mbit/s':>7} {'worker CPU':>10} "
                  f"{'CPU/viewer':>10} {'loss':>7} {'routers':>7} {'pkts/s in':>9}", flush=True)
            current = 0
            for target in steps:
                while current < target:
                    port = SINK_PORT if current % SAMPLE_EVERY == 0 else BLACKHOLE_PORT
                    status, _, body = sfu.request("POST", "/api/rooms/bench/rtp-out",
                                                  json.dumps({"ip": ns.ip, "port": port}).encode(), admin(sfu))
                    if status != 201:
                        raise RuntimeError(f"rtp-out answered {status}: {body!r}")
                    current += 1
                time.sleep(2.0)  # let keyframes and new routers settle
                here.send("reset")
                here.recv()
                (cpu0, in0), udp0, t0 = sfu_counters(sfu), udp_datagrams_in(), time.monotonic()
                time.sleep(args.seconds)
                here.send("read")
                counts = here.recv()
                (cpu1, in1), udp1, t1 = sfu_counters(sfu), udp_datagrams_in(), time.monotonic()
                elapsed = t1 - t0
                cpu_pct = (cpu1 - cpu0) / (elapsed * 1000) * 100
                loss = 1 - counts["packets"] / counts["expected"] if counts["expected"] else float("nan")
                routers = len(sfu.stats()["rooms"][0]["routers"])
                sampled = (target + SAMPLE_EVERY - 1) // SAMPLE_EVERY
                mbits = counts["bytes"] * 8 / elapsed / 1e6 * target / sampled
                print(f"{target:>7} {(udp1 - udp0) / elapsed:>10.0f} {mbits:>7.0f} "
                      f"{cpu_pct:>9.0f}% {cpu_pct / target:>9.2f}% {loss * 100:>6.2f}% {routers:>7} {(in1 - in0) / elapsed:>9.0f}", flush=True)
        finally:
            if publisher:
                stop_publisher(publisher)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
