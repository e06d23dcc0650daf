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
    detail survived (privastream_testkit/cover_judge.py), and the most detail a covered face kept;
  - OBS: frames it lagged, its audio thread's max and p99;
  - speech: fail-closed runs the server logged; server: frames decided by how (settled, tracked,
    fail-closed, and why), detection cadence, and the CPU seconds per second of stream of each stage
    (detection workers, speech decoder, decision threads, the rest of the server) over the recording.
On a two-core machine without a GPU, OBS renders through llvmpipe and all of it shares the cores.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from privastream_testkit.cover_judge import StampedClip, judge_faces
from privastream_testkit.media import RATE, iter_video_frames, read_audio
from privastream_testkit.obs import ObsSession, filter_entry, media_source
from privastream_testkit.scenes import write_clip
from privastream_testkit.server import ServerProcess, failclosed_runs
from privastream_testkit.speech import speech_track
from privastream_testkit.speech_judge import judge_speech

WARM_UP_S = 10.0
CLIP_S = 12
LAGGED = re.compile(r"lagged frames due to rendering lag/stalls: \d+ \(([\d.]+)%\)")
COVER_REASON = re.compile(r"covering the whole frame \[source:[^,]*, reason:([^\]]*)\]")
AUDIO_THREAD = re.compile(r"audio_thread\(Audio\): min=[\d.]+\s?ms, median=[\d.]+\s?ms, max=([\d.]+)\s?ms, "
                          r"99th percentile=([\d.]+)\s?ms")


def run_once(clip_path: Path, clip: StampedClip, truths, source: np.ndarray, home: Path, args) -> str:
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
            time.sleep(WARM_UP_S)
            before = server.stats()
            time.sleep(args.seconds)
            stats = server.stats()
            out = obs.stop_recording()
        obs_log = obs.log_text()
    finally:
        server_log = server.stop()
        if args.keep:
            (home / "server.log").write_text(server_log)
    heard = judge_speech(read_audio(out)[int(WARM_UP_S * RATE):], source) if args.filters == "both" else None
    report = judge_faces(iter_video_frames(out, size), clip, truths, start=int(WARM_UP_S * clip.fps))
    first = report.first_picture
    lagged, stalls = LAGGED.search(obs_log), AUDIO_THREAD.search(obs_log)
    runs = [slowest for wall, slowest in failclosed_runs(server_log) if wall >= started]
    lines = [f"first picture {first / clip.fps:.1f} s" if first is not None else "no picture at all",
             f"covered {report.covered} of {report.frames} frames after {WARM_UP_S:.0f} s "
             f"({100 * report.covered / max(report.frames, 1):.1f} %)",
             f"leaked {len(report.leaks)} of {report.face_frames} face-frames (most detail kept by a covered face "
             f"{report.worst_covered:.2f})" + (f": {report.leaks[:8]}" if report.leaks else ""),
             f"OBS lagged {lagged.group(1) if lagged else 0} % of frames"
             + (f", audio thread max {stalls.group(1)} ms, p99 {stalls.group(2)} ms" if stalls else ""),
             f"OBS covered whole because: {dict(collections.Counter(COVER_REASON.findall(obs_log)).most_common(6))}",
             f"speech: {len(runs)} fail-closed runs" + (f" (slowest decode {max(runs):.2f} s)" if runs else "")]
    if heard is not None:
        judged = [b.kind for blocks in heard.plain_blocks for b in blocks if b.kind != "pause"]
        lines.append(f"speech: phone number bleeped {sum(heard.pii_ok)} of {len(heard.pii_ok)} times; plain speech "
                     f"intact {100 * judged.count('intact') / max(len(judged), 1):.1f} %, silenced "
                     f"{100 * judged.count('silence') / max(len(judged), 1):.1f} %, bleeped "
                     f"{100 * judged.count('beep') / max(len(judged), 1):.1f} % (of {len(judged)} x 0.1 s)")
    span = stats["server"]["uptime_s"] - before["server"]["uptime_s"]
    cpu = {stage: round((total - before["server"]["cpu_s"].get(stage, 0.0)) / span, 2)
           for stage, total in stats["server"]["cpu_s"].items()}
    lines.append(f"server CPU seconds per second of stream, by stage: {cpu}")
    for s in stats["sessions"]:
        keep = {k: s.get(k) for k in ("frames_out", "settled", "tracked", "fail_closed", "estimate_misses",
                                      "fail_closed_reasons", "cadence_hz", "run_ms") if k in s}
        lines.append(f"server {s['kind']}: {json.dumps(keep)}")
    return "\n  ".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=40.0, help="recorded seconds after the warm-up (default 40)")
    parser.add_argument("--size", default="1280x720", help="canvas and clip size (default 1280x720)")
    parser.add_argument("--delay", type=float, default=2.0, help="the filters' delay D (default 2.0, the default)")
    parser.add_argument("--filters", choices=("both", "video"), default="both")
    parser.add_argument("--keep", action="store_true", help="keep the clip, the recordings and the logs (the "
                        "folder is printed); by default they are deleted")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with contextlib.nullcontext(tempfile.mkdtemp(prefix="bench_obs_load_")) if args.keep \
            else tempfile.TemporaryDirectory(prefix="bench_obs_load_") as tmp:
        if args.keep:
            print(f"keeping {tmp}")
        clip_path = Path(tmp) / "clip.mkv"
        clip = StampedClip(width=width, height=height, fps=30, seconds=CLIP_S)
        source = speech_track(CLIP_S, RATE)
        truths = write_clip(clip_path, clip, audio=source)
        for i in range(args.runs):
            home = Path(tmp) / f"run{i}"
            home.mkdir()
            print(f"run {i + 1} ({args.size}, D = {args.delay} s, filters: {args.filters}):\n  "
                  f"{run_once(clip_path, clip, truths, source, home, args)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
