"""The whole live path under load: a real OBS under Xvfb with both filters on the end-to-end clip
(faces, PII text, espeak speech with a phone number; tests/test_obs_e2e.py), and the real
inference server, on this machine's cores.

    .venv/bin/python scripts/bench_obs_load.py [--runs 3] [--seconds 20] [--delay 3.0]

Each run records ``--seconds`` after a 10 s warm-up and prints what the load did to each party:
  - OBS: frames it lagged (its "rendering lag/stalls" count) and its audio thread's max and p99;
  - speech: fail-closed runs the server logged (decoding later than L) and the slowest decode they
    name;
  - video: frames decided, frames covered whole (fail closed), face and text detection cadence.
Figures cover the recording only (the stats are read when it starts and when it ends).  On a
two-core machine without a GPU, OBS renders through llvmpipe and all three share the cores.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from live_helpers import ServerProcess, failclosed_runs  # noqa: E402
from obs_harness import ObsSession, filter_entry, media_source  # noqa: E402
from scripts.synthclip import Clip, speech_track, write_clip  # noqa: E402

WARM_UP_S = 10.0
LAGGED = re.compile(r"lagged frames due to rendering lag/stalls: \d+ \(([\d.]+)%\)")
AUDIO_THREAD = re.compile(r"audio_thread\(Audio\): min=[\d.]+\s?ms, median=[\d.]+\s?ms, max=([\d.]+)\s?ms, "
                          r"99th percentile=([\d.]+)\s?ms")


def _stats(server: ServerProcess) -> dict:
    return {s["kind"]: s for s in server.stats()["sessions"]}


def run_once(clip: Path, home: Path, seconds: float, delay: float) -> str:
    state = home / "run"
    state.mkdir(mode=0o700)
    server = ServerProcess(state / "privastream" / "server.json").start(timeout=120)
    chain = [filter_entry("privastream_filter", "PrivaStream", {"delay_s": delay}),
             filter_entry("privastream_audio_filter", "PrivaStream Audio", {"delay_s": delay})]
    try:
        with ObsSession(home, [media_source("Clip", clip, chain)], env={"XDG_RUNTIME_DIR": str(state)}) as obs:
            time.sleep(WARM_UP_S)
            obs.call("StartRecord")
            started, before = time.time(), _stats(server)
            time.sleep(seconds)
            after = _stats(server)
            obs.stop_recording()
        obs_log = obs.log_text()
    finally:
        server_log = server.stop()
    lagged, stalls = LAGGED.search(obs_log), AUDIO_THREAD.search(obs_log)
    runs = [slowest for wall, slowest in failclosed_runs(server_log) if wall >= started]
    video = {k: after["video"].get(k, 0) - before["video"].get(k, 0) for k in ("frames_out", "fail_closed")}
    cadence = after["video"].get("cadence_hz", {})
    return (f"OBS lagged {lagged.group(1) if lagged else 0} % of frames, audio thread max {stalls.group(1)} ms, "
            f"p99 {stalls.group(2)} ms | speech: {len(runs)} fail-closed runs"
            + (f" (slowest decode {max(runs):.2f} s)" if runs else "")
            + f" | video: {video['fail_closed']} of {video['frames_out']} frames covered whole, faces {cadence.get('faces', 0)} Hz, text {cadence.get('text', 0)} Hz")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0, help="recorded seconds per run (default 20)")
    parser.add_argument("--delay", type=float, default=3.0, help="the filters' delay D (default 3.0, as the e2e test)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_obs_load_") as tmp:
        clip = Path(tmp) / "clip.mkv"
        write_clip(clip, Clip(width=640, height=360, fps=30, seconds=12), audio=speech_track(12, 48000))
        for i in range(args.runs):
            home = Path(tmp) / f"run{i}"
            home.mkdir()
            print(f"run {i + 1}: {run_once(clip, home, args.seconds, args.delay)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
