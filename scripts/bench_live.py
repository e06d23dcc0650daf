"""Benchmark of the live path: a generated clip fed in real time through LiveClient.

Prints, per scenario, p50/p95/p99 from submit to final decision, the share of frames final
(not fail-closed) before their deadline, the share of frames on which every face, text and
plate of the ground truth is covered (or the whole frame is, fail-closed; a miss here is a
detector miss or an estimate's), the server's own audit of its estimates ("estimate misses":
frames published as an extrapolated estimate that missed a region their settled answer
has), and the CPU use of the server and its detection worker; then the transport's own cost
per 1080p frame (the client's one write + the server's one in-place read).

    .venv/bin/python scripts/bench_live.py                 # all scenarios (~2 min)
    .venv/bin/python scripts/bench_live.py --only 720p --delays 1
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from inference_server.client import LiveClient
from inference_server.protocol import FORMAT_RGBA8
from inference_server.shm import RingReader, RingWriter
from privastream_testkit.boxes import covered
from privastream_testkit.processes import wait_until
from privastream_testkit.scenes import Clip, rgba_frames
from privastream_testkit.server import ServerProcess


class Feed:
    """One client streaming a rendered clip at its frame rate and timing every decision."""

    def __init__(self, server: ServerProcess, frames, fps: int, delay_s: float, name: str):
        self.frames, self.fps, self.delay_s = frames, fps, delay_s
        self.client = LiveClient(source=name, delay_s=delay_s, state_file=server.state_file)
        wait_until(lambda: self.client.status.state == "connected", 10.0)
        self.submitted: dict[int, float] = {}
        self.decided: dict[int, float] = {}

    def run(self, first_id: int) -> None:
        done = threading.Event()
        poller = threading.Thread(target=self._poll, args=(done,), daemon=True)
        poller.start()
        start = time.monotonic()
        for k, (rgba, _) in enumerate(self.frames):
            time.sleep(max(0.0, start + k / self.fps - time.monotonic()))
            self.submitted[first_id + k] = time.monotonic()
            self.client.submit_frame(first_id + k, k / self.fps, rgba)
        time.sleep(self.delay_s + 0.2)
        done.set()
        poller.join()

    def _poll(self, done: threading.Event) -> None:
        while not done.is_set():
            for fid in list(self.submitted):
                if fid not in self.decided and self.client.frame_decision(fid) is not None:
                    self.decided[fid] = time.monotonic()
            time.sleep(0.002)

    def report(self, first_id: int) -> dict:
        lat, final, safe = [], 0, 0
        missed: collections.Counter = collections.Counter()  # frames on which each truth was left uncovered
        reasons: collections.Counter = collections.Counter()
        for k, (_, truth) in enumerate(self.frames):
            fid = first_id + k
            d = self.client.frame_decision(fid)
            if fid in self.decided:
                lat.append((self.decided[fid] - self.submitted[fid]) * 1000)
            ok = d is not None and not d.fail_closed and self.decided.get(fid, 1e18) <= self.submitted[fid] + self.delay_s
            final += ok
            left = [] if d is not None and d.fail_closed else [t for t in truth if t.sensitive and (
                d is None or not covered(t.box, d.regions, tolerance=1.0))]
            safe += not left
            if d is not None and d.fail_closed:
                reasons[d.reason] += 1
            missed.update(f"{t.kind}:{t.label}" for t in left)
        q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [0] * 99
        return {"n": len(self.frames), "p50": q[49], "p95": q[94], "p99": q[98],
                "final": 100 * final / len(self.frames), "covered": 100 * safe / len(self.frames),
                "missed": ", ".join(f"{name} {n}" for name, n in missed.most_common(4)) or "none",
                "reasons": "; ".join(f"{why} {n}" for why, n in reasons.most_common(3)) or "none"}


def session_stats(server: ServerProcess, source: str) -> dict:
    sessions = server.stats()["sessions"]
    return next((s for s in sessions if s["source"] == source), {})


def cpu_seconds(server: ServerProcess) -> float:
    """User + system time of the server and its children (the detection worker)."""
    procs = [psutil.Process(server.proc.pid)]
    procs += procs[0].children(recursive=True)
    return sum(p.cpu_times().user + p.cpu_times().system for p in procs)


def scenario(server, label: str, clips: list, fps: int, delay_s: float, warm_id: list[int]) -> None:
    feeds = [Feed(server, frames, fps, delay_s, f"{label}-{n}") for n, frames in enumerate(clips)]
    cpu0, t0 = cpu_seconds(server), time.monotonic()
    first = warm_id[0]
    threads = [threading.Thread(target=f.run, args=(first,)) for f in feeds]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu = 100 * (cpu_seconds(server) - cpu0) / (time.monotonic() - t0)
    for n, f in enumerate(feeds):
        r = f.report(first)
        st = session_stats(server, f"{label}-{n}")
        print(f"{label:<22} D={delay_s:<4} frames={r['n']:<4} p50={r['p50']:6.0f} ms  p95={r['p95']:6.0f} ms  "
              f"p99={r['p99']:6.0f} ms  final-before-deadline={r['final']:5.1f}%  covered={r['covered']:5.1f}%  "
              f"settled/estimated/fail-closed={st.get('settled')}/{st.get('tracked')}/{st.get('fail_closed')}  "
              f"estimate-misses={st.get('estimate_misses')}  runs/s={st.get('cadence_hz')}  "
              f"CPU={cpu:4.0f}% of one core (server + workers)  uncovered frames by truth: {r['missed']}  "
              f"fail-closed because: {r['reasons']}", flush=True)
        f.client.close()
    warm_id[0] += 10_000


def transport_cost(width: int = 1920, height: int = 1080, runs: int = 200) -> None:
    frame = np.random.default_rng(0).integers(0, 255, (height, width, 4), dtype=np.uint8)
    writer = RingWriter(FORMAT_RGBA8, 6, width * height * 4)
    reader = RingReader(writer.name)
    w, r, full = [], [], []
    try:
        for i in range(runs):
            t = time.perf_counter()
            slot, seq = writer.write(frame, i, i / 30, 0.0)
            w.append(time.perf_counter() - t)
            t = time.perf_counter()
            reader.thumbnail(slot, seq)
            r.append(time.perf_counter() - t)
            t = time.perf_counter()
            reader.read(slot, seq)
            full.append(time.perf_counter() - t)
    finally:
        reader.close()
        writer.close()
    mw, mr, mf = (statistics.median(x) * 1000 for x in (w, r, full))
    print(f"transport {width}x{height} RGBA: client write {mw:.2f} ms + server in-place read {mr:.2f} ms = "
          f"{mw + mr:.2f} ms per frame (median of {runs}); the detection worker's full read, only for the "
          f"frames it detects on: {mf:.2f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="clip length per scenario (default 6)")
    parser.add_argument("--delays", type=float, nargs="+", default=[0.5, 1.0, 2.0], help="D values for 720p30")
    parser.add_argument("--only", choices=["720p", "1080p", "two", "transport"], action="append",
                        help="run only these parts (default all)")
    args = parser.parse_args()
    parts = set(args.only or ["720p", "1080p", "two", "transport"])
    print(f"machine: {psutil.cpu_count()} cores, load average {psutil.getloadavg()[0]:.1f}", flush=True)
    if "transport" in parts:
        transport_cost()
    if parts == {"transport"}:
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "server.json").start(timeout=180)
        try:
            clip720 = rgba_frames(Clip(1280, 720, 30, args.seconds))
            warm = [0]
            scenario(server, "warm-up (ignored)", [clip720[: 60]], 30, 1.0, warm)
            if "720p" in parts:
                for d in args.delays:
                    scenario(server, "720p30", [clip720], 30, d, warm)
            if "two" in parts:
                scenario(server, "720p30 x2 clients", [clip720, clip720], 30, 1.0, warm)
            if "1080p" in parts:
                del clip720
                scenario(server, "1080p30", [rgba_frames(Clip(1920, 1080, 30, args.seconds))], 30, 1.0, warm)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
