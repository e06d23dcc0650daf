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
import contextlib
import json
import multiprocessing as mp
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sfu_netns import Netns, SfuProcess  # noqa: E402

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


def sfu_counters(sfu: SfuProcess) -> tuple[float, int]:
    """(CPU ms of all mediasoup workers, RTP packets received from the publisher)."""
    stats = sfu.stats()
    publisher = stats["rooms"][0]["publisher"] if stats["rooms"] else None
    return (sum(w["cpuUserMs"] + w["cpuSystemMs"] for w in stats["workers"]),
            publisher["packetsReceived"] if publisher else 0)


def start_publisher(sfu: SfuProcess, room: str, size: str = "1280x720", bitrate: int = 2_500_000) -> subprocess.Popen:
    """whip_client.py replaying x264 High + Opus into `room`, returned once it publishes.

    It gets a process of its own: in the measuring one it would share the GIL with the
    measurement.
    """
    publisher = subprocess.Popen([sys.executable, str(Path(__file__).with_name("whip_client.py")),
                                  f"{sfu.base_url}/whip/{room}", f"--token={sfu.publish_token}",
                                  "--seconds", "86400", "--size", size, "--bitrate", str(bitrate), "--loop"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    for line in publisher.stdout:  # type: ignore[union-attr]
        output.append(line)
        if line.startswith("publishing"):
            return publisher
    publisher.wait()
    raise RuntimeError("publisher failed:\n" + "".join(output))


def stop_publisher(publisher: subprocess.Popen) -> None:
    if publisher.poll() is not None:
        print(f"publisher exited early ({publisher.returncode}):\n{publisher.stdout.read()}")  # type: ignore[union-attr]
    publisher.terminate()
    publisher.wait(10)


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
