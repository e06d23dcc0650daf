"""The whole live path at the defaults: a real OBS under Xvfb, the real inference server, a media
source playing a generated clip (real face photos moving, PII text, plates, espeak-ng speech with a
phone number) with the PrivaStream filters on it, recorded from OBS's start.

    .venv/bin/python scripts/bench_obs_load.py [--runs 3] [--seconds 40] [--size 1280x720]
                                               [--delay 2.0] [--filters both|video]

Each run prints:
  - first picture: seconds from the recording's start (OBS launched with --startrecording) to the
    first frame that is not wholly covered;
  - covered: the share of recorded frames wholly covered after the warm-up (10 s);
  - leaked: face-frames (every face of 24 px or more, in every frame not wholly covered) whose fine
    detail survived (tests/cover_judge.py), and the most detail a covered face kept;
  - OBS: frames it lagged, its audio thread's max and p99;
  - speech: fail-closed runs the server logged; server: frames decided by how (settled, tracked,
    fail-closed), detection cadence, and CPU seconds per stream second of each stage.
On a two-core machine without a GPU, OBS renders through llvmpipe and all of it shares the cores.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from cover_judge import StampedClip, judge_faces, wholly_covered  # noqa: E402
from live_helpers import ServerProcess, failclosed_runs  # noqa: E402
from obs_harness import ObsSession, filter_entry, media_source  # noqa: E402
from obs_media import read_video_frames  # noqa: E402
from scripts.synthclip import speech_track, write_clip  # noqa: E402

WARM_UP_S = 10.0
CLIP_S = 12
LAGGED = re.compile(r"lagged frames due to rendering lag/stalls: \d+ \(([\d.]+)%\)")
AUDIO_THREAD = re.compile(r"audio_thread\(Audio\): min=[\d.]+\s?ms, median=[\d.]+\s?ms, max=([\d.]+)\s?ms, "
                          r"99th percentile=([\d.]+)\s?ms")


def _stats(server: ServerProcess) -> dict:
    return server.stats()


def run_once(clip_path: Path, clip: StampedClip, truths, home: Path, args) -> str:
    state = home / "run"
    state.mkdir(mode=0o700)
    server = ServerProcess(state / "privastream" / "server.json").start(timeout=180)
    settings = {"delay_s": args.delay}
    chain = [filter_entry("privastream_filter", "PrivaStream", settings)]
    if args.filters == "both":
        chain.append(filter_entry("privastream_audio_filter", "PrivaStream Audio", settings))
    size = (clip.width, clip.height)
    try:
        with ObsSession(home, [media_source("Clip", clip_path, chain)], canvas=size, start_recording=True,
                        env={"XDG_RUNTIME_DIR": str(state)}) as obs:
            started = time.time()
            time.sleep(WARM_UP_S + args.seconds)
            stats = _stats(server)
            out = obs.stop_recording()
        obs_log = obs.log_text()
    finally:
        server_log = server.stop()
    frames = read_video_frames(out, size)
    warm = int(WARM_UP_S * clip.fps)
    first = next((n for n, f in enumerate(frames) if not wholly_covered(f)), None)
    report = judge_faces(frames, clip, truths, start=warm)
    lagged, stalls = LAGGED.search(obs_log), AUDIO_THREAD.search(obs_log)
    runs = [slowest for wall, slowest in failclosed_runs(server_log) if wall >= started]
    lines = [f"first picture {first / clip.fps:.1f} s" if first is not None else "no picture at all",
             f"covered {report.covered} of {report.frames} frames after {WARM_UP_S:.0f} s "
             f"({100 * report.covered / max(report.frames, 1):.1f} %)",
             f"leaked {len(report.leaks)} of {report.face_frames} face-frames (most detail kept by a covered face "
             f"{report.worst_covered:.2f})" + (f": {report.leaks[:8]}" if report.leaks else ""),
             f"OBS lagged {lagged.group(1) if lagged else 0} % of frames"
             + (f", audio thread max {stalls.group(1)} ms, p99 {stalls.group(2)} ms" if stalls else ""),
             f"speech: {len(runs)} fail-closed runs" + (f" (slowest decode {max(runs):.2f} s)" if runs else "")]
    for s in stats["sessions"]:
        keep = {k: s.get(k) for k in ("frames_out", "settled", "tracked", "fail_closed", "estimate_misses",
                                      "cadence_hz", "run_ms", "cpu_per_s", "reasons") if k in s}
        lines.append(f"server {s['kind']}: {json.dumps(keep)}")
    return "\n  ".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=40.0, help="recorded seconds after the warm-up (default 40)")
    parser.add_argument("--size", default="1280x720", help="canvas and clip size (default 1280x720)")
    parser.add_argument("--delay", type=float, default=2.0, help="the filters' delay D (default 2.0, the default)")
    parser.add_argument("--filters", choices=("both", "video"), default="both")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="bench_obs_load_") as tmp:
        clip_path = Path(tmp) / "clip.mkv"
        clip = StampedClip(width=width, height=height, fps=30, seconds=CLIP_S)
        truths = write_clip(clip_path, clip, audio=speech_track(CLIP_S, 48000))
        for i in range(args.runs):
            home = Path(tmp) / f"run{i}"
            home.mkdir()
            print(f"run {i + 1} ({args.size}, D = {args.delay} s, filters: {args.filters}):\n  "
                  f"{run_once(clip_path, clip, truths, home, args)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
