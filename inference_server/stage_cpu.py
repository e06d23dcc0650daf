"""What each stage of the live path costs: the CPU seconds it has used, by stage.

The stages are the detection workers (one process per detector group), the speech decoder, the
video decision threads (following faces, change, coverage) and the rest of the server (the loop:
transport, thumbnails, scene cuts).  They are read from the kernel's per-thread and per-process
CPU times (psutil), so what is shown is what the machine really spent, whatever the stage did.
"""

from __future__ import annotations

import threading

import psutil

THREAD_STAGES = (("speech-redactor", "speech"), ("privastream-sched-", "decisions"),
                 ("privastream-face", "decisions"), ("privastream-text", "decisions"))
"""Thread name prefixes and the stage they belong to; other Python threads are "server".  Threads
Python did not start are the speech engine's (CTranslate2's and onnxruntime's pools for Whisper and
its voice detector): the detectors run in their own processes, and numpy's BLAS is held to one
thread (speech/asr.py)."""


def stage_cpu_seconds(workers: dict[str, int | None]) -> dict[str, float]:
    """CPU seconds each stage has used so far; ``workers``: detector group -> worker pid.  Two readings
    apart give each stage's CPU seconds per second of stream (scripts/bench_obs_load.py)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    totals: dict[str, float] = {}
    for thread in psutil.Process().threads():
        name = names.get(thread.id)
        stage = "speech" if name is None else next((s for p, s in THREAD_STAGES if name.startswith(p)), "server")
        totals[stage] = totals.get(stage, 0.0) + thread.user_time + thread.system_time
    for group, pid in workers.items():
        try:
            times = psutil.Process(pid).cpu_times() if pid is not None else None
        except psutil.Error:  # a worker restarting
            times = None
        if times is not None:
            totals[group] = times.user + times.system
    return {stage: round(total, 2) for stage, total in totals.items()}
