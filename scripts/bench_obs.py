"""The OBS filters' added cost on OBS's threads, measured in a real OBS under Xvfb.

    .venv/bin/python scripts/bench_obs.py [--seconds 20] [--sizes 1280x720,1920x1080] [--regions 3]
                                          [--major 29|30|32] [--cycles 10]

For each canvas size it runs OBS twice on a generated clip of that size, without and with both
filters, and prints:
  - OBS's own profiler figure for the render thread (`render_video`, median and p99, logged by
    OBS at exit) for both runs: the difference is the filters' added cost per frame;
  - the Python time per `video_render` (capture into the delay line, readback of the previous
    frame and its copy for the client, the masked draw) and per `filter_audio` call (audio
    thread), median and p99, as the filters log them.
The client is tests/obs_fake_client.py (every frame decided at once with --regions fixed
regions, one frame copy like the real client's shared-memory copy), so the figures are the
filters' own cost, independent of the inference server.  On this machine the GPU is Mesa's
llvmpipe, so "GPU" work runs on the CPU inside these calls: a real GPU makes them cheaper.
--major picks the OBS (scripts/run_obs.sh).  --cycles N then also starts and stops that OBS N
times with both filters on a 640x360 clip (real client, no server: fail closed) and prints
each exit status.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from privastream_testkit.media import make_flash_clip
from privastream_testkit.obs import ObsSession, filter_entry, media_source

TIMING = re.compile(r"(video_render|filter_audio)\(\) \| python time per call \[.*?calls:(\d+), median_ms:([\d.]+), "
                    r"p99_ms:([\d.]+), max_ms:([\d.]+)\]")


WINDOW_S = 5


def fixed_regions(width: int, height: int, count: int) -> list[dict]:
    kinds = ("face", "text", "plate")
    out = []
    for i in range(count):
        x, y = 0.05 + 0.3 * (i % 3), 0.1 + 0.3 * (i // 3 % 3)
        out.append({"kind": kinds[i % 3], "box": [width * x, height * y, width * (x + 0.2), height * (y + 0.2)]})
    return out


# OBS writes "min=0.022\xa0ms": \s matches its non-breaking spaces.
PROFILER = re.compile(r"┣render_video: min=[\d.]+\s?ms, median=([\d.]+)\s?ms, max=[\d.]+\s?ms, 99th percentile=([\d.]+)\s?ms")
GRAPHICS = re.compile(r"obs_graphics_thread\([\d.]+\s?ms\): min=[\d.]+\s?ms, median=([\d.]+)\s?ms, max=[\d.]+\s?ms, "
                      r"99th percentile=([\d.]+)\s?ms, ([\d.]+)% below")


def measure(width: int, height: int, seconds: float, regions: int, filters: bool = True, major: int = 29) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_obs_") as tmp:
        home = Path(tmp)
        clip = make_flash_clip(home / "clip.mkv", size=(width, height), seconds=4)
        chain = [filter_entry("privastream_filter", "PrivaStream", {"delay_s": 1.0}),
                 filter_entry("privastream_audio_filter", "PrivaStream Audio", {"delay_s": 1.0})] if filters else []
        env = {"PRIVASTREAM_OBS_TIMING_S": str(WINDOW_S), "PRIVASTREAM_OBS_CLIENT": "tests.obs_fake_client:FakeClient",
               "PRIVASTREAM_FAKE_REGIONS": json.dumps(fixed_regions(width, height, regions))}
        with ObsSession(home, [media_source("Clip", clip, chain)], canvas=(width, height), env=env,
                        major=major) as obs:
            time.sleep(seconds)
        log = obs.log_text()  # after exit: OBS writes its profiler results then
        windows: dict[str, list[tuple[float, float, int]]] = {"video_render": [], "filter_audio": []}
        for name, calls, median, p99, _max in TIMING.findall(log):
            windows[name].append((float(median), float(p99), int(calls)))
        render, graphics = PROFILER.search(log), GRAPHICS.search(log)
        return {"exit": obs.exit_code, "windows": windows,
                "render_video": (float(render.group(1)), float(render.group(2))) if render else None,
                "graphics": tuple(map(float, graphics.groups())) if graphics else None}


def summary(windows: list[tuple[float, float, int]]) -> str:
    if not windows:
        return "no samples (ran shorter than two logging windows)"
    # Drop the first window: it holds the one-off delay-line allocation and effect compile.
    steady = windows[1:] or windows
    return (f"median {statistics.median(m for m, _, _ in steady):.2f} ms, p99 {max(p for _, p, _ in steady):.2f} ms "
            f"over {sum(n for *_, n in steady)} calls")


def cycles(major: int, count: int, filters: bool = True, seconds: float = 3.0) -> list[int | None]:
    """OBS's exit status over `count` start/stop cycles (no server: the filters fail closed).  A run
    that dies during start-up counts with its status, and the end of its log is printed."""
    statuses = []
    with tempfile.TemporaryDirectory(prefix="bench_obs_cycles_") as tmp:
        clip = make_flash_clip(Path(tmp) / "clip.mkv", seconds=4)
        chain = [filter_entry("privastream_filter", "PrivaStream"),
                 filter_entry("privastream_audio_filter", "PrivaStream Audio")] if filters else []
        for i in range(count):
            home = Path(tmp) / f"run{i}"
            home.mkdir()
            obs = ObsSession(home, [media_source("Clip", clip, chain)], major=major)
            try:
                with obs:
                    time.sleep(seconds)
            except RuntimeError as e:
                print(f"  cycle {i}: {str(e).splitlines()[0]}; the log ends:\n    "
                      + "\n    ".join(obs.log_text().splitlines()[-4:]))
            statuses.append(obs.exit_code)
    return statuses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=25.0, help="run time per size (default 25)")
    parser.add_argument("--sizes", default="1280x720,1920x1080", help="canvas sizes (default 1280x720,1920x1080)")
    parser.add_argument("--regions", type=int, default=3, help="fixed regions drawn per frame (default 3)")
    parser.add_argument("--major", type=int, default=29, choices=(29, 30, 32),
                        help="OBS major, run by scripts/run_obs.sh (default 29, this machine's)")
    parser.add_argument("--cycles", type=int, default=0, metavar="N",
                        help="also start and stop OBS N times with both filters and print the exit statuses (default 0)")
    args = parser.parse_args()
    for size in filter(None, args.sizes.split(",")):
        width, height = (int(v) for v in size.lower().split("x"))
        plain = measure(width, height, args.seconds, args.regions, filters=False, major=args.major)
        result = measure(width, height, args.seconds, args.regions, major=args.major)
        print(f"OBS {args.major}, {width}x{height} ({args.regions} regions; OBS exit status {plain['exit']} without, "
              f"{result['exit']} with):")
        for label, run in (("without filters", plain), ("with filters", result)):
            rv, gt = run["render_video"], run["graphics"]
            print(f"  OBS render_video {label}: " + (f"median {rv[0]:.2f} ms, p99 {rv[1]:.2f} ms" if rv else "not logged"))
            print(f"  OBS graphics loop {label}: " + (f"median {gt[0]:.2f} ms, p99 {gt[1]:.2f} ms, "
                                                      f"{gt[2]:.0f} % within the frame time" if gt else "not logged"))
        print(f"  video_render per frame: {summary(result['windows']['video_render'])}")
        print(f"  filter_audio per call (1024 samples): {summary(result['windows']['filter_audio'])}")
    if args.cycles:
        for filters in (True, False):
            statuses = cycles(args.major, args.cycles, filters)
            print(f"OBS {args.major}, {args.cycles} start/stop cycles {'with both' if filters else 'without'} filters: "
                  f"exit statuses {statuses}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
