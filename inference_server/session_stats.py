"""The figures of one live session: the dashboard, ``/stats.json`` and the client's status read them."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

LATENCY_BUCKETS_MS = (25, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000)


@dataclass
class SessionStats:
    """Counts are written by the session's publisher (video) or worker thread (audio), the detection
    figures by the detection threads, one key per group; the server's loop only reads them."""

    frames_in: int = 0
    frames_out: int = 0
    settled: int = 0
    tracked: int = 0
    fail_closed: int = 0
    fail_closed_reasons: collections.Counter = field(default_factory=collections.Counter)
    """Why frames were covered whole, by reason (the panel and the dashboard say it)."""
    estimate_misses: int = 0
    """Estimates that missed a region the settled answer for their frame covers."""
    deadline_misses: int = 0
    dropped: int = 0
    latency_hist: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))
    runs: dict[str, collections.deque] = field(default_factory=dict)
    run_ms: dict[str, float] = field(default_factory=dict)
    interval_s: dict[str, float] = field(default_factory=dict)

    def record_latency(self, seconds: float) -> None:
        ms = seconds * 1000
        i = next((i for i, b in enumerate(LATENCY_BUCKETS_MS) if ms <= b), len(LATENCY_BUCKETS_MS))
        self.latency_hist[i] += 1

    def cadence_hz(self, now: float, window: float = 5.0) -> dict[str, float]:
        return {g: round(sum(1 for t in runs if now - t <= window) / window, 2) for g, runs in self.runs.items()}

    def to_dict(self, now: float) -> dict:
        return {"frames_in": self.frames_in, "frames_out": self.frames_out, "settled": self.settled,
                "tracked": self.tracked, "fail_closed": self.fail_closed,
                "fail_closed_reasons": dict(self.fail_closed_reasons.most_common(8)),
                "estimate_misses": self.estimate_misses, "deadline_misses": self.deadline_misses,
                "dropped": self.dropped, "latency_hist": list(self.latency_hist),
                "latency_buckets_ms": list(LATENCY_BUCKETS_MS), "cadence_hz": self.cadence_hz(now),
                "run_ms": dict(self.run_ms), "interval_s": {g: round(v, 3) for g, v in self.interval_s.items()}}
