"""Soak test of the live path: 720p30 through LiveClient for 10 minutes, printing memory growth.

A real server process (with its detection worker) takes a generated clip, looped, in real
time, with every detector on.  Every minute it prints the resident memory of the server,
of the worker and of this client process, and the decisions so far; at the end the growth
of each since the end of the warm-up minute (target: under 20 MB for the server side).

    .venv/bin/python scripts/soak_live.py                    # 10 minutes
    .venv/bin/python scripts/soak_live.py --minutes 2 --every 30
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from inference_server.client import LiveClient
from privastream_testkit.processes import wait_until
from privastream_testkit.scenes import Clip, rgba_frames
from privastream_testkit.server import ServerProcess

MB = 2**20


def rss_mb(server: ServerProcess) -> dict[str, float]:
    """Resident memory of the server, its detection worker(s) and this process, in MB."""
    proc = psutil.Process(server.proc.pid)
    workers = proc.children(recursive=True)
    return {"server": proc.memory_info().rss / MB, "worker": sum(w.memory_info().rss for w in workers) / MB,
            "client": psutil.Process().memory_info().rss / MB}


def session_stats(server: ServerProcess) -> dict:
    sessions = server.stats()["sessions"]
    return sessions[0] if sessions else {}


class Tally:
    """Decisions as the client reports them, counted by a polling thread (the OBS filter's view)."""

    def __init__(self, client: LiveClient):
        self.client = client
        self.final = self.fail_closed = 0
        self.next_id = 0
        self.submitted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            while self.next_id < self.submitted:
                d = self.client.frame_decision(self.next_id)
                if d is None:
                    break
                self.fail_closed += d.fail_closed
                self.final += not d.fail_closed
                self.next_id += 1
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the soak (default 10)")
    parser.add_argument("--every", type=float, default=60.0, help="seconds between reports (default 60)")
    parser.add_argument("--delay", type=float, default=1.0, help="D in seconds (default 1)")
    args = parser.parse_args()
    frames = rgba_frames(Clip(1280, 720, 30, 4.0))  # looped: a scene cut every 2 s, faces, text and plates
    print(f"machine: {psutil.cpu_count()} cores, load average {psutil.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "server.json").start(timeout=180)
        try:
            with LiveClient(source="soak", delay_s=args.delay, state_file=server.state_file) as client:
                wait_until(lambda: client.status.state == "connected", 10.0)
                tally = Tally(client)
                start = time.monotonic()
                end = start + args.minutes * 60
                next_report, baseline = start + args.every, None
                k = 0
                while time.monotonic() < end:
                    time.sleep(max(0.0, start + k / 30 - time.monotonic()))
                    client.submit_frame(k, k / 30, frames[k % len(frames)][0])
                    k += 1
                    tally.submitted = k
                    if time.monotonic() >= next_report:
                        mem = rss_mb(server)
                        baseline = baseline or mem  # after the warm-up interval: models and caches loaded
                        st = session_stats(server)
                        print(f"t={time.monotonic() - start:5.0f} s  frames={k}  RSS server {mem['server']:.1f} MB "
                              f"worker {mem['worker']:.1f} MB client {mem['client']:.1f} MB  "
                              f"final={tally.final} fail-closed={tally.fail_closed}  "
                              f"estimate-misses={st.get('estimate_misses')} runs/s={st.get('cadence_hz')}  "
                              f"load {psutil.getloadavg()[0]:.1f}", flush=True)
                        next_report += args.every
                time.sleep(args.delay + 0.3)
                tally.stop()
                mem = rss_mb(server)
        finally:
            server.stop()
    if baseline is None:
        print("too short for a report (use --minutes > --every / 60)")
        return 1
    growth = {k: mem[k] - baseline[k] for k in mem}
    print(f"RSS growth after the first {args.every:.0f} s: server {growth['server']:+.1f} MB, "
          f"worker {growth['worker']:+.1f} MB (server side {growth['server'] + growth['worker']:+.1f} MB, "
          f"target < 20 MB), client {growth['client']:+.1f} MB; frames {k}, final {tally.final}, "
          f"fail-closed {tally.fail_closed}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
