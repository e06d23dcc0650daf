"""`python -m inference_server redact` on a 720p30 clip of moving faces, PII text and plates: its speed
with its file I/O, and whether every face and PII text box in every output frame lost its detail.

    .venv/bin/python scripts/bench_redact.py [--seconds 12] [--runs 3] [-- extra redact arguments]

Prints per run the wall time, the CPU time (user + system, steadier than wall time on a busy
machine), frames per second, and the face and text boxes judged and leaked (privastream_testkit/cover_judge.py:
fine structure inside each true box, each quarter on its own).  Target on two cores: 15 fps or
more with no leak.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
from privastream_testkit.cover_judge import DETAIL_LEAK, MIN_WIDTH_PX, detail_kept
from privastream_testkit.media import iter_video_frames
from privastream_testkit.scenes import Clip, write_clip


def judge(path: Path, clip: Clip) -> tuple[int, list[tuple[int, str, float]], float]:
    """(boxes judged, leaks as (frame, label, detail kept), most detail a covered box kept)."""
    judged, leaks, worst = 0, [], 0.0
    for i, frame in enumerate(iter_video_frames(path, (clip.width, clip.height))):
        original, truths = clip.frame(i)
        for truth in truths:
            x0, y0, x1, y1 = truth.box
            if truth.kind not in MIN_WIDTH_PX or not truth.sensitive or x1 - x0 < MIN_WIDTH_PX[truth.kind] or y1 - y0 < 8:
                continue
            judged += 1
            kept = detail_kept(frame, original, truth.box)
            if kept > DETAIL_LEAK:
                leaks.append((i, truth.label, round(kept, 2)))
            else:
                worst = max(worst, kept)
    return judged, leaks, worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("extra", nargs="*", help="more arguments for redact (after --)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_redact_") as tmp:
        clip = Clip(width=1280, height=720, fps=30, seconds=args.seconds)
        source, out = Path(tmp) / "clip.mp4", Path(tmp) / "out.mp4"
        write_clip(source, clip)
        rates = []
        for run in range(args.runs):
            before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
            subprocess.run([sys.executable, "-m", "inference_server", "redact", str(source), "-o", str(out),
                            "--no-speech", *args.extra], cwd=ROOT, check=True, capture_output=True)
            wall, after = time.monotonic() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            judged, leaks, worst = judge(out, clip)
            rates.append(clip.frames / wall)
            print(f"run {run + 1}: {clip.frames} frames of 1280x720 in {wall:.1f} s ({rates[-1]:.1f} fps, "
                  f"CPU {cpu:.1f} s); {judged} face and PII text boxes judged, {len(leaks)} leaked"
                  + (f" {leaks[:5]}" if leaks else "") + f"; most detail a covered box kept {worst:.2f}", flush=True)
        print(f"median {statistics.median(rates):.1f} fps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
